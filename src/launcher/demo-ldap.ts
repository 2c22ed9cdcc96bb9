import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { portAnswers, stopChild, stopLeftover } from './child-process';

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
  await stopLeftover(resolve(dir, 'slapd.pid'), (argv) => argv[0] === SLAPD);
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
