import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';

/**
 * Validates docker-compose.yml with the docker-compose CLI (no engine needed: `config` only parses, interpolates
 * and validates) and checks the production shape of the resolved file, the files it mounts, the Dockerfile and the
 * compose docs.
 *
 * docker-compose 1.29 has no `config --format json`, so the YAML it prints is read by indentation: it is PyYAML
 * block style with two-space indentation and sequences not indented under their key. Where structure matters (ports,
 * mounts, the Temporal dynamic config) the same output is also converted to JSON by the PyYAML that docker-compose
 * itself runs on, so no YAML library is needed here.
 */

const ROOT = resolve(__dirname, '..');
const COMPOSE_FILE = join(ROOT, 'docker-compose.yml');
const ENV_EXAMPLE = 'deploy/compose.env.example';

function locateDockerCompose(): string {
  try {
    const found = execFileSync('which', ['docker-compose'], { encoding: 'utf8' }).trim();
    if (found) return found;
  } catch {
    // fall through to the explicit failure below
  }
  throw new Error(
    'docker-compose was not found on PATH (`which docker-compose` failed). It is required to validate docker-compose.yml: ' +
      'install it (Debian: `apt-get install docker-compose`, as the setup script does) and re-run the test.',
  );
}

/** Every ${VAR...} the compose file reads, plus COMPOSE_* knobs: removed from the child so the host cannot leak in. */
function hermeticEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  const referenced = new Set<string>();
  for (const m of readFileSync(COMPOSE_FILE, 'utf8').matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)) referenced.add(m[1] as string);
  for (const key of Object.keys(env)) {
    if (referenced.has(key) || key.startsWith('COMPOSE_')) delete env[key];
  }
  return { ...env, ...extra };
}

interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

let dockerCompose = '';
let scratch = '';
let emptyEnvFile = '';

function compose(args: string[], env: NodeJS.ProcessEnv = hermeticEnv()): RunResult {
  const r = spawnSync(dockerCompose, ['--project-directory', ROOT, '-f', COMPOSE_FILE, ...args], {
    cwd: ROOT,
    env,
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// ---------------------------------------------------------------------------------------------------------------
// Minimal reader for `docker-compose config` output.
// ---------------------------------------------------------------------------------------------------------------

const indentOf = (line: string): number => line.length - line.trimStart().length;

function unquote(value: string): string {
  const v = value.trim();
  if (v.length >= 2 && v.startsWith("'") && v.endsWith("'")) return v.slice(1, -1).replace(/''/g, "'");
  if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) return JSON.parse(v) as string;
  return v;
}

/** Lines of the mapping entry `key` found at `indent`, without the key line itself (block children only). */
function childLines(lines: string[], key: string, indent: number): { inline: string | undefined; children: string[] } | undefined {
  const head = `${' '.repeat(indent)}${key}:`;
  const at = lines.findIndex((l) => l === head || l.startsWith(`${head} `));
  if (at < 0) return undefined;
  const rest = (lines[at] as string).slice(head.length).trim();
  const children: string[] = [];
  for (let i = at + 1; i < lines.length; i++) {
    const l = lines[i] as string;
    if (l.trim() === '') continue;
    const ind = indentOf(l);
    // Children are deeper, or sequence items at the same indent (PyYAML does not indent sequences under a key).
    if (ind > indent || (ind === indent && l.trimStart().startsWith('- '))) children.push(l);
    else break;
  }
  return { inline: rest === '' ? undefined : unquote(rest), children };
}

function parseServices(yaml: string): Map<string, string[]> {
  const lines = yaml.split('\n');
  const services = childLines(lines, 'services', 0);
  if (!services) throw new Error(`no top-level "services:" in docker-compose config output:\n${yaml}`);
  const out = new Map<string, string[]>();
  let current: string | undefined;
  for (const l of services.children) {
    const m = /^ {2}([A-Za-z0-9._-]+):\s*$/.exec(l);
    if (m) {
      current = m[1] as string;
      out.set(current, []);
    } else if (current) {
      out.get(current)?.push(l);
    }
  }
  return out;
}

class Service {
  constructor(
    readonly name: string,
    private readonly lines: string[],
  ) {}

  scalar(key: string): string | undefined {
    return childLines(this.lines, key, 4)?.inline;
  }

  /** `key:` followed by a block sequence of scalars (command, entrypoint, ...); an inline value is one item. */
  list(key: string): string[] | undefined {
    const entry = childLines(this.lines, key, 4);
    if (!entry) return undefined;
    if (entry.inline !== undefined) return [entry.inline];
    return entry.children.filter((l) => /^ {4}- /.test(l)).map((l) => unquote(l.replace(/^ {4}- /, '')));
  }

  /** `key:` followed by a block mapping of scalars (environment, build, ...). */
  map(key: string): Record<string, string> {
    const entry = childLines(this.lines, key, 4);
    const out: Record<string, string> = {};
    for (const l of entry?.children ?? []) {
      const m = /^ {6}([A-Za-z0-9_.-]+):(?: (.*))?$/.exec(l);
      if (m) out[m[1] as string] = unquote(m[2] ?? '');
    }
    return out;
  }

  /** depends_on in long form: service -> condition. */
  dependsOn(): Record<string, string> {
    const entry = childLines(this.lines, 'depends_on', 4);
    const out: Record<string, string> = {};
    let dep: string | undefined;
    for (const l of entry?.children ?? []) {
      const name = /^ {6}([A-Za-z0-9._-]+):\s*$/.exec(l);
      const cond = /^ {8}condition: (.+)$/.exec(l);
      if (name) dep = name[1];
      else if (cond && dep) out[dep] = unquote(cond[1] as string);
    }
    return out;
  }

  text(key: string): string {
    return (childLines(this.lines, key, 4)?.children ?? []).join('\n');
  }

  /**
   * The single-item `command` of a `sh -c` one-shot, decoded. PyYAML prints a multi-line string as one
   * double-quoted scalar folded at 80 columns: a trailing `\` continues the line, and `\ ` on the next line is an
   * escaped leading space. After unfolding, its escapes (\n, \", \\) are JSON's.
   */
  script(key: string): string {
    const entry = childLines(this.lines, key, 4);
    if (!entry) return '';
    const raw = entry.inline ?? entry.children.join('\n').replace(/^ {4}- /, '');
    const unfolded = raw.replace(/\\\n\s*(?:\\(?= ))?/g, '').replace(/\n\s+/g, ' ').trim();
    if (unfolded.startsWith('"')) {
      try {
        return JSON.parse(unfolded) as string;
      } catch {
        return unfolded;
      }
    }
    return unquote(unfolded);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Structured views: YAML via docker-compose's own PyYAML, nginx.conf, the Dockerfile, the docs.
// ---------------------------------------------------------------------------------------------------------------

/** YAML text -> JSON value, parsed by the Python interpreter docker-compose (a Python script) runs on. */
function yamlToJson(text: string): unknown {
  const shebang = /^#!\s*(\S+)/.exec(readFileSync(dockerCompose, 'utf8').split('\n', 1)[0] ?? '');
  if (!shebang) throw new Error(`${dockerCompose} is not a Python script; cannot borrow its PyYAML to read YAML`);
  const r = spawnSync(shebang[1] as string, ['-c', 'import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'], {
    input: text,
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`YAML did not parse (${r.status}):\n${r.stderr}`);
  return JSON.parse(r.stdout) as unknown;
}

interface ServiceJson {
  image?: string;
  ports?: (string | { published?: number | string; target: number | string; host_ip?: string })[];
  expose?: (string | number)[];
  volumes?: string[];
  restart?: string;
  depends_on?: Record<string, { condition: string }>;
  environment?: Record<string, string>;
  command?: string[];
}

interface PublishedPort {
  hostIp: string | undefined;
  published: string;
  target: string;
}

/** Short (`[ip:]host:container[/proto]`) and long forms, as docker-compose 1.29 prints them. */
function publishedPorts(service: ServiceJson): PublishedPort[] {
  return (service.ports ?? []).map((p) => {
    if (typeof p !== 'string') return { hostIp: p.host_ip, published: String(p.published ?? ''), target: String(p.target) };
    const parts = p.replace(/\/\w+$/, '').split(':');
    const target = parts.pop() as string;
    const published = parts.pop() ?? '';
    return { hostIp: parts.pop(), published, target };
  });
}

interface BindMount {
  host: string;
  target: string;
  mode: string | undefined;
}

/** Bind mounts only (host side absolute after `config`); named volumes are left out. */
function bindMounts(service: ServiceJson): BindMount[] {
  return (service.volumes ?? [])
    .map((v) => v.split(':'))
    .filter(([host]) => isAbsolute(host as string))
    .map(([host, target, mode]) => ({ host: host as string, target: target as string, mode }));
}

/** A host path inside this repository that exists (a mount of anything else would not work from a fresh clone). */
function expectRepoPath(hostPath: string, kind: 'file' | 'directory'): void {
  const rel = relative(ROOT, hostPath);
  expect({ hostPath, insideRepo: !rel.startsWith('..') && !isAbsolute(rel) }).toEqual({ hostPath, insideRepo: true });
  expect({ hostPath, exists: existsSync(hostPath) }).toEqual({ hostPath, exists: true });
  expect({ hostPath, kind: statSync(hostPath).isFile() ? 'file' : 'directory' }).toEqual({ hostPath, kind });
}

interface NginxDirective {
  name: string;
  args: string[];
  block: NginxDirective[] | undefined;
}

/**
 * nginx.conf -> directive tree. Enough of nginx's grammar to catch what breaks a config at start: a missing `;`,
 * unbalanced braces, a directive in the wrong block. Comments run from `#` to the end of the line.
 */
function parseNginx(text: string): NginxDirective[] {
  const tokens = [...text.matchAll(/#[^\n]*|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[{};]|[^\s{};#"']+/g)]
    .map((m) => m[0])
    .filter((t) => !t.startsWith('#'));
  let i = 0;
  const block = (depth: number): NginxDirective[] => {
    const out: NginxDirective[] = [];
    while (i < tokens.length) {
      const name = tokens[i++] as string;
      if (name === '}') {
        if (depth === 0) throw new Error('nginx.conf: unexpected "}"');
        return out;
      }
      if (name === '{' || name === ';') throw new Error(`nginx.conf: unexpected "${name}"`);
      const args: string[] = [];
      for (;;) {
        const t = tokens[i++];
        if (t === undefined || t === '}') throw new Error(`nginx.conf: directive "${name} ${args.join(' ')}" has no ";"`);
        if (t === ';') {
          out.push({ name, args, block: undefined });
          break;
        }
        if (t === '{') {
          out.push({ name, args, block: block(depth + 1) });
          break;
        }
        args.push(/^(["']).*\1$/s.test(t) ? t.slice(1, -1) : t);
      }
    }
    if (depth > 0) throw new Error('nginx.conf: missing "}"');
    return out;
  };
  return block(0);
}

const directives = (in_: NginxDirective[] | undefined, name: string): NginxDirective[] => (in_ ?? []).filter((d) => d.name === name);

/** RUN/COPY/FROM/ARG/CMD instructions of a Dockerfile, continuation lines joined, comments dropped. */
function dockerInstructions(text: string): { op: string; rest: string }[] {
  const joined = text
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((l) => /^\s*([A-Za-z]+)\s+(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ op: (m[1] as string).toUpperCase(), rest: (m[2] as string).trim() }));
}

/** `>=X[.Y[.Z]]` is the only engines form this project uses; anything else fails loudly rather than passing. */
function satisfiesMinimum(version: string, range: string): boolean {
  const min = /^>=\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(range.trim());
  if (!min) throw new Error(`package.json engines.node "${range}" is not of the form >=X.Y.Z; extend satisfiesMinimum`);
  const want = [min[1], min[2], min[3]].map((n) => Number(n ?? 0));
  const have = version.split('.').map(Number);
  for (let k = 0; k < 3; k++) {
    if ((have[k] ?? 0) !== want[k]) return (have[k] ?? 0) > (want[k] as number);
  }
  return true;
}

/** The text of each compose doc an operator reads: whole files, README.md's compose section, file comments. */
function composeDocs(): { file: string; text: string }[] {
  const comments = (file: string) =>
    readFileSync(join(ROOT, file), 'utf8')
      .split('\n')
      .filter((l) => /^\s*#/.test(l))
      .join('\n');
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Production shape');
  if (start < 0) throw new Error('README.md has no "## Production shape" section (the compose section)');
  const next = readme.indexOf('\n## ', start + 1);
  return [
    { file: 'deploy/README.md', text: readFileSync(join(ROOT, 'deploy/README.md'), 'utf8') },
    { file: 'README.md (Production shape)', text: readme.slice(start, next < 0 ? undefined : next) },
    { file: 'docker-compose.yml (comments)', text: comments('docker-compose.yml') },
    { file: 'deploy/compose.env.example (comments)', text: comments('deploy/compose.env.example') },
  ];
}

/** Each `docker-compose ...` / `docker compose ...` in a text, with its subcommand (options and their values skipped). */
function composeInvocations(text: string): { client: 'v1' | 'v2'; subcommand: string | undefined; line: string }[] {
  const withValue = new Set(['-f', '--file', '-p', '--project-name', '--project-directory', '--env-file', '--profile']);
  return [...text.matchAll(/\bdocker(-compose| compose)(?![\w.-])([^\n`]*)/g)].map((m) => {
    const words = (m[2] as string).trim().split(/\s+/).filter(Boolean);
    let k = 0;
    while (k < words.length && (words[k] as string).startsWith('-')) k += withValue.has(words[k] as string) ? 2 : 1;
    return { client: m[1] === '-compose' ? 'v1' : 'v2', subcommand: words[k], line: m[0].trim() };
  });
}

/** Repository paths a doc names (`deploy/...`, `src/...`, `Dockerfile`, ...); container paths like /etc/... are not. */
function repoPathsIn(text: string): string[] {
  const re = /(?<![\w./-])((?:deploy|config|src|scripts|test|workflows|activities|bench|dist)\/[\w./-]*[\w-]|Dockerfile|docker-compose\.yml|package(?:-lock)?\.json|tsconfig(?:\.build)?\.json)(?![\w/-])/g;
  return [...new Set([...text.matchAll(re)].map((m) => m[1] as string))];
}

interface TsBuild {
  outDir: string;
  rootDir: string;
  include: string[];
}

function tsBuild(): TsBuild {
  const build = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as { extends?: string; include: string[]; compilerOptions?: Partial<TsBuild> };
  const base = build.extends ? (JSON.parse(readFileSync(join(ROOT, build.extends), 'utf8')) as { compilerOptions?: Partial<TsBuild> }) : {};
  const opts = { ...base.compilerOptions, ...build.compilerOptions };
  if (!opts.outDir || !opts.rootDir) throw new Error('tsconfig.build.json (with its base) sets no outDir/rootDir');
  return { outDir: opts.outDir, rootDir: opts.rootDir, include: build.include };
}

/** `dist/src/api-main.js` -> `src/api-main.ts` when tsconfig.build.json compiles it there, else undefined. */
function sourceOfBuildOutput(jsPath: string, build: TsBuild): string | undefined {
  const out = relative(join(ROOT, build.outDir), join(ROOT, jsPath));
  if (out.startsWith('..') || !out.endsWith('.js')) return undefined;
  const source = join(build.rootDir, out.replace(/\.js$/, '.ts'));
  const top = source.split(sep)[0] as string;
  return build.include.includes(top) && existsSync(join(ROOT, source)) ? source : undefined;
}

// ---------------------------------------------------------------------------------------------------------------

describe('docker-compose.yml', () => {
  let services: Map<string, string[]>;
  let resolved: { services: Record<string, ServiceJson> } | undefined;
  const svc = (name: string): Service => {
    const lines = services.get(name);
    if (!lines) throw new Error(`service "${name}" missing; have: ${[...services.keys()].join(', ')}`);
    return new Service(name, lines);
  };
  const all = (): [string, ServiceJson][] => Object.entries(resolved?.services ?? {});
  const json = (name: string): ServiceJson => {
    const s = resolved?.services[name];
    if (!s) throw new Error(`service "${name}" missing; have: ${all().map(([n]) => n).join(', ')}`);
    return s;
  };
  /** `docker-compose config` once, read both ways (indentation reader and JSON). */
  const loadResolved = (): void => {
    if (resolved) return;
    const r = compose(['--env-file', ENV_EXAMPLE, 'config']);
    if (r.status !== 0) throw new Error(`docker-compose config failed (${r.status}):\n${r.stderr}`);
    services = parseServices(r.stdout);
    resolved = yamlToJson(r.stdout) as typeof resolved;
  };

  beforeAll(() => {
    dockerCompose = locateDockerCompose();
    scratch = mkdtempSync(join(tmpdir(), 'changegate-compose-'));
    // An explicitly empty env file: keeps any local `.env` in the project directory out of the "no env file" cases.
    emptyEnvFile = join(scratch, 'empty.env');
    writeFileSync(emptyEnvFile, '');
  });

  afterAll(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('validates with the example env file (config -q exits 0)', () => {
    const r = compose(['--env-file', ENV_EXAMPLE, 'config', '-q']);
    // stderr in the comparison so a failure shows docker-compose's message; a clean run prints nothing at all.
    expect({ status: r.status, stderr: r.stderr.trim() }).toEqual({ status: 0, stderr: '' });
  });

  describe('resolved configuration', () => {
    beforeAll(loadResolved);

    it('has every service of the production topology', () => {
      expect([...services.keys()].sort()).toEqual(
        [
          'changegate-api',
          'changegate-grants',
          'changegate-migrate',
          'changegate-proxy',
          'changegate-worker',
          'mysql',
          'temporal',
          'temporal-admin-tools',
          'temporal-create-namespace',
          'temporal-ui',
        ].sort(),
      );
    });

    it('pins every third-party image (no floating tags), mysql to the 8.4 LTS series', () => {
      expect(svc('mysql').scalar('image')).toMatch(/^mysql:8\.4\.\d+$/);
      // The grants one-shot's mysql client comes with the server it talks to.
      expect(svc('changegate-grants').scalar('image')).toBe(svc('mysql').scalar('image'));
      expect(svc('changegate-proxy').scalar('image')).toMatch(/^nginx:\d+\.\d+\.\d+(?:-[a-z0-9.]+)*$/);
      const server = svc('temporal').scalar('image');
      expect(server).toMatch(/^temporalio\/server:\d+\.\d+\.\d+$/);
      const version = (server as string).split(':')[1];
      // admin-tools carries the schema for its server version: they move together.
      expect(svc('temporal-admin-tools').scalar('image')).toBe(`temporalio/admin-tools:${version}`);
      expect(svc('temporal-create-namespace').scalar('image')).toBe(`temporalio/admin-tools:${version}`);
      expect(svc('temporal-ui').scalar('image')).toMatch(/^temporalio\/ui:\d+\.\d+\.\d+$/);
    });

    it('builds api, worker and migrate from the one Dockerfile into the same image', () => {
      const api = svc('changegate-api');
      const worker = svc('changegate-worker');
      const migrate = svc('changegate-migrate');
      expect(api.map('build').context).toBe(ROOT);
      for (const s of [worker, migrate]) {
        expect(s.map('build')).toEqual(api.map('build'));
        expect(s.scalar('image')).toBe(api.scalar('image'));
      }
      expect(api.scalar('image')).toBe('changegate:local');
    });

    it('runs different entry points for api, worker and migrate', () => {
      expect(svc('changegate-api').list('command')).toEqual(['node', 'dist/src/api-main.js']);
      expect(svc('changegate-worker').list('command')).toEqual(['node', 'dist/src/worker-main.js']);
      expect(svc('changegate-migrate').list('command')).toEqual(['node', 'dist/src/persistence/migrate-main.js']);
    });

    it('runs Temporal on MySQL 8 with the least-privilege temporal account', () => {
      const env = svc('temporal').map('environment');
      expect(env).toMatchObject({ DB: 'mysql8', MYSQL_SEEDS: 'mysql', DB_PORT: '3306', MYSQL_USER: 'temporal', BIND_ON_IP: '0.0.0.0' });
      expect(env.MYSQL_PWD).toBeTruthy();
      expect(svc('temporal').dependsOn()).toEqual({ 'temporal-admin-tools': 'service_completed_successfully' });
    });

    it('mounts a dynamic config file from the repo into temporal, read-only, and points DYNAMIC_CONFIG_FILE_PATH at it', () => {
      const temporal = json('temporal');
      const path = temporal.environment?.DYNAMIC_CONFIG_FILE_PATH ?? '';
      // Absolute, so it does not depend on the server image's WORKDIR.
      expect(path).toMatch(/^\/.+\.ya?ml$/);
      const mount = bindMounts(temporal).find((m) => path.startsWith(`${m.target}/`) || path === m.target);
      expect({ path, mountedBy: mount?.target }).toEqual({ path, mountedBy: expect.any(String) });
      const { host, target, mode } = mount as BindMount;
      expect(mode).toBe('ro');
      const hostFile = path === target ? host : join(host, path.slice(target.length + 1));
      expectRepoPath(hostFile, 'file');
      // The shape Temporal's file-based client reads: key -> list of { value, constraints? }.
      const doc = yamlToJson(readFileSync(hostFile, 'utf8'));
      expect(doc === null || (typeof doc === 'object' && !Array.isArray(doc))).toBe(true);
      for (const [key, values] of Object.entries((doc ?? {}) as Record<string, unknown>)) {
        expect({ key, isList: Array.isArray(values) }).toEqual({ key, isList: true });
        for (const v of values as Record<string, unknown>[]) {
          expect({ key, fields: Object.keys(v).filter((f) => f !== 'constraints') }).toEqual({ key, fields: ['value'] });
        }
      }
    });

    it('caps Temporal ids at the 255 characters the MySQL visibility columns hold', () => {
      const temporal = json('temporal');
      const path = temporal.environment?.DYNAMIC_CONFIG_FILE_PATH ?? '';
      const mount = bindMounts(temporal).find((m) => path.startsWith(`${m.target}/`)) as BindMount;
      const doc = yamlToJson(readFileSync(join(mount.host, path.slice(mount.target.length + 1)), 'utf8')) as Record<string, { value: unknown }[]>;
      const limits = (doc['limit.maxIDLength'] ?? []).map((v) => v.value);
      expect(limits.length).toBeGreaterThan(0);
      for (const limit of limits) expect(limit).toBeLessThanOrEqual(255);
    });

    it('sets up both Temporal databases with temporal-sql-tool --plugin mysql8', () => {
      const admin = svc('temporal-admin-tools');
      expect(admin.dependsOn()).toEqual({ mysql: 'service_healthy' });
      expect(admin.list('entrypoint')).toEqual(['/bin/sh', '-c']);
      const script = admin.script('command');
      expect(script).toMatch(/^sql\(\) \{ temporal-sql-tool --plugin mysql8 --ep mysql -p 3306 -u temporal "\$\$@"; \}$/m);
      const steps = script.split('\n').filter((l) => l.startsWith('sql --db '));
      expect(steps).toEqual([
        'sql --db temporal create-database',
        'sql --db temporal setup-schema -v 0.0',
        'sql --db temporal update-schema -d /etc/temporal/schema/mysql/v8/temporal/versioned',
        'sql --db temporal_visibility create-database',
        'sql --db temporal_visibility setup-schema -v 0.0',
        'sql --db temporal_visibility update-schema -d /etc/temporal/schema/mysql/v8/visibility/versioned',
      ]);
      // The password comes from the environment, never from the command line.
      expect(script).not.toMatch(/--pw|--password/);
      expect(admin.map('environment').SQL_PASSWORD).toBeTruthy();
    });

    it('creates the changegate namespace and its Keyword search attributes', () => {
      const ns = svc('temporal-create-namespace');
      expect(ns.dependsOn()).toEqual({ temporal: 'service_healthy' });
      const script = ns.script('command');
      expect(script).toMatch(/^addr=temporal:7233$/m);
      expect(script).toMatch(/^ns=changegate$/m);
      expect(script).toContain('temporal operator cluster health --address "$$addr"');
      expect(script).toContain('temporal operator namespace create --namespace "$$ns" --retention 720h');
      expect(script).toMatch(/^for sa in ChangegateTicket ChangegateSource ChangegateGate; do$/m);
      expect(script).toContain('temporal operator search-attribute create --namespace "$$ns" --name "$$sa" --type Keyword --address "$$addr"');
    });

    it('retries the namespace create/update a bounded number of times before the one-shot fails', () => {
      const script = svc('temporal-create-namespace').script('command');
      const fn = /^ensure_namespace\(\) \{\n([\s\S]*?)\n\}$/m.exec(script);
      expect(fn?.[1]).toContain('temporal operator namespace create --namespace "$$ns"');
      expect(fn?.[1]).toContain('temporal operator namespace update --namespace "$$ns"');
      expect(script).toMatch(/^until ensure_namespace; do\n(?:.*\n)*?\s*if \[ "\$\$tries" -ge \d+ \]; then .*exit 1; fi\n(?:.*\n)*?done$/m);
    });

    it('restarts every one-shot on failure a bounded number of times, and everything after it waits for it to complete', () => {
      const oneShots = new Set(
        all().flatMap(([, s]) => Object.entries(s.depends_on ?? {}).filter(([, d]) => d.condition === 'service_completed_successfully').map(([dep]) => dep)),
      );
      expect([...oneShots].sort()).toEqual(['changegate-grants', 'changegate-migrate', 'temporal-admin-tools', 'temporal-create-namespace']);
      for (const name of oneShots) {
        // Not always/unless-stopped: those rerun a one-shot that succeeded, so it never counts as completed.
        expect({ name, restart: json(name).restart }).toEqual({ name, restart: expect.stringMatching(/^on-failure:[1-9]\d*$/) });
      }
      for (const [name, s] of all()) {
        for (const [dep, { condition }] of Object.entries(s.depends_on ?? {})) {
          if (oneShots.has(dep)) expect({ name, dep, condition }).toEqual({ name, dep, condition: 'service_completed_successfully' });
        }
      }
    });

    it('starts api and worker only after migrations, the grants that follow them, and the namespace are done', () => {
      for (const name of ['changegate-api', 'changegate-worker']) {
        expect(svc(name).dependsOn()).toEqual({
          'changegate-grants': 'service_completed_successfully',
          'temporal-create-namespace': 'service_completed_successfully',
        });
      }
      expect(svc('changegate-grants').dependsOn()).toEqual({ 'changegate-migrate': 'service_completed_successfully' });
      expect(svc('changegate-migrate').dependsOn()).toEqual({ mysql: 'service_healthy' });
    });

    it("grants changegate_app its UPDATEs after each migration run, as root, from deploy/mysql-grants, and the migrations run as changegate_migrate", () => {
      const grants = json('changegate-grants');
      const dir = bindMounts(grants).find((m) => m.target === '/changegate-grants') as BindMount;
      expect(dir.mode).toBe('ro');
      expectRepoPath(dir.host, 'directory');
      expect(svc('changegate-grants').list('command')).toEqual(['mysql', '--host=mysql', '--user=root', '--execute=source /changegate-grants/changegate-app.sql']);
      const sql = readFileSync(join(dir.host, 'changegate-app.sql'), 'utf8').replace(/--[^\n]*/g, '');
      // UPDATE on tables, to changegate_app, and nothing else.
      const statements = sql.split(';').map((t) => t.trim()).filter(Boolean);
      expect(statements.length).toBeGreaterThan(0);
      for (const stmt of statements) expect(stmt).toMatch(/^GRANT UPDATE ON `changegate`\.`[a-z_]+` TO 'changegate_app'@'%'$/);
      // The root password reaches the client through its environment, not its command line.
      expect(Object.keys(svc('changegate-grants').map('environment'))).toEqual(['MYSQL_PWD']);
      expect(svc('changegate-grants').map('environment').MYSQL_PWD).toBe(svc('mysql').map('environment').MYSQL_ROOT_PASSWORD);
      expect(svc('changegate-migrate').map('environment').MIGRATION_DATABASE_URL).toMatch(/^mysql:\/\/changegate_migrate:[^@]+@mysql:3306\/changegate$/);
    });

    it('configures the gateway from env, with the connector password on the worker only', () => {
      const api = svc('changegate-api').map('environment');
      const worker = svc('changegate-worker').map('environment');
      expect(api).toMatchObject({
        PORT: '3000',
        HOST: '0.0.0.0',
        TEMPORAL_ADDRESS: 'temporal:7233',
        TEMPORAL_NAMESPACE: 'changegate',
        CONNECTORS_CONFIG: '/app/config/connectors.compose.json',
      });
      expect(api.DATABASE_URL).toMatch(/^mysql:\/\/changegate_app:[^@]+@mysql:3306\/changegate$/);
      // The seal key is shared configuration: the worker writes most evidence rows, the API writes and checks them.
      for (const key of ['SERVICENOW_URL', 'SERVICENOW_USERNAME', 'SERVICENOW_PASSWORD', 'SERVICENOW_WEBHOOK_SECRET', 'CHANGEGATE_ADMIN_TOKEN', 'CHANGEGATE_EVIDENCE_SEAL_KEY']) {
        expect(api[key]).toBeTruthy();
      }
      // Same gateway configuration in both processes (written once via x-changegate-env) ...
      const { MYSQL_LOCAL_PASSWORD, ...workerShared } = worker;
      const { CHANGEGATE_EVIDENCE_SIGNING_KEY, ...apiShared } = api;
      expect(workerShared).toEqual(apiShared);
      // ... but only the process that runs connectors holds the target credential, and only the API the key that
      // signs evidence exports.
      expect(MYSQL_LOCAL_PASSWORD).toBeTruthy();
      expect(api.MYSQL_LOCAL_PASSWORD).toBeUndefined();
      expect(CHANGEGATE_EVIDENCE_SIGNING_KEY).toBeDefined();
      expect(worker.CHANGEGATE_EVIDENCE_SIGNING_KEY).toBeUndefined();
      // The migrate one-shot gets the migration account (no other database credential), and the seal key the seal
      // migration seals the rows recorded before it with.
      expect(Object.keys(svc('changegate-migrate').map('environment')).sort()).toEqual(['CHANGEGATE_EVIDENCE_SEAL_KEY', 'MIGRATION_DATABASE_URL', 'NODE_ENV']);
      expect(svc('changegate-migrate').map('environment').CHANGEGATE_EVIDENCE_SEAL_KEY).toBe(api.CHANGEGATE_EVIDENCE_SEAL_KEY);
    });

    it('publishes no host port on the api (so --scale changegate-api=N cannot collide), exposing 3000 with a /healthz healthcheck', () => {
      const api = json('changegate-api');
      expect(publishedPorts(api)).toEqual([]);
      expect((api.expose ?? []).map(String)).toEqual([api.environment?.PORT]);
      const check = svc('changegate-api').text('healthcheck');
      expect(check).toContain('/healthz');
      expect(check).toMatch(/- node\b/);
    });

    it('publishes host port 3000 on the proxy only; other published ports are loopback-only and mysql has none', () => {
      const proxy = publishedPorts(json('changegate-proxy'));
      expect(proxy).toHaveLength(1);
      expect(proxy[0]).toMatchObject({ published: '3000' });
      for (const [name, s] of all()) {
        if (name === 'changegate-proxy') continue;
        for (const p of publishedPorts(s)) expect({ name, hostIp: p.hostIp }).toEqual({ name, hostIp: '127.0.0.1' });
      }
      expect(publishedPorts(json('mysql'))).toEqual([]);
      expect(json('changegate-proxy').depends_on).toEqual({ 'changegate-api': { condition: 'service_healthy' } });
    });

    it('routes the proxy to the api service by name on its port, re-resolving the name so scaled replicas join', () => {
      const proxy = json('changegate-proxy');
      const conf = bindMounts(proxy).find((m) => m.target === '/etc/nginx/nginx.conf');
      expect(conf?.mode).toBe('ro');
      expectRepoPath((conf as BindMount).host, 'file');
      const http = directives(parseNginx(readFileSync((conf as BindMount).host, 'utf8')), 'http');
      expect(http).toHaveLength(1);
      const httpBlock = (http[0] as NginxDirective).block;

      const apiTarget = `changegate-api:${json('changegate-api').environment?.PORT}`;
      const upstreams = directives(httpBlock, 'upstream').filter((u) => directives(u.block, 'server').some((d) => d.args[0] === apiTarget));
      expect(upstreams.map((u) => u.args[0])).toEqual([expect.any(String)]);
      const upstream = upstreams[0] as NginxDirective;
      for (const server of directives(upstream.block, 'server')) {
        // Without `resolve` nginx looks the name up once at start and never sees replicas added later.
        expect({ server: server.args[0], params: server.args.slice(1) }).toEqual({ server: apiTarget, params: expect.arrayContaining(['resolve']) });
      }
      expect(directives(upstream.block, 'zone')).toHaveLength(1);
      // Docker's embedded DNS, which answers for compose service names.
      const resolvers = [...directives(upstream.block, 'resolver'), ...directives(httpBlock, 'resolver')];
      expect(resolvers.map((r) => r.args[0])).toContain('127.0.0.11');

      const [published] = publishedPorts(proxy);
      const listening = directives(httpBlock, 'server').filter((srv) => directives(srv.block, 'listen').some((l) => l.args[0] === published?.target));
      expect(listening).toHaveLength(1);
      const root = directives((listening[0] as NginxDirective).block, 'location').filter((l) => l.args.join(' ') === '/');
      expect(root).toHaveLength(1);
      expect(directives((root[0] as NginxDirective).block, 'proxy_pass').map((d) => d.args)).toEqual([[`http://${upstream.args[0]}`]]);
    });

    it('gives mysql a mysqladmin ping healthcheck, a named volume and the least-privilege init script', () => {
      const mysql = svc('mysql');
      const check = mysql.text('healthcheck');
      expect(check).toContain('- mysqladmin');
      expect(check).toContain('- ping');
      const volumes = mysql.text('volumes');
      expect(volumes).toContain('- mysql-data:/var/lib/mysql');
      expect(volumes).toContain(`${join(ROOT, 'deploy/mysql-init')}:/docker-entrypoint-initdb.d:ro`);
      expect(mysql.list('command')).toContain('--log-bin-trust-function-creators=1');
    });

    it('creates every init-script account with caching_sha2_password and uses nothing MySQL 8.4 removed or disables', () => {
      const initDir = bindMounts(json('mysql')).find((m) => m.target === '/docker-entrypoint-initdb.d') as BindMount;
      expectRepoPath(initDir.host, 'directory');
      const sql = readFileSync(join(initDir.host, '01-users.sql'), 'utf8').replace(/--[^\n]*/g, '');
      const creates = sql.match(/^\s*CREATE USER\b[^;]*;/gim) ?? [];
      expect(creates.length).toBeGreaterThan(0);
      // Named, not left to the server default: mysql_native_password is off by default in 8.4 and gone in 9.0.
      for (const stmt of creates) expect(stmt).toMatch(/IDENTIFIED WITH caching_sha2_password BY /);
      // SET_USER_ID was removed in 8.4 (a syntax error now), default_authentication_plugin too; PASSWORD() in 8.0.
      expect(sql).not.toMatch(/mysql_native_password|SET_USER_ID|default_authentication_plugin|\bPASSWORD\s*\(/i);
      expect((json('mysql').command ?? []).join(' ')).not.toMatch(/default[-_]authentication[-_]plugin|mysql[-_]native[-_]password/);
    });
  });

  describe('required secrets', () => {
    it('fails without any env file, naming a missing variable', () => {
      const r = compose(['--env-file', emptyEnvFile, 'config', '-q']);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/\b[A-Z_]+ is required \(see deploy\/compose\.env\.example\)(?!\})/);
    });

    it('fails naming SERVICENOW_WEBHOOK_SECRET when only that one is missing', () => {
      const env = hermeticEnv({
        SERVICENOW_URL: 'https://example.service-now.com',
        SERVICENOW_USERNAME: 'changegate.integration',
        SERVICENOW_PASSWORD: 'test-password',
        CHANGEGATE_ADMIN_TOKEN: 'test-admin-token-0123456789',
        CHANGEGATE_EVIDENCE_SEAL_KEY: 'test-evidence-seal-key-0123456789abcdef',
      });
      expect(env.SERVICENOW_WEBHOOK_SECRET).toBeUndefined();
      const r = compose(['--env-file', emptyEnvFile, 'config', '-q'], env);
      expect(r.status).not.toBe(0);
      // docker-compose 1.29 also echoes the uninterpolated environment (where every `${VAR:?...}` text appears, each
      // followed by `}`); the interpolated error message itself is not.
      expect(r.stderr).toMatch(/SERVICENOW_WEBHOOK_SECRET is required \(see deploy\/compose\.env\.example\)(?!\})/);
      expect(r.stderr).not.toMatch(/SERVICENOW_URL is required \(see deploy\/compose\.env\.example\)(?!\})/);
    });
  });

  describe('compose docs', () => {
    it('deploy/README.md starts the stack with Compose v2, and the docs use the v1 client for `config` only', () => {
      const docs = composeDocs();
      const readme = composeInvocations((docs[0] as { text: string }).text);
      expect(readme.filter((c) => c.client === 'v2' && c.subcommand === 'up').length).toBeGreaterThan(0);
      for (const { file, text } of docs) {
        for (const c of composeInvocations(text)) {
          // v1 `up` fails on recreate with current engines (KeyError: 'ContainerConfig'); `config` works offline.
          if (c.client === 'v1' && c.subcommand !== undefined) expect({ file, line: c.line, subcommand: c.subcommand }).toEqual({ file, line: c.line, subcommand: 'config' });
        }
      }
    });

    it('names only repository paths that exist (dist/ paths must be outputs of tsconfig.build.json)', () => {
      const build = tsBuild();
      const missing: string[] = [];
      let named = 0;
      for (const { file, text } of composeDocs()) {
        for (const path of repoPathsIn(text)) {
          named++;
          const exists = path.startsWith(`${build.outDir}/`) ? sourceOfBuildOutput(path, build) !== undefined : existsSync(join(ROOT, path));
          if (!exists) missing.push(`${file}: ${path}`);
        }
      }
      expect(named).toBeGreaterThan(10);
      expect(missing).toEqual([]);
    });
  });

  describe('Dockerfile', () => {
    let instructions: { op: string; rest: string }[];
    beforeAll(() => {
      loadResolved();
      instructions = dockerInstructions(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
    });

    it('builds and runs on an exactly pinned Node 24 bookworm-slim image that satisfies package.json engines', () => {
      const args: Record<string, string> = {};
      for (const { op, rest } of instructions) {
        const arg = /^(\w+)=(\S+)$/.exec(rest);
        if (op === 'ARG' && arg) args[arg[1] as string] = arg[2] as string;
      }
      const images = instructions
        .filter((i) => i.op === 'FROM')
        .map((i) => (i.rest.split(/\s+/)[0] as string).replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => args[(a ?? b) as string] ?? ''));
      expect(images.length).toBeGreaterThanOrEqual(2);
      const engines = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
      for (const image of images) {
        expect(image).toMatch(/^node:24\.\d+\.\d+-bookworm-slim$/);
        const version = (/^node:(\d+\.\d+\.\d+)/.exec(image) as RegExpExecArray)[1] as string;
        expect({ image, engines, satisfies: satisfiesMinimum(version, engines) }).toEqual({ image, engines, satisfies: true });
      }
    });

    it('installs dependencies with npm ci after copying the lockfile, and never with npm install', () => {
      const runs = instructions.filter((i) => i.op === 'RUN').map((i) => i.rest);
      expect(runs.filter((r) => /\bnpm ci\b/.test(r))).toHaveLength(1);
      expect(runs.filter((r) => /\bnpm (?:install|i|add)\b/.test(r))).toEqual([]);
      const copyLock = instructions.findIndex((i) => i.op === 'COPY' && /\bpackage-lock\.json\b/.test(i.rest));
      const ci = instructions.findIndex((i) => i.op === 'RUN' && /\bnpm ci\b/.test(i.rest));
      expect(copyLock).toBeGreaterThanOrEqual(0);
      expect(ci).toBeGreaterThan(copyLock);
    });

    it('has a lockfile that npm ci accepts for package.json, as the image build needs', () => {
      // Only the sync check npm ci runs before installing; --dry-run installs nothing.
      const dir = mkdtempSync(join(scratch, 'npm-ci-'));
      for (const f of ['package.json', 'package-lock.json']) writeFileSync(join(dir, f), readFileSync(join(ROOT, f)));
      const r = spawnSync('npm', ['ci', '--dry-run', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund'], {
        cwd: dir,
        encoding: 'utf8',
        timeout: 120_000,
      });
      if (r.error) throw r.error;
      const errors = r.stderr.split('\n').filter((l) => /^npm error \S/.test(l)).slice(0, 8);
      expect({ status: r.status, errors }).toEqual({ status: 0, errors: [] });
    });

    it('copies every folder tsconfig.build.json compiles, and each entry point compose and CMD run is one of its outputs', () => {
      const build = tsBuild();
      const copies = instructions.filter((i) => i.op === 'COPY' && !i.rest.startsWith('--from')).map((i) => i.rest.split(/\s+/));
      for (const dir of build.include) expect(copies.some((c) => c[0] === dir)).toBe(true);
      expect(copies.some((c) => c.includes('tsconfig.build.json') && c.includes('tsconfig.json'))).toBe(true);
      // The runtime stage gets the compiled tree and config/ (CONNECTORS_CONFIG points into it).
      const runtime = instructions.filter((i) => i.op === 'COPY' && i.rest.startsWith('--from=build')).map((i) => i.rest);
      expect(runtime).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`/app/${build.outDir} \\./${build.outDir}$`)), expect.stringMatching(/\/app\/config \.\/config$/)]));

      const cmd = JSON.parse(instructions.filter((i) => i.op === 'CMD').at(-1)?.rest ?? '[]') as string[];
      const entryPoints = [cmd, ...['changegate-api', 'changegate-worker', 'changegate-migrate'].map((n) => json(n).command ?? [])];
      expect(cmd).toEqual(json('changegate-api').command);
      for (const [bin, script] of entryPoints) {
        expect({ bin, script, source: sourceOfBuildOutput(script ?? '', build) }).toEqual({ bin: 'node', script, source: expect.stringMatching(/\.ts$/) });
      }
      const connectors = json('changegate-api').environment?.CONNECTORS_CONFIG ?? '';
      expect(existsSync(join(ROOT, connectors.replace(/^\/app\//, '')))).toBe(true);
    });
  });
});
