import { parseIsoDuration } from '../actions/iso-duration';
import type { Connector, ConnectorGrammar } from './connector';
import type { ConnectorInstanceConfig, ConnectorsFile } from './connector-config';
import { ConnectorRefusal, FailureType } from './connector-errors';
import { createMysqlConnector } from './mysql/mysql-connector';
import { MysqlGrammar } from './mysql/mysql-grammar';

interface ConnectorType {
  grammar(cfg: ConnectorInstanceConfig): ConnectorGrammar;
  create(cfg: ConnectorInstanceConfig, env: NodeJS.ProcessEnv): Connector;
}

/** One line per target system. */
const CONNECTOR_TYPES: Record<ConnectorInstanceConfig['type'], ConnectorType> = {
  mysql: {
    grammar: (cfg) => new MysqlGrammar({ protectedAccounts: [...cfg.policy.protectedAccounts, cfg.user] }),
    create: (cfg, env) =>
      createMysqlConnector({
        name: cfg.name,
        host: cfg.host,
        port: cfg.port,
        user: cfg.user,
        password: requiredSecret(env, cfg.passwordEnv, cfg.name),
        protectedAccounts: [...cfg.policy.protectedAccounts, cfg.user],
      }),
  },
};

function requiredSecret(env: NodeJS.ProcessEnv, key: string, connector: string): string {
  const value = env[key];
  if (value === undefined) throw new Error(`connector '${connector}': environment variable ${key} (its password) is not set`);
  return value;
}

export interface SystemPolicy {
  maxTtlMs?: number;
}

/** What the HTTP edge needs: names, grammars and policy; no credentials, no connections. */
export class GrammarRegistry {
  private readonly entries = new Map<string, { grammar: ConnectorGrammar; policy: SystemPolicy }>();

  constructor(file: ConnectorsFile) {
    for (const cfg of file.connectors) {
      this.entries.set(cfg.name, {
        grammar: CONNECTOR_TYPES[cfg.type].grammar(cfg),
        policy: { maxTtlMs: cfg.policy.maxTtl ? (parseIsoDuration(cfg.policy.maxTtl) ?? undefined) : undefined },
      });
    }
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  get(system: string): { grammar: ConnectorGrammar; policy: SystemPolicy } | undefined {
    return this.entries.get(system);
  }
}

/** The worker's registry: live connectors, opened lazily, closed together. */
export class ConnectorRegistry {
  private readonly live = new Map<string, Connector>();
  private readonly configs: Map<string, ConnectorInstanceConfig>;

  constructor(
    file: ConnectorsFile,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.configs = new Map(file.connectors.map((c) => [c.name, c]));
  }

  get(system: string): Connector {
    const existing = this.live.get(system);
    if (existing) return existing;
    const cfg = this.configs.get(system);
    if (!cfg) throw new ConnectorRefusal(FailureType.UnknownSystem, `no connector named '${system}' is configured`);
    const connector = CONNECTOR_TYPES[cfg.type].create(cfg, this.env);
    this.live.set(system, connector);
    return connector;
  }

  async close(): Promise<void> {
    await Promise.all([...this.live.values()].map((c) => c.close()));
    this.live.clear();
  }
}
