import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '..');

/** A scratch checkout holding the real setup.sh and scripts/lib, with setup.d parts the test writes. */
function scratchCheckout(parts: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'cg-setup-'));
  mkdirSync(join(dir, 'scripts/setup.d'), { recursive: true });
  cpSync(join(ROOT, 'scripts/setup.sh'), join(dir, 'scripts/setup.sh'));
  cpSync(join(ROOT, 'scripts/lib'), join(dir, 'scripts/lib'), { recursive: true });
  cpSync(join(ROOT, 'scripts/with-node.sh'), join(dir, 'scripts/with-node.sh'));
  for (const [name, body] of Object.entries(parts)) writeFileSync(join(dir, 'scripts/setup.d', name), `#!/usr/bin/env bash\nset -euo pipefail\n${body}\n`);
  return dir;
}

describe('scripts/setup.sh', () => {
  let dir = '';
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = '';
  });

  test('no umask, working directory or variable set by one setup step reaches the next', () => {
    dir = scratchCheckout({
      '10-leaky.sh': 'umask 077\ncd /\nexport CG_LEAKED=exported\nCG_SHELL_VAR=plain',
      '20-observer.sh': 'printf "%s\\n%s\\n%s\\n%s\\n" "$(umask)" "$(pwd)" "${CG_LEAKED:-unset}" "${CG_SHELL_VAR:-unset}" > .data/observed',
    });
    execFileSync('bash', ['-c', 'umask 022 && exec bash scripts/setup.sh'], { cwd: dir, stdio: 'pipe' });
    const [mask, cwd, exported, plain] = readFileSync(join(dir, '.data/observed'), 'utf8').trim().split('\n');
    expect({ mask, cwd, exported, plain }).toEqual({ mask: '0022', cwd: dir, exported: 'unset', plain: 'unset' });
  });

  test("a caller's restrictive umask does not reach the steps, and the demo secrets file is still owner-only", () => {
    dir = scratchCheckout({ '20-observer.sh': 'umask > .data/observed' });
    execFileSync('bash', ['-c', 'umask 077 && exec bash scripts/setup.sh'], { cwd: dir, stdio: 'pipe' });
    expect(readFileSync(join(dir, '.data/observed'), 'utf8').trim()).toBe('0022');
    expect(statSync(join(dir, '.data/demo.env')).mode & 0o777).toBe(0o600);
  });

  test('demo secrets are generated once from nothing, mode 600, and later keys are appended without rewriting earlier ones', () => {
    dir = scratchCheckout({});
    execFileSync('bash', ['scripts/setup.sh'], { cwd: dir, stdio: 'pipe' });
    const first = readFileSync(join(dir, '.data/demo.env'), 'utf8');
    // The gateway's database accounts: the application account, and the migration account that holds the DDL.
    expect(first).toMatch(/^CHANGEGATE_APP_PASSWORD=[A-Za-z0-9]{20,}$/m);
    expect(first).toMatch(/^CHANGEGATE_MIGRATE_PASSWORD=[A-Za-z0-9]{20,}$/m);
    // The evidence seal key needs at least 32 bytes: it is made from 48 random ones.
    expect(first).toMatch(/^CHANGEGATE_EVIDENCE_SEAL_KEY=[A-Za-z0-9]{40,}$/m);
    expect(statSync(join(dir, '.data/demo.env')).mode & 0o777).toBe(0o600);
    execFileSync('bash', ['-c', 'umask 000 && . scripts/lib/setup-common.sh && ensure_secret CG_NEW_KEY && umask > .data/mask-after'], { cwd: dir });
    const second = readFileSync(join(dir, '.data/demo.env'), 'utf8');
    expect(second.startsWith(first)).toBe(true);
    expect(second.slice(first.length)).toMatch(/^CG_NEW_KEY=[A-Za-z0-9]{20,}\n$/);
    expect(statSync(join(dir, '.data/demo.env')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, '.data/mask-after'), 'utf8').trim()).toBe('0000');
    execFileSync('bash', ['scripts/setup.sh'], { cwd: dir, stdio: 'pipe' });
    expect(readFileSync(join(dir, '.data/demo.env'), 'utf8')).toBe(second);
  });

  test('a failing step stops setup with the step named', () => {
    dir = scratchCheckout({ '10-broken.sh': 'exit 3', '20-never.sh': 'touch .data/ran' });
    let stdout = '';
    let status = 0;
    try {
      execFileSync('bash', ['scripts/setup.sh'], { cwd: dir, stdio: 'pipe' });
    } catch (err) {
      status = (err as { status: number }).status;
      stdout = String((err as { stdout: Buffer }).stdout);
    }
    expect(status).not.toBe(0);
    expect(stdout).toContain('failed: scripts/setup.d/10-broken.sh');
    expect(() => statSync(join(dir, '.data/ran'))).toThrow();
  });
});

describe('the Node.js runtime', () => {
  test('the suite runs on a maintained LTS line (22 or 24) that package.json engines admits', () => {
    const major = Number(process.versions.node.split('.')[0]);
    expect([22, 24]).toContain(major);
    const engines = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
    const min = /^>=(\d+)\.(\d+)\.(\d+)$/.exec(engines);
    expect(min).not.toBeNull();
    const [a, b, c] = process.versions.node.split('.').map(Number) as [number, number, number];
    const [x, y, z] = (min as RegExpExecArray).slice(1).map(Number) as [number, number, number];
    expect(a * 1e6 + b * 1e3 + c).toBeGreaterThanOrEqual(x * 1e6 + y * 1e3 + z);
    expect(x).toBeGreaterThanOrEqual(22);
  });

  test('the pinned Node build setup installs is a 24.x LTS release that the engines field admits', () => {
    const pin = /^NODE_PIN=(\S+)$/m.exec(readFileSync(join(ROOT, 'scripts/lib/node-version.sh'), 'utf8'))?.[1];
    expect(pin).toMatch(/^24\.\d+\.\d+$/);
  });

  test('every package.json script that runs Node code runs it through scripts/with-node.sh, and npm refuses to install under an older Node', () => {
    const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    const runsNode = /\s(node|tsc|tsx|eslint|jest|npx)\s/;
    const offenders = Object.entries(scripts)
      .flatMap(([name, line]) => line.split('&&').map((part) => [name, part.trim()] as const))
      .filter(([, part]) => runsNode.test(` ${part} `) && !part.startsWith('bash scripts/with-node.sh '));
    expect(offenders).toEqual([]);
    expect(readFileSync(join(ROOT, '.npmrc'), 'utf8')).toMatch(/^engine-strict=true$/m);
  });

  test('package-lock.json is complete: npm ci accepts it without rewriting it', () => {
    const before = readFileSync(join(ROOT, 'package-lock.json'), 'utf8');
    // --dry-run resolves the whole tree against the lockfile and fails on any entry it would have to add.
    execFileSync('npm', ['ci', '--dry-run', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: ROOT, stdio: 'pipe' });
    expect(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')).toBe(before);
  });
});
