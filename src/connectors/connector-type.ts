import type { AnyZodObject } from 'zod';
import type { Connector, ConnectorCapabilities, ConnectorGrammar } from './connector';
import type { BaseInstanceConfig, SecretSource } from './connector-config';

/**
 * One target system's module, as the registry sees it: its config schema (discriminated by `type`), its grammar
 * (pure, used by the API to refuse bad actions), and a factory for the live connector (used by the worker).
 */
export interface ConnectorType<C extends BaseInstanceConfig = BaseInstanceConfig> {
  readonly type: C['type'];
  /** A strict zod object whose output is C; `type` is its literal discriminator. */
  readonly schema: AnyZodObject;
  /** What it can do beyond the Connector interface; `{}` for nothing. The registry holds every live connector to it. */
  readonly capabilities: ConnectorCapabilities;
  grammar(cfg: C): ConnectorGrammar;
  /** Where the credential goes and whether the channel is encrypted; plain channels are allowed only to loopback. */
  transport?(cfg: C): Array<{ host: string; encrypted: boolean; fix: string }>;
  create(cfg: C, secrets: SecretSource): Connector;
}

export function defineConnectorType<C extends BaseInstanceConfig>(t: ConnectorType<C>): ConnectorType<C> {
  return t;
}

/** The instance's protected identities plus its own credential's name: a connector never revokes itself. */
export function protectedNames(cfg: BaseInstanceConfig, ownIdentity: string): string[] {
  return [...cfg.policy.protectedAccounts, ownIdentity];
}
