import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DataSource } from 'typeorm';
import { ApiTokenStore } from '../src/auth/api-tokens';
import { demoTokenVariable, ensureDemoTokenFile, ensureDemoTokens } from '../src/auth/demo-tokens';
import { ROLES } from '../src/auth/principal';
import { openDatabase } from '../src/persistence/data-source';
import { TEST_ENV } from './support/test-env';

const VARIABLES = [
  'CHANGEGATE_DEMO_TOKEN_CHANGE_MANAGER',
  'CHANGEGATE_DEMO_TOKEN_SECURITY_REVIEWER',
  'CHANGEGATE_DEMO_TOKEN_AUDITOR',
  'CHANGEGATE_DEMO_TOKEN_OPERATOR',
  'CHANGEGATE_DEMO_TOKEN_INTEGRATION',
];
const TOKEN = /^cg_[A-Za-z0-9_-]{43}$/;

describe('zero configuration: one demo API token per role in .data/demo.env', () => {
  let dir: string;
  let ds: DataSource;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cg-demo-tokens-'));
    ds = await openDatabase(TEST_ENV.databaseUrl);
  });
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await ds.destroy();
  });

  it('names one variable per role', () => {
    expect(ROLES.map(demoTokenVariable)).toEqual(VARIABLES);
  });

  it('writes the file from nothing with mode 600, one token line per role', () => {
    const file = join(dir, 'fresh.env');
    const old = process.umask(0o022);
    try {
      ensureDemoTokenFile(file);
    } finally {
      process.umask(old);
    }
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    expect(lines.map((l) => l.split('=')[0])).toEqual(VARIABLES);
    for (const l of lines) expect(l.slice(l.indexOf('=') + 1)).toMatch(TOKEN);
  });

  it('a second run changes nothing: same bytes, same tokens', () => {
    const file = join(dir, 'twice.env');
    const first = ensureDemoTokenFile(file);
    const bytes = readFileSync(file);
    expect(ensureDemoTokenFile(file)).toEqual(first);
    expect(readFileSync(file).equals(bytes)).toBe(true);
  });

  it('appends only the missing variables and leaves every other line, its own included, exactly as it was', () => {
    const file = join(dir, 'existing.env');
    const before = 'CHANGEGATE_APP_PASSWORD=abc\n# kept comment\nCHANGEGATE_DEMO_TOKEN_AUDITOR=cg_existing-auditor-token\nMYSQL_LOCAL_PASSWORD=xyz';
    writeFileSync(file, before, { mode: 0o644 });
    const tokens = ensureDemoTokenFile(file);
    const after = readFileSync(file, 'utf8');
    expect(after.startsWith(`${before}\n`)).toBe(true);
    const appended = after.slice(before.length + 1).trimEnd().split('\n');
    expect(appended.map((l) => l.split('=')[0])).toEqual(VARIABLES.filter((v) => v !== 'CHANGEGATE_DEMO_TOKEN_AUDITOR'));
    expect(tokens.auditor).toBe('cg_existing-auditor-token');
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('registers each token with exactly its role, once; a new file\'s tokens replace the old ones, which stop working', async () => {
    const file = join(dir, 'registered.env');
    const first = await ensureDemoTokens(file, ds);
    expect(first.registered).toHaveLength(ROLES.length);
    const store = new ApiTokenStore(ds);
    const tokens = ensureDemoTokenFile(file);
    for (const role of ROLES) {
      const principal = await store.authenticate(tokens[role]);
      expect(principal?.actor).toMatchObject({ kind: 'token', name: expect.stringMatching(new RegExp(`^demo-${role}-[0-9a-f]{8}$`)) });
      expect([...(principal?.roles ?? [])]).toEqual([role]);
    }
    expect(await ensureDemoTokens(file, ds)).toEqual({ registered: [], revoked: [] });

    rmSync(file);
    const second = await ensureDemoTokens(file, ds);
    expect(second.registered).toHaveLength(ROLES.length);
    expect(second.revoked.sort()).toEqual(first.registered.sort());
    for (const role of ROLES) expect(await store.authenticate(tokens[role])).toBeNull();
  });
});
