/**
 * `npm start`: the gateway with embedded defaults, in one process through startGateway (the wiring the tests and
 * benchmarks use). Starts what is not configured — a Temporal dev server (SQLite under .data/, Web UI on 8233) when
 * TEMPORAL_ADDRESS is unset, the ServiceNow simulator on :8090 when SERVICENOW_URL is unset, the demo LDAP
 * directory and the demo secrets store (OpenBao) with the demo connectors — runs the migrations as the migration
 * account, registers the demo API tokens as the application account, then serves the API and runs the worker.
 * Ctrl-C stops everything, API and worker before what they talk to. Production runs the API and the worker as
 * separate processes (api-main, worker-main; see docker-compose.yml).
 */
import { freshNumberBase } from './itsm/servicenow/servicenow-simulator';
import { existsSync, readFileSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { ensureDemoTokens } from './auth/demo-tokens';
import { evidenceSealer } from './evidence/evidence-seal';
import { ensureDemoSigningKey } from './evidence/evidence-signing';
import { type Config, dashboardSettings, discoveryIntervalMs, evidenceSealKey, jiraSite, loadConfig, metricsListen, migrationDatabaseUrl, notifySettings, oidcSettings, reconcileIntervalMs, servicenowCredentials, servicenowSettings, writeBackBackoff } from './config';
import { loadJiraSettings } from './itsm/jira/jira-settings';
import { type ConnectorsFile, loadConnectorsFile } from './connectors/registry';
import { loadPolicyFile } from './policy/policy';
import { type GatewayOptions, startGateway } from './gateway';
import { DEMO_AUDIENCE, DEMO_SCOPE, ensureDemoUsers, startDemoIdentityProvider } from './launcher/demo-identity-provider';
import { startDemoLdap } from './launcher/demo-ldap';
import { startDemoOpenBao } from './launcher/demo-openbao';
import { createLogger, temporalLogSink } from './logger';
import { migrateDatabase, openDatabase } from './persistence/data-source';

const ROOT = resolve(__dirname, extname(__filename) === '.ts' ? '..' : '../..');
const log = createLogger('launcher');

function readDemoSecrets(): Record<string, string> {
  const file = resolve(ROOT, '.data/demo.env');
  if (!existsSync(file)) return {};
  return Object.fromEntries(
    readFileSync(file, 'utf8')
      .split('\n')
      .map((l) => /^([A-Z_]+)=(.*)$/.exec(l.trim()))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1] as string, m[2] as string]),
  );
}

function demoDatabaseUrl(user: string, password: string): string {
  return `mysql://${user}:${encodeURIComponent(password)}@127.0.0.1:3306/changegate`;
}

function credentialEnvNames(file: ConnectorsFile): string[] {
  return file.connectors.flatMap((c) => Object.entries(c).filter(([k, v]) => k.endsWith('Env') && typeof v === 'string').map(([, v]) => v as string));
}

// What the launcher started, stopped in reverse on Ctrl-C, on SIGTERM and when start-up fails half-way.
const stops: Array<() => Promise<void>> = [];
let stopping = false;
/** A gateway still starting (e.g. bundling workflows) when Ctrl-C arrives is awaited, then stopped like the rest. */
let starting: Promise<unknown> | undefined;
async function shutdown(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  await starting?.catch(() => undefined);
  for (const stop of stops.splice(0).reverse()) await stop().catch((err: unknown) => log.warn('stop step failed', { error: (err as Error).message }));
  log.info('changegate stopped');
  process.exit(code);
}
// Installed before anything starts, so a Ctrl-C during start-up also stops what has started so far.
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

function jiraGatewayOptions(config: ReturnType<typeof loadConfig>, simulator: boolean, port: number): Parameters<typeof startGateway>[0]['jira'] {
  const settings = loadJiraSettings(config.JIRA_SETTINGS, ROOT);
  const webhookSecret = config.JIRA_WEBHOOK_SECRET as string;
  if (simulator) {
    const stateFile = resolve(ROOT, '.data/jira-simulator.json');
    return { site: { simulator: { email: config.JIRA_USERNAME as string, apiToken: config.JIRA_API_TOKEN as string, port, stateFile } }, settings, webhookSecret };
  }
  const auth = jiraSite(config);
  return auth ? { site: { auth }, settings, webhookSecret } : undefined;
}

async function main(): Promise<void> {
  const demo = readDemoSecrets();
  const demoConnectors = !process.env.CONNECTORS_CONFIG;
  const env: NodeJS.ProcessEnv = { ...process.env };
  env.CONNECTORS_CONFIG ??= resolve(ROOT, 'config/connectors.demo.json');
  const connectors = loadConnectorsFile(env.CONNECTORS_CONFIG);
  // Each connector reads its credential from the variable its config names (`passwordEnv`, `tokenEnv`, …); only those
  // are taken from the demo secrets: the operator-only ones (e.g. the demo directory's rootdn password) stay out.
  for (const key of credentialEnvNames(connectors)) {
    if (demo[key] !== undefined) process.env[key] ??= demo[key];
  }
  env.SERVICENOW_WEBHOOK_SECRET ??= demo.SERVICENOW_WEBHOOK_SECRET;
  env.DEPLOY_WEBHOOK_SECRET ??= demo.DEPLOY_WEBHOOK_SECRET;
  env.SECRET_SCANNING_WEBHOOK_SECRET ??= demo.SECRET_SCANNING_WEBHOOK_SECRET;
  env.CHANGEGATE_ADMIN_TOKEN ??= demo.CHANGEGATE_ADMIN_TOKEN;
  // The demo's evidence seal key, made by scripts/setup.sh (a key made here per start would unseal every row).
  env.CHANGEGATE_EVIDENCE_SEAL_KEY ??= demo.CHANGEGATE_EVIDENCE_SEAL_KEY;
  // The demo's evidence signing key, made on first start beside the demo secrets (owner-only, never printed).
  env.CHANGEGATE_EVIDENCE_SIGNING_KEY ??= ensureDemoSigningKey(resolve(ROOT, '.data/evidence-signing-key.pem'));
  // The demo database's two accounts, made by scripts/setup.sh: the gateway runs as changegate_app, which holds no
  // DDL; the migrations run as changegate_migrate. A DATABASE_URL of the operator's own is left alone, and so is
  // where its migrations run (MIGRATION_DATABASE_URL, or the same account).
  if (!env.DATABASE_URL && demo.CHANGEGATE_APP_PASSWORD) {
    env.DATABASE_URL = demoDatabaseUrl('changegate_app', demo.CHANGEGATE_APP_PASSWORD);
    if (demo.CHANGEGATE_MIGRATE_PASSWORD) env.MIGRATION_DATABASE_URL ??= demoDatabaseUrl('changegate_migrate', demo.CHANGEGATE_MIGRATE_PASSWORD);
  }
  const devServer = !env.TEMPORAL_ADDRESS;
  if (devServer) env.TEMPORAL_ADDRESS = '127.0.0.1:7233';
  const simulator = !env.SERVICENOW_URL;
  const simulatorPort = Number(env.SIMULATOR_PORT ?? 8090);
  if (simulator) {
    env.SERVICENOW_URL = `http://127.0.0.1:${simulatorPort}`;
    env.SERVICENOW_USERNAME = 'changegate';
    env.SERVICENOW_PASSWORD = demo.SERVICENOW_PASSWORD ?? 'changegate-demo-password';
  }
  // The Jira simulator on :8091 when no Jira site is configured; its issue numbers never repeat across restarts.
  const jiraSimulator = !env.JIRA_URL && !env.JIRA_CLOUD_ID;
  const jiraSimulatorPort = Number(env.JIRA_SIMULATOR_PORT ?? 8091);
  env.JIRA_WEBHOOK_SECRET ??= demo.JIRA_WEBHOOK_SECRET;
  if (jiraSimulator) {
    env.JIRA_USERNAME = demo.JIRA_USERNAME ?? 'changegate@example.com';
    env.JIRA_API_TOKEN = demo.JIRA_API_TOKEN ?? 'changegate-demo-jira-token';
    env.JIRA_WEBHOOK_SECRET ??= 'changegate-demo-jira-webhook-secret';
  }
  // No issuer configured: the demo identity provider on its own port, its users in the demo secrets file. The API
  // verifies its tokens through the ordinary OIDC_* settings, as it would any issuer's.
  const demoIdp = env.OIDC_ISSUER
    ? undefined
    : await startDemoIdentityProvider({ users: ensureDemoUsers(resolve(ROOT, '.data/demo.env')), port: Number(env.CHANGEGATE_DEMO_OIDC_PORT ?? 8092), log: log.child('demo-oidc') });
  if (demoIdp) {
    stops.push(() => demoIdp.stop());
    env.OIDC_ISSUER = demoIdp.issuer;
    env.OIDC_AUDIENCE = DEMO_AUDIENCE;
    env.OIDC_DASHBOARD_SCOPE ??= DEMO_SCOPE;
  }
  env.TEMPORAL_UI_URL ??= devServer ? 'http://127.0.0.1:8233' : undefined;
  const config = loadConfig(env);
  const temporalLevel = ({ debug: 'DEBUG', info: 'INFO', warn: 'WARN', error: 'ERROR' } as const)[config.LOG_LEVEL];
  // The launcher owns SIGINT/SIGTERM: the SDK must not start its own shutdown in parallel.
  Runtime.install({ logger: new DefaultLogger(temporalLevel, temporalLogSink(log.child('temporal'))), shutdownSignals: [] });

  if (demoConnectors) {
    const ldap = await startDemoLdap(ROOT, log);
    if (ldap) stops.push(() => ldap.stop());
    // The demo secrets store rotations and deploys deliver to (connector vault-local); its token is made per start.
    const openbao = await startDemoOpenBao(ROOT, demo.OPENBAO_DEMO_ROOT_TOKEN, log);
    if (openbao) {
      stops.push(() => openbao.stop());
      process.env.VAULT_LOCAL_TOKEN ??= openbao.gatewayToken;
    }
  }

  await migrateDatabase(migrationDatabaseUrl(config), { evidenceSealer: evidenceSealer(evidenceSealKey(config)) });
  log.info('migrations up to date');
  const ds = await openDatabase(config.DATABASE_URL);
  await ensureDemoTokens(resolve(ROOT, '.data/demo.env'), ds); // principals: one API token per role, see src/auth/demo-tokens.ts
  await ds.destroy();

  const gatewayStart = startGateway({
    temporal: devServer
      ? {
          devServer: {
            port: 7233,
            uiPort: 8233,
            dbFile: resolve(ROOT, '.data/temporal/dev.sqlite'),
            logFile: resolve(ROOT, '.data/logs/temporal.log'),
            detached: true,
          },
        }
      : { address: config.TEMPORAL_ADDRESS },
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    databaseUrl: config.DATABASE_URL,
    connectors,
    policy: loadPolicyFile(resolve(ROOT, config.CHANGEGATE_POLICY), connectors.connectors.map((c) => c.name)),
    servicenow: simulator
      ? simulatorWith(config, simulatorPort)
      : { url: config.SERVICENOW_URL, ...servicenowCredentials(config) },
    webhookSecret: config.SERVICENOW_WEBHOOK_SECRET,
    jira: jiraGatewayOptions(config, jiraSimulator, jiraSimulatorPort),
    deployWebhookSecret: config.DEPLOY_WEBHOOK_SECRET,
    notify: notifySettings(config),
    leaks: {
      webhookSecret: config.SECRET_SCANNING_WEBHOOK_SECRET,
      ...(config.GITHUB_TOKEN ? { github: { apiUrl: config.GITHUB_API_URL, token: config.GITHUB_TOKEN } } : {}),
    },
    adminToken: config.CHANGEGATE_ADMIN_TOKEN,
    evidenceSigningKey: config.CHANGEGATE_EVIDENCE_SIGNING_KEY,
    evidenceSealKey: evidenceSealKey(config),
    oidc: oidcSettings(config),
    dashboard: dashboardSettings(config),
    maxBodyBytes: config.WEBHOOK_MAX_BODY_BYTES,
    api: { port: config.PORT, host: config.HOST },
    worker: { maxCachedWorkflows: config.TEMPORAL_MAX_CACHED_WORKFLOWS, writeBackBackoff: writeBackBackoff(config) },
    discovery: { intervalMs: discoveryIntervalMs(config) },
    servicenowSettings: servicenowSettings(config),
    reconcile: { intervalMs: reconcileIntervalMs(config) },
    ...(metricsListen(config) ? { metrics: metricsListen(config) } : {}),
    ...(config.OTEL_EXPORTER_OTLP_ENDPOINT ? { traces: { endpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT } } : {}),
    log: createLogger('gateway', config.LOG_LEVEL),
  });
  starting = gatewayStart.then((gw) => stops.push(() => gw.stop()));
  const gw = await gatewayStart;
  if (stopping) return;
  await demoIdp?.serve(`${gw.apiUrl}/dashboard/`);
  log.info('changegate started', {
    api: gw.apiUrl,
    temporal: gw.temporalAddress,
    temporalUi: devServer ? 'http://127.0.0.1:8233' : undefined,
    servicenow: gw.servicenowUrl,
    jira: gw.jiraUrl,
    metrics: gw.metricsUrl,
    dashboard: `${gw.apiUrl}/dashboard/`,
    login: demoIdp ? `demo users in .data/demo.env (issuer ${demoIdp.issuer})` : config.OIDC_ISSUER,
    secrets: simulator ? '.data/demo.env' : undefined,
  });
}

/** The demo simulator, issuing OAuth tokens to the configured client when SERVICENOW_AUTH=oauth (basic otherwise). */
function simulatorWith(config: Config, port: number): GatewayOptions['servicenow'] {
  const { username, password, oauth } = servicenowCredentials(config);
  // Numbered from a base that grows with the clock: a restart never hands out a number whose workflow finished.
  const simulator = { username, password, port, numberBase: freshNumberBase() };
  if (!oauth) return { simulator };
  return { simulator: { ...simulator, oauth: { clientId: oauth.clientId, clientSecret: oauth.clientSecret, clientCredentials: oauth.grant === 'client_credentials' } }, clientOAuth: oauth };
}

main().catch((err: unknown) => {
  console.error('changegate failed to start:', err instanceof Error ? err.message : err);
  void shutdown(1);
});
