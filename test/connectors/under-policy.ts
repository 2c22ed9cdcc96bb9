import type { IdentityRef } from '../../src/actions/identity-action';
import type { Connector, RevokeMode } from '../../src/connectors/connector';
import type { ConnectorRegistry } from '../../src/connectors/registry';
import { expireGrants, revokeIdentity, type RevokeOutcome } from '../../src/connectors/revoke-policy';

/** A connector as the worker drives it: its primitives composed by the revoke policy its instance is configured with. */
export type UnderPolicy<C extends Connector> = C & {
  /** A leaver (revokeIdentity under `mode`). */
  leave(identity: IdentityRef): Promise<RevokeOutcome>;
  /** A joiner's expiry (expireGrants under `mode`). */
  expire(identity: IdentityRef, grants: string[], dropAccount: boolean): Promise<RevokeOutcome>;
};

export function underPolicy<C extends Connector>(connector: C, mode: RevokeMode = 'delete'): UnderPolicy<C> {
  return Object.assign(connector, {
    leave: (identity: IdentityRef) => revokeIdentity(connector, identity, mode),
    expire: (identity: IdentityRef, grants: string[], dropAccount: boolean) => expireGrants(connector, identity, grants, dropAccount, mode),
  });
}

/** A configured instance from a registry, under the policy its configuration entry names. */
export function fromRegistry(registry: ConnectorRegistry, system: string): UnderPolicy<Connector> {
  return underPolicy(registry.get(system), registry.revokeMode(system));
}
