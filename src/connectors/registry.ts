import type { ExceptionTerms } from '../change/exception';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { parseIsoDuration } from '../actions/iso-duration';
import { capabilityProblems, type Connector, type ConnectorCapabilities, type ConnectorGrammar, type CredentialRotator, type DirectoryReader, type RevokeMode, type SecretSink, type TwoPhaseRotator } from './connector';
import { type BaseInstanceConfig, envSecrets, type OwnershipRule, requireEncryptedTransport } from './connector-config';
import { ConnectorRefusal, FailureType } from './connector-errors';
import type { ConnectorType } from './connector-type';
import { awsIamConnectorType } from './aws-iam';
import { ldapConnectorType } from './ldap';
import { mysqlConnectorType } from './mysql';
import { postgresConnectorType } from './postgres';
import { rabbitmqConnectorType } from './rabbitmq';
import { redisConnectorType } from './redis';
import { scimConnectorType } from './scim';
import { vaultConnectorType } from './vault';

/** One line per target system. */
const CONNECTOR_TYPES: readonly ConnectorType<any>[] = [ // eslint-disable-line @typescript-eslint/no-explicit-any
  mysqlConnectorType,
  postgresConnectorType,
  redisConnectorType,
  rabbitmqConnectorType,
  ldapConnectorType,
  scimConnectorType,
  awsIamConnectorType,
  vaultConnectorType,
];

const capabilitiesSchema = z.object({ rotation: z.enum(['one-phase', 'two-phase']).optional(), secretSink: z.boolean().optional(), directory: z.boolean().optional() }).strict();
for (const t of CONNECTOR_TYPES) {
  // A declaration the registry cannot read is a programming error: it stops the process as soon as this loads.
  const parsed = capabilitiesSchema.safeParse(t.capabilities);
  if (!parsed.success) throw new Error(`connector type '${t.type}': capabilities: ${parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`);
}

const byType = new Map<string, ConnectorType<BaseInstanceConfig>>(CONNECTOR_TYPES.map((t) => [t.type, t]));

/** What a connector type declares it can do beyond the Connector interface. */
export function capabilitiesOf(type: string): ConnectorCapabilities {
  const t = byType.get(type);
  if (!t) throw new Error(`unknown connector type '${type}'`);
  return t.capabilities;
}

export const connectorsFileSchema = z
  .object({
    connectors: z
      .array(
        z.discriminatedUnion(
          'type',
          CONNECTOR_TYPES.map((t) => t.schema) as unknown as [z.ZodDiscriminatedUnionOption<'type'>, ...z.ZodDiscriminatedUnionOption<'type'>[]],
          { errorMap: (issue, ctx) => (issue.code === z.ZodIssueCode.invalid_union_discriminator ? { message: `type must be one of ${knownTypes().join(', ')}` } : { message: ctx.defaultError }) },
        ),
      )
      .min(1),
  })
  .strict();

export interface ConnectorsFile {
  connectors: (BaseInstanceConfig & Record<string, unknown>)[];
}

export function knownTypes(): string[] {
  return [...byType.keys()];
}

export function parseConnectorsFile(raw: unknown, source = 'connector configuration'): ConnectorsFile {
  const parsed = connectorsFileSchema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`${source}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const file = parsed.data as ConnectorsFile;
  const names = file.connectors.map((c) => c.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new Error(`${source}: connector name '${dup}' is defined twice`);
  return file;
}

export function loadConnectorsFile(path: string): ConnectorsFile {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`connector configuration ${path}: cannot read JSON`, { cause: err });
  }
  return parseConnectorsFile(raw, `connector configuration ${path}`);
}

function typeOf(cfg: BaseInstanceConfig): ConnectorType<BaseInstanceConfig> {
  const t = byType.get(cfg.type);
  if (!t) throw new Error(`connector '${cfg.name}': unknown type '${cfg.type}'`);
  return t;
}

/** A secrets store's grammar checks destination paths; no other grammar pretends to. */
function checkedGrammar(cfg: BaseInstanceConfig): ConnectorGrammar {
  const t = typeOf(cfg);
  const grammar = t.grammar(cfg);
  if (Boolean(t.capabilities.secretSink) !== (typeof grammar.validateSecretPath === 'function')) {
    throw new Error(`connector '${cfg.name}': type '${t.type}' ${t.capabilities.secretSink ? 'declares secretSink but its grammar has no validateSecretPath' : 'has validateSecretPath without declaring secretSink'}`);
  }
  return grammar;
}

/** A config built in code gets the same checks and defaults as one read from a file. */
function normalised(cfg: BaseInstanceConfig): BaseInstanceConfig {
  const parsed = typeOf(cfg).schema.safeParse(cfg);
  if (!parsed.success) {
    throw new Error(`connector '${cfg.name}': ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const cfgOut = parsed.data as BaseInstanceConfig;
  for (const t of typeOf(cfg).transport?.(cfgOut) ?? []) requireEncryptedTransport(cfgOut, t.host, t.encrypted, t.fix);
  return cfgOut;
}

/** A privilege class of the governance policy, as planning consults it. */
export interface GrantClass {
  name: string;
  maxTtl: string;
  maxTtlMs: number;
  /** The identity types that may hold a grant of the class with no ttl and no `until` (standing access). */
  standing?: { identityTypes: readonly string[] };
}

export interface SystemPolicy {
  maxTtlMs?: number;
  /** Grants (canonical text) that need a change manager's decision before they are made (the governance policy). */
  isPrivileged: (grant: string) => boolean;
  /** The privilege class of a grant and its longest ttl (the governance policy), where one applies. */
  classOf: (grant: string) => GrantClass | undefined;
  /** Whether an emergency change may run an action of this kind here before it is authorized (the governance policy). */
  beforeAuthorization: (kind: string) => boolean;
  /** The terms a grant made before authorization is reviewed under (the governance policy's `exceptions`). */
  exceptionTerms: () => ExceptionTerms | undefined;
}

/** What the governance policy tells the grammars, per system. */
export interface GrantPolicy {
  isPrivileged(system: string, grant: string): boolean;
  classOf(system: string, grant: string): GrantClass | undefined;
  beforeAuthorization?(system: string, kind: string): boolean;
  exceptionTerms?(): ExceptionTerms;
}

const NO_GRANT_POLICY: GrantPolicy = { isPrivileged: () => false, classOf: () => undefined };

export interface GrammarEntry {
  grammar: ConnectorGrammar;
  policy: SystemPolicy;
  capabilities: ConnectorCapabilities;
}

/** What the HTTP edge needs: names, grammars, declared capabilities and policy; no credentials, no connections. */
export class GrammarRegistry {
  private readonly entries = new Map<string, GrammarEntry>();

  /** `grants` is the governance policy (src/policy): which grants need a decision, and how long each class may last. */
  constructor(file: ConnectorsFile, grants: GrantPolicy = NO_GRANT_POLICY) {
    for (const raw of file.connectors) {
      const cfg = normalised(raw);
      this.entries.set(cfg.name, {
        grammar: checkedGrammar(cfg),
        policy: {
          maxTtlMs: cfg.policy.maxTtl ? (parseIsoDuration(cfg.policy.maxTtl) ?? undefined) : undefined,
          isPrivileged: (grant) => grants.isPrivileged(cfg.name, grant),
          classOf: (grant) => grants.classOf(cfg.name, grant),
          beforeAuthorization: (kind) => grants.beforeAuthorization?.(cfg.name, kind) ?? false,
          exceptionTerms: () => grants.exceptionTerms?.(),
        },
        capabilities: typeOf(cfg).capabilities,
      });
    }
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  get(system: string): GrammarEntry | undefined {
    return this.entries.get(system);
  }
}

/** The worker's registry: live connectors, opened lazily, closed together. */
export class ConnectorRegistry {
  private readonly live = new Map<string, Connector>();
  private readonly configs: Map<string, BaseInstanceConfig>;

  constructor(
    file: ConnectorsFile,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.configs = new Map(file.connectors.map((c) => [c.name, normalised(c)]));
    for (const cfg of this.configs.values()) checkedGrammar(cfg);
  }

  names(): string[] {
    return [...this.configs.keys()];
  }

  get(system: string): Connector {
    const existing = this.live.get(system);
    if (existing) return existing;
    const cfg = this.configs.get(system);
    if (!cfg) throw new ConnectorRefusal(FailureType.UnknownSystem, `no connector named '${system}' is configured`);
    const type = typeOf(cfg);
    const connector = type.create(cfg, envSecrets(this.env, cfg.name));
    // The live connector must do exactly what its type declares: a mismatch is a bug in the type, refused before use.
    const problems = capabilityProblems(type.capabilities, connector);
    if (problems.length > 0) {
      void connector.close();
      throw new Error(`connector '${system}' (type '${type.type}'): ${problems.join('; ')}`);
    }
    this.live.set(system, connector);
    return connector;
  }

  /** The instance's leaver policy: what revokeIdentity composes from the connector's primitives. */
  revokeMode(system: string): RevokeMode {
    const cfg = this.configs.get(system);
    if (!cfg) throw new ConnectorRefusal(FailureType.UnknownSystem, `no connector named '${system}' is configured`);
    return cfg.policy.revokeMode ?? 'delete';
  }

  /** The instance's ownership rules, for the inventory (policy.ownership). */
  ownershipRules(system: string): OwnershipRule[] {
    const cfg = this.configs.get(system);
    if (!cfg) throw new ConnectorRefusal(FailureType.UnknownSystem, `no connector named '${system}' is configured`);
    return cfg.policy.ownership ?? [];
  }

  /** What the connector's type declares it can do. */
  capabilities(system: string): ConnectorCapabilities {
    const cfg = this.configs.get(system);
    if (!cfg) throw new ConnectorRefusal(FailureType.UnknownSystem, `no connector named '${system}' is configured`);
    return typeOf(cfg).capabilities;
  }

  /** A connector whose type declares rotation; two-phase rotators come with retireOthers. */
  rotator(system: string): { phases: 1; rotator: CredentialRotator } | { phases: 2; rotator: TwoPhaseRotator } {
    const rotation = this.capabilities(system).rotation;
    if (!rotation) throw new ConnectorRefusal(FailureType.TargetRefused, `${system} has no credentials the gateway rotates`);
    // get() has checked the live connector against this declaration.
    const connector = this.get(system) as unknown;
    return rotation === 'two-phase' ? { phases: 2, rotator: connector as TwoPhaseRotator } : { phases: 1, rotator: connector as CredentialRotator };
  }

  /** A configured connector whose type declares it stores rotated credentials (the Vault-API connector). */
  sink(system: string): SecretSink {
    if (!this.capabilities(system).secretSink) {
      throw new ConnectorRefusal(FailureType.TargetRefused, `connector '${system}' cannot store credentials (it is not a secrets store)`);
    }
    return this.get(system) as unknown as SecretSink;
  }

  /** A configured connector whose type declares it is a directory of people (LDAP: who a person's manager is). */
  directory(system: string): DirectoryReader {
    if (!this.capabilities(system).directory) {
      throw new ConnectorRefusal(FailureType.TargetRefused, `connector '${system}' is not a directory of people (it cannot say who a person's manager is)`);
    }
    return this.get(system) as unknown as DirectoryReader;
  }

  async close(): Promise<void> {
    await Promise.all([...this.live.values()].map((c) => c.close()));
    this.live.clear();
  }
}
