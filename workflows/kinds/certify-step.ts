import { patched } from '@temporalio/workflow';
import type { IdentityRef } from '../../src/actions/identity-action';
import { certifications } from '../activity-proxies';
import type { KindContext } from './kind';
import { failureText } from './step-runner';

/**
 * A verified mover or rotation asks for a certification item (the policy decides whether its trigger is on). Before
 * this patch such steps opened none.
 */
const CERTIFY_VERIFIED_STEP = 'certify-verified-step';

/**
 * Opens the item for a step that just verified. A failure to open it is kept (it blocks closure like a failed
 * write-back) and never undoes or delays the step itself.
 */
export async function certifyVerifiedStep(ctx: KindContext, trigger: 'mover' | 'rotation', system: string, identity: IdentityRef): Promise<void> {
  if (!patched(CERTIFY_VERIFIED_STEP)) return;
  try {
    await certifications.certifyStep({ trigger, ticketKey: ctx.key, stepId: ctx.step.stepId, system, identity, at: ctx.step.verifiedAt ?? ctx.step.eventReceivedAt });
  } catch (err) {
    ctx.state.writeBackErrors.push(`certification of ${ctx.step.stepId} could not be opened: ${failureText(err)}`);
    ctx.touch();
  }
}
