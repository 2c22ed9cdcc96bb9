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
 * The trigger is retried until it lands (the proxy has no attempt limit) and is no ticket write-back: it never blocks
 * closure. Before this patch a trigger that gave up was kept as a write-back error, which blocked closure for good.
 */
const CERTIFY_STEP_UNTIL_LANDED = 'certify-step-until-landed';

/** Opens the item for a step that just verified; it never undoes the step itself. */
export async function certifyVerifiedStep(ctx: KindContext, trigger: 'mover' | 'rotation', system: string, identity: IdentityRef): Promise<void> {
  if (!patched(CERTIFY_VERIFIED_STEP)) return;
  const input = { trigger, ticketKey: ctx.key, stepId: ctx.step.stepId, system, identity, at: ctx.step.verifiedAt ?? ctx.step.eventReceivedAt };
  if (patched(CERTIFY_STEP_UNTIL_LANDED)) {
    await certifications.certifyStep(input);
    return;
  }
  try {
    await certifications.certifyStep(input);
  } catch (err) {
    ctx.state.writeBackErrors.push(`certification of ${ctx.step.stepId} could not be opened: ${failureText(err)}`);
    ctx.touch();
  }
}
