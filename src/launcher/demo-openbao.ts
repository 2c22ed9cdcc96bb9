import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { vaultGatewayPolicy } from '../connectors/vault/vault-policy';
import { portAnswers, stopChild, stopLeftover } from './child-process';

export interface DemoOpenBao {
  address: string;
  /** The gateway's least-privilege token for `vault-local`, made for this launch. */
  gatewayToken: string;
  stop(): Promise<void>;
}

type Log = { info(msg: string, fields?: object): void; warn(msg: string, fields?: object): void };

/** KV prefix of the demo connector `vault-local` (config/connectors.demo.json). */
export const DEMO_KV_PREFIX = 'changegate';

/**
 * The demo secrets store `vault-local` talks to: an OpenBao dev server (`bao`, installed into .venv by
 * scripts/setup.d/80-openbao.sh) on 127.0.0.1:8200, a child of the launcher that Ctrl-C stops. Dev mode keeps
 * everything in memory: what was delivered is gone when the launcher stops. Its root token is OPENBAO_DEMO_ROOT_TOKEN
 * from .data/demo.env (for people reading what was delivered), passed in the environment, never on the command line;
 * the gateway gets a token of its own, with the least-privilege policy of the vault connector, made at each start.
 */
export async function startDemoOpenBao(root: string, rootToken: string | undefined, log: Log, port = 8200): Promise<DemoOpenBao | undefined> {
  const bao = resolve(root, '.venv/bin/bao');
  if (!existsSync(bao) || !rootToken) {
    log.warn('demo secrets store not prepared (run scripts/setup.sh); vault-local will be unreachable');
    return undefined;
  }
  const dir = resolve(root, '.data/openbao');
  mkdirSync(dir, { recursive: true });
  const pidFile = resolve(dir, 'bao.pid');
  // .venv/bin/bao execs the bundled binary, so the leftover's argv[0] is that binary, a `bao`.
  await stopLeftover(pidFile, (argv) => basename(argv[0] ?? '') === 'bao' && argv[1] === 'server' && argv.includes('-dev'));
  if (await portAnswers(port)) {
    log.warn('port taken: the demo secrets store is not started; vault-local talks to whatever answers there', { port });
    return undefined;
  }
  const address = `http://127.0.0.1:${port}`;
  // Own process group: the launcher stops it after the worker, not the terminal's Ctrl-C before. No VAULT_*/BAO_*
  // settings of the caller's reach it, only the root token it is to accept.
  const child = spawn(bao, ['server', '-dev', `-dev-listen-address=127.0.0.1:${port}`, '-log-level=warn'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, BAO_DEV_ROOT_TOKEN_ID: rootToken },
  });
  if (child.pid) writeFileSync(pidFile, `${child.pid}\n`);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-2000);
  });
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${address}/v1/${path}`, {
      method,
      headers: { 'X-Vault-Token': rootToken, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`OpenBao ${method} ${path}: HTTP ${res.status}`);
    return (text ? JSON.parse(text) : {}) as T;
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    const healthy = await fetch(`${address}/v1/sys/health`).then((r) => r.status === 200, () => false);
    if (healthy) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      log.warn('demo secrets store did not start; vault-local will be unreachable', { exitCode: child.exitCode, stderr: stderr.trim() });
      return undefined;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  try {
    const mounts = (await call<{ data: Record<string, unknown> }>('GET', 'sys/mounts')).data;
    if (!('secret/' in mounts)) await call('POST', 'sys/mounts/secret', { type: 'kv', options: { version: '2' } });
    await call('PUT', 'sys/policies/acl/changegate-gateway', { policy: vaultGatewayPolicy({ kvPrefix: DEMO_KV_PREFIX }) });
    // 768 h is the dev server's ceiling; a demo that runs longer is restarted.
    const created = await call<{ auth: { client_token: string } }>('POST', 'auth/token/create', { policies: ['changegate-gateway'], display_name: 'changegate-gateway', ttl: '768h' });
    log.info('demo secrets store started', { address });
    return { address, gatewayToken: created.auth.client_token, stop: () => stopChild(child) };
  } catch (err) {
    await stopChild(child);
    log.warn('demo secrets store could not be prepared; vault-local will be unreachable', { error: (err as Error).message });
    return undefined;
  }
}
