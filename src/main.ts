/**
 * `npm start`: the gateway with embedded defaults. Starts what is not configured — a Temporal dev server (SQLite
 * under .data/, Web UI on 8233) when TEMPORAL_ADDRESS is unset, the ServiceNow simulator when SERVICENOW_URL is
 * unset — runs the migrations, then the API and the worker as two child processes. Ctrl-C stops everything.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import { ensureDemoTokens } from './auth/demo-tokens';
import { loadConfig } from './config';
import { startDemoLdap } from './launcher/demo-ldap';
import { type ConnectorsFile, loadConnectorsFile } from './connectors/registry';
import { createLogger } from './logger';
import { openDatabase } from './persistence/data-source';
import { createServiceNowSimulator } from './itsm/servicenow/servicenow-simulator';
import { type DevServer, startDevServer } from './temporal/dev-server';

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

function credentialEnvNames(file: ConnectorsFile): string[] {
  return file.connectors.flatMap((c) => Object.entries(c).filter(([k, v]) => k.endsWith('Env') && typeof v === 'string').map(([, v]) => v as string));
}

// What the launcher started, stopped in reverse on Ctrl-C, on SIGTERM and when start-up fails half-way.
const stops: Array<() => Promise<void>> = [];
const children: ChildProcess[] = [];
let stopping = false;
async function stopAll(): Promise<void> {
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((res) => {
          if (c.exitCode !== null || c.signalCode !== null) return res();
          c.once('exit', () => res());
          c.kill('SIGTERM');
        }),
    ),
  );
  for (const stop of stops.splice(0).reverse()) await stop().catch(() => undefined);
}
async function shutdown(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  await stopAll();
  log.info('changegate stopped');
  process.exit(code);
}
// Installed before anything starts, so a Ctrl-C during start-up also stops what has started so far.
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

async function main(): Promise<void> {
  const demo = readDemoSecrets();
  const demoConnectors = !process.env.CONNECTORS_CONFIG;
  const env: NodeJS.ProcessEnv = { ...process.env };
  const port = Number(env.PORT ?? 3000);
  env.PORT = String(port);
  env.CONNECTORS_CONFIG ??= resolve(ROOT, 'config/connectors.demo.json');
  // Each connector's credential, by the variable its config names (`passwordEnv`, `tokenEnv`, …), and no others:
  // the operator-only secrets in the file (e.g. the demo directory's rootdn password) stay out of the processes.
  for (const key of credentialEnvNames(loadConnectorsFile(env.CONNECTORS_CONFIG))) {
    if (demo[key] !== undefined) env[key] ??= demo[key];
  }
  env.SERVICENOW_WEBHOOK_SECRET ??= demo.SERVICENOW_WEBHOOK_SECRET;
  env.CHANGEGATE_ADMIN_TOKEN ??= demo.CHANGEGATE_ADMIN_TOKEN;
  if (!env.DATABASE_URL && demo.CHANGEGATE_APP_PASSWORD) {
    env.DATABASE_URL = `mysql://changegate_app:${encodeURIComponent(demo.CHANGEGATE_APP_PASSWORD)}@127.0.0.1:3306/changegate`;
  }

  if (demoConnectors) {
    const ldap = await startDemoLdap(ROOT, log);
    if (ldap) stops.push(() => ldap.stop());
  }

  let temporal: DevServer | undefined;
  if (!env.TEMPORAL_ADDRESS) {
    temporal = await startDevServer({
      port: 7233,
      uiPort: 8233,
      dbFile: resolve(ROOT, '.data/temporal/dev.sqlite'),
      logFile: resolve(ROOT, '.data/logs/temporal.log'),
      detached: true,
    });
    env.TEMPORAL_ADDRESS = temporal.address;
    stops.push(() => temporal!.stop());
    log.info('temporal dev server started', { address: temporal.address, ui: 'http://127.0.0.1:8233' });
  }

  if (!env.SERVICENOW_URL) {
    env.SERVICENOW_USERNAME = 'changegate';
    env.SERVICENOW_PASSWORD = demo.SERVICENOW_PASSWORD ?? 'changegate-demo-password';
    const sim = createServiceNowSimulator({
      username: env.SERVICENOW_USERNAME,
      password: env.SERVICENOW_PASSWORD,
      webhook: { url: `http://127.0.0.1:${port}/webhooks/servicenow`, secret: env.SERVICENOW_WEBHOOK_SECRET ?? '' },
    });
    const listening = await sim.listen(Number(env.SIMULATOR_PORT ?? 8090));
    env.SERVICENOW_URL = listening.url;
    stops.push(() => listening.close());
    log.info('servicenow simulator started', { url: listening.url, user: env.SERVICENOW_USERNAME, secrets: '.data/demo.env' });
  }

  const config = loadConfig(env);
  const ds = await openDatabase(config.DATABASE_URL, { migrate: true });
  await ensureDemoTokens(resolve(ROOT, '.data/demo.env'), ds); // principals: one API token per role, see src/auth/demo-tokens.ts
  await ds.destroy();
  log.info('migrations up to date');

  const run = (entry: string) => {
    const file = resolve(__dirname, `${entry}${extname(__filename)}`);
    const args = extname(__filename) === '.ts' ? ['--import', 'tsx', file] : [file];
    const child = spawn(process.execPath, args, { env, stdio: 'inherit' });
    children.push(child);
    child.once('exit', (code, signal) => {
      if (!stopping) {
        log.error(`${entry} exited`, { code, signal });
        void shutdown(1);
      }
    });
  };
  run('api-main');
  run('worker-main');
  log.info('changegate started', { api: `http://127.0.0.1:${port}`, temporalUi: temporal ? 'http://127.0.0.1:8233' : undefined });
}

main().catch((err: unknown) => {
  console.error('changegate failed to start:', err instanceof Error ? err.message : err);
  void shutdown(1);
});
