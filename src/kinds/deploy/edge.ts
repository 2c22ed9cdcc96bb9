import { z } from 'zod';
import type { PlannedAction } from '../../change/ticket';
import type { EdgeKind } from '../registry';
import { commonFields } from '../spec';
import { type GrantPlan, planGrants, ttl } from '../grant-policy';
import { secretDestinationSchema, type SecretDestination } from '../rotate/edge';
import { RUN_SUFFIX_EXAMPLE, runSecretPath } from './run';

export const deploySchema = z
  .object({
    kind: z.literal('deploy'),
    ...commonFields,
    /** Exactly what each run's credential holds. */
    grants: z.array(z.string().min(1).max(200)).min(1, 'a deploy credential needs at least one grant').max(50),
    /** How long a run's credential lives at most, counted from its verified mint; `finished` ends it sooner. */
    ttl,
    /** The secrets store and path the pipeline reads; each run's credential goes to `<path>/<runId>`. */
    deliverTo: secretDestinationSchema,
  })
  .strict();
export type DeployAction = z.infer<typeof deploySchema>;

/** A planned deploy: grants in the connector's canonical form, sorted and de-duplicated. */
export interface DeployPlan extends PlannedAction, GrantPlan {
  kind: 'deploy';
  ttlMs: number;
  ttl: string;
  deliverTo: SecretDestination;
}

export const deployEdge: EdgeKind<DeployAction> = {
  kind: 'deploy',
  schema: deploySchema,
  plan(action, { actionId, entry, grammars, issue }): DeployPlan {
    // The run's secret is set and proven the way a rotation does it, so the target must declare rotation.
    if (!entry.capabilities.rotation) issue('system', `${action.system} has no credentials the gateway sets, so it cannot mint one for a run`);
    // Every run gets its own identity: the base name plus a suffix of this shape must fit the target's grammar.
    for (const p of entry.grammar.validateIdentity({ ...action.identity, name: `${action.identity.name}${RUN_SUFFIX_EXAMPLE}` })) {
      issue(p.path, `${p.message} (with the ${RUN_SUFFIX_EXAMPLE.length}-character run suffix every deploy credential gets, e.g. '${action.identity.name.slice(0, 40)}${RUN_SUFFIX_EXAMPLE}')`);
    }
    // The same planning as every kind that grants: canonical grants, ttl limits (connector, privilege classes), and
    // privileged grants, which make the deploy wait for a change manager's approval before any run is served.
    const planned = planGrants(action, { entry, issue });
    const store = grammars.get(action.deliverTo.system);
    if (!store?.capabilities.secretSink || !store.grammar.validateSecretPath) {
      issue('deliverTo.system', `'${action.deliverTo.system.slice(0, 100)}' is not a configured secrets store`);
    } else {
      // A run id is one more path segment.
      const problem = store.grammar.validateSecretPath(runSecretPath(action.deliverTo.path, 'run-id'));
      if (problem) issue('deliverTo.path', problem);
    }
    return { actionId, kind: 'deploy', system: action.system, identity: action.identity, ...planned, ttlMs: planned.ttlMs ?? 0, ttl: action.ttl, deliverTo: action.deliverTo };
  },
};
