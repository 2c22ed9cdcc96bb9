/**
 * The revoke policy, composed once above every connector's primitives: which primitive a leaver runs (remove or
 * disable, per the instance's `policy.revokeMode`), what it must leave behind (the policy's state, or the grammar's
 * declared deviation), and that an identity already gone is done. Expiry of a joiner is composed here the same way.
 * What a step verifies comes from here, never from a connector's report of its own work.
 */
import type { IdentityRef } from '../actions/identity-action';
import { type Connector, type ConnectorGrammar, type DesiredAccount, DISABLED_STATE, GONE, type RevokeDeviation, type RevokeMode } from './connector';

export interface RevokeOutcome {
  /** False when there was nothing to revoke: the identity was already gone, or already left as the policy wants. */
  changed: boolean;
  detail: string;
  /** The state the follow-up read-back must find, decided by policy: `GONE` when the identity was already absent. */
  expected: Readonly<DesiredAccount>;
}

/** What each policy leaves behind, for every identity a connector does not declare a deviation for. */
export const POLICY_LEAVES: Readonly<Record<RevokeMode, Readonly<DesiredAccount>>> = Object.freeze({ delete: GONE, disable: DISABLED_STATE });

/** What a leaver of `identity` under `mode` must leave behind, and the declared deviation that says so, if any. */
export function revokeTarget(grammar: ConnectorGrammar, identity: IdentityRef, mode: RevokeMode): { leaves: Readonly<DesiredAccount>; deviation?: RevokeDeviation } {
  const deviation = grammar.revokeDeviations?.find((d) => d.mode === mode && d.applies(identity));
  return deviation ? { leaves: deviation.leaves, deviation } : { leaves: POLICY_LEAVES[mode] };
}

/**
 * A leaver under `mode`. An identity that is already gone is done under either policy: there is nothing to delete
 * or disable and no access left, so the read-back expects it absent — never a refusal that would block closure over
 * an account that no longer exists.
 */
export async function revokeIdentity(connector: Connector, identity: IdentityRef, mode: RevokeMode): Promise<RevokeOutcome> {
  const { leaves, deviation } = revokeTarget(connector.grammar, identity, mode);
  const out = mode === 'delete' ? await connector.remove(identity) : await connector.disable(identity);
  if (out.absent) return { changed: false, detail: out.detail, expected: GONE };
  const note = deviation ? ` (policy: ${mode}, as declared for ${deviation.identities})` : mode === 'disable' ? ' (policy: disable)' : '';
  return { changed: out.changed, detail: `${out.detail}${note}`, expected: leaves };
}

/**
 * Expiry of a joiner's grants: exactly those are taken back, or, when the joiner created the identity, the identity
 * goes as a leaver's would under the instance's policy. An identity that is gone holds none of them, which is what
 * expiry wants.
 */
export async function expireGrants(connector: Connector, identity: IdentityRef, grants: string[], dropAccount: boolean, mode: RevokeMode): Promise<RevokeOutcome> {
  if (dropAccount) return revokeIdentity(connector, identity, mode);
  const out = await connector.ungrant(identity, grants);
  if (out.absent) return { changed: false, detail: out.detail, expected: GONE };
  return { changed: out.changed, detail: out.detail, expected: { exists: true, mustNotHave: [...grants] } };
}
