import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * Validates docker-compose.yml with the docker-compose CLI (no engine needed: `config` only parses, interpolates
 * and validates) and checks the production shape of the resolved file.
 *
 * docker-compose 1.29 has no `config --format json`, so the YAML it prints is read by indentation: it is PyYAML
 * block style with two-space indentation and sequences not indented under their key.
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

describe('docker-compose.yml', () => {
  let services: Map<string, string[]>;
  const svc = (name: string): Service => {
    const lines = services.get(name);
    if (!lines) throw new Error(`service "${name}" missing; have: ${[...services.keys()].join(', ')}`);
    return new Service(name, lines);
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
    beforeAll(() => {
      const r = compose(['--env-file', ENV_EXAMPLE, 'config']);
      if (r.status !== 0) throw new Error(`docker-compose config failed (${r.status}):\n${r.stderr}`);
      services = parseServices(r.stdout);
    });

    it('has every service of the production topology', () => {
      expect([...services.keys()].sort()).toEqual(
        [
          'changegate-api',
          'changegate-migrate',
          'changegate-worker',
          'mysql',
          'temporal',
          'temporal-admin-tools',
          'temporal-create-namespace',
          'temporal-ui',
        ].sort(),
      );
    });

    it('pins every third-party image (no floating tags)', () => {
      expect(svc('mysql').scalar('image')).toMatch(/^mysql:8\.0\.\d+$/);
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

    it('starts api and worker only after migrations and the namespace are done', () => {
      for (const name of ['changegate-api', 'changegate-worker']) {
        expect(svc(name).dependsOn()).toEqual({
          'changegate-migrate': 'service_completed_successfully',
          'temporal-create-namespace': 'service_completed_successfully',
        });
      }
      expect(svc('changegate-migrate').dependsOn()).toEqual({ mysql: 'service_healthy' });
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
      for (const key of ['SERVICENOW_URL', 'SERVICENOW_USERNAME', 'SERVICENOW_PASSWORD', 'SERVICENOW_WEBHOOK_SECRET', 'CHANGEGATE_ADMIN_TOKEN']) {
        expect(api[key]).toBeTruthy();
      }
      // Same gateway configuration in both processes (written once via x-changegate-env) ...
      const { MYSQL_LOCAL_PASSWORD, ...workerShared } = worker;
      expect(workerShared).toEqual(api);
      // ... but only the process that runs connectors holds the target credential.
      expect(MYSQL_LOCAL_PASSWORD).toBeTruthy();
      expect(api.MYSQL_LOCAL_PASSWORD).toBeUndefined();
      // The migrate one-shot gets the database and nothing else.
      expect(Object.keys(svc('changegate-migrate').map('environment')).sort()).toEqual(['DATABASE_URL', 'NODE_ENV']);
    });

    it('publishes the api on 3000 with a /healthz healthcheck, and keeps mysql unpublished', () => {
      const api = svc('changegate-api');
      expect(api.text('ports')).toMatch(/published: '?"?3000/);
      expect(api.text('ports')).toMatch(/target: 3000/);
      const check = api.text('healthcheck');
      expect(check).toContain('/healthz');
      expect(check).toMatch(/- node\b/);
      expect(svc('mysql').text('ports')).toBe('');
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
});
