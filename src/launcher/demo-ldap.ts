import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { resolve } from 'node:path';

const SLAPD = '/usr/sbin/slapd';

export interface DemoLdap {
  url: string;
  stop(): Promise<void>;
}

type Log = { info(msg: string, fields?: object): void; warn(msg: string, fields?: object): void };

/**
 * The demo directory `ldap-local` talks to: the slapd that scripts/setup.d/50-ldap.sh prepared in .data/ldap, run in
 * the foreground as a child of the launcher so that Ctrl-C (or any launcher exit) stops it. A slapd of this checkout
 * left over from a launcher that was killed hard is stopped first; a foreign server on the port is left alone and
 * reported, and the demo runs without it.
 */
export async function startDemoLdap(root: string, log: Log, port = 3890): Promise<DemoLdap | undefined> {
  const dir = resolve(root, '.data/ldap');
  const conf = resolve(dir, 'slapd.conf');
  if (!existsSync(conf) || !existsSync(SLAPD)) {
    log.warn('demo LDAP directory not prepared (run scripts/setup.sh); ldap-local will be unreachable');
    return undefined;
  }
  await stopLeftover(resolve(dir, 'slapd.pid'));
  if (await portAnswers(port)) {
    log.warn('port taken: the demo LDAP directory is not started; ldap-local talks to whatever answers there', { port });
    return undefined;
  }
  const url = `ldap://127.0.0.1:${port}`;
  // -d 0: stay in the foreground (a child we can stop) without debug output. Own process group: the launcher stops
  // it after the worker, not the terminal's Ctrl-C before.
  const child = spawn(SLAPD, ['-h', `${url}/`, '-f', conf, '-d', '0'], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-2000);
  });
  const deadline = Date.now() + 15_000;
  while (!(await portAnswers(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      log.warn('demo LDAP directory did not start; ldap-local will be unreachable', { exitCode: child.exitCode, stderr: stderr.trim() });
      return undefined;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  log.info('demo LDAP directory started', { url });
  return { url, stop: () => stopChild(child) };
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((res) => {
    if (child.exitCode !== null || child.signalCode !== null) return res();
    const force = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(force);
      res();
    });
    child.kill('SIGTERM');
  });
}

async function stopLeftover(pidFile: string): Promise<void> {
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 1 || !isSlapd(pid)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 10_000;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

function isSlapd(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] === SLAPD;
  } catch {
    return false;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function portAnswers(port: number): Promise<boolean> {
  return new Promise((res) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      res(true);
    });
    socket.once('error', () => res(false));
    socket.setTimeout(1000, () => {
      socket.destroy();
      res(false);
    });
  });
}
