import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import axios from 'axios';
import canonicalize from 'canonicalize';
import type { Role } from '../src/auth/principal';
import { type EvidenceExport, signedBytes } from '../src/evidence/evidence-export';
import { evidenceSigner } from '../src/evidence/evidence-signing';
import { type Stack, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { TEST_ENV } from './support/test-env';

const ROOT = resolve(__dirname, '..');

/** The CLI as an auditor runs it: a separate process, its exit code and what it printed. */
function cli(args: string[], viaNpx = false): Promise<{ code: number; out: string }> {
  const [cmd, argv] = viaNpx ? ['npx', ['--offline', 'changegate', ...args]] : [process.execPath, [join(ROOT, 'bin/changegate.js'), ...args]];
  return new Promise((done) => {
    execFile(cmd as string, argv as string[], { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
      done({ code: err ? Number((err as { code?: number }).code ?? 99) : 0, out: `${stdout}${stderr}` });
    });
  });
}

describe('evidence export: a signed bundle an auditor verifies offline', () => {
  let stack: Stack;
  let dir: string;
  let number: string;
  let bundle: EvidenceExport;
  let publicKeyFile: string;
  const get = (path: string, token?: string) =>
    axios.get(`${stack.apiUrl}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {}, validateStatus: () => true });
  const tokenFor = async (role: Role) => (await stack.tokenFor(role)).token;
  /** Writes a bundle and verifies it with the gateway's public key. */
  const verify = (b: unknown, name: string) => {
    const file = join(dir, `${name}.json`);
    writeFileSync(file, JSON.stringify(b, null, 2));
    return cli(['verify-evidence', file, '--public-key', publicKeyFile]);
  };
  const tampered = (edit: (b: EvidenceExport) => void) => {
    const copy = structuredClone(bundle);
    edit(copy);
    return copy;
  };

  beforeAll(async () => {
    stack = await startStack();
    dir = mkdtempSync(join(tmpdir(), 'cg-export-'));
    number = uniqueTicketNumber();
    // Three joiners on one approved change in Implement: three granted rows, a chain to cut, reorder and edit.
    const accounts = [uniqueAccount('exp'), uniqueAccount('exp'), uniqueAccount('exp')];
    const actions = accounts.map((name) => ({ kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name, host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'PT8H' }));
    stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: JSON.stringify(actions) });
    await waitFor('three granted evidence rows', async () => {
      const rows = await stack.evidence.list(`servicenow:${number}`);
      return rows.filter((r) => r.outcome === 'granted').length === 3 ? rows : null;
    });
  }, 180_000);
  afterAll(async () => {
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('publishes the public key without authentication, never the private half', async () => {
    const res = await get('/api/evidence/public-key');
    expect(res.status).toBe(200);
    expect(res.data).toEqual({ keyId: expect.any(String), alg: 'Ed25519', jwk: expect.objectContaining({ kty: 'OKP', crv: 'Ed25519', kid: res.data.keyId }), pem: expect.stringContaining('BEGIN PUBLIC KEY') });
    expect(res.data.jwk).not.toHaveProperty('d');
    expect(JSON.stringify(res.data)).not.toMatch(/PRIVATE/);
    publicKeyFile = join(dir, 'gateway-public-key.json');
    writeFileSync(publicKeyFile, JSON.stringify(res.data));
  });

  it('exports the ticket for auditors and operators: every row with the RFC 8785 text its hash is over, the chain check and a signature', async () => {
    const res = await get(`/api/changes/servicenow/${number}/evidence/export`, await tokenFor('auditor'));
    expect(res.status).toBe(200);
    bundle = res.data as EvidenceExport;
    expect(res.headers['content-disposition']).toBe(`attachment; filename=servicenow-${number}-evidence.json`);
    const rows = await stack.evidence.list(`servicenow:${number}`);
    expect(bundle).toMatchObject({ format: 'changegate-evidence-export/1', source: 'servicenow', ticket: number, canonicalization: 'RFC 8785', chain: { valid: true, rows: rows.length } });
    expect(bundle.rows.map((r) => [r.seq, r.hash])).toEqual(rows.map((r) => [r.seq, r.hash]));
    for (const row of bundle.rows) {
      // What an auditor recomputes with their own tools: a maintained JCS implementation, then SHA-256.
      expect(canonicalize(row.record)).toBe(row.canonical);
      expect(createHash('sha256').update(row.canonical, 'utf8').digest('hex')).toBe(row.hash);
    }
    const key = await get('/api/evidence/public-key');
    expect(bundle.signature).toMatchObject({ alg: 'Ed25519', keyId: key.data.keyId });
    expect((await get(`/api/changes/servicenow/${number}/evidence/export`, await tokenFor('operator'))).status).toBe(200);
  });

  it('refuses the other roles, a missing token, a malformed ticket number and a ticket with no evidence', async () => {
    for (const role of ['change-manager', 'security-reviewer', 'integration'] as Role[]) {
      const res = await get(`/api/changes/servicenow/${number}/evidence/export`, await tokenFor(role));
      expect({ role, status: res.status, code: res.data.error?.code }).toEqual({ role, status: 403, code: 'FORBIDDEN' });
    }
    expect((await get(`/api/changes/servicenow/${number}/evidence/export`)).status).toBe(401);
    const auditor = await tokenFor('auditor');
    const bad = await get('/api/changes/servicenow/not-a-number/evidence/export', auditor);
    expect([bad.status, bad.data.error.issues]).toEqual([400, [{ path: 'path.number', message: expect.stringMatching(/must look like/) }]]);
    const none = await get(`/api/changes/servicenow/${uniqueTicketNumber()}/evidence/export`, auditor);
    expect([none.status, none.data.error.code]).toEqual([404, 'NOT_FOUND']);
  });

  it('the CLI, run with npx from the project, verifies the untouched bundle against the gateway key', async () => {
    const file = join(dir, 'bundle.json');
    writeFileSync(file, JSON.stringify(bundle, null, 2));
    const res = await cli(['verify-evidence', file, '--public-key', publicKeyFile], true);
    expect(res).toEqual({
      code: 0,
      out:
        `OK: ${bundle.rows.length} rows, hashes and chain intact, signature valid (key ${bundle.signature.keyId})\n` +
        "NOTE: row seals not checked (they need the gateway's seal key: --seal-key-file); the gateway's own seal check is in the signed chain check\n",
    });
  });

  it("with the gateway's seal key (from a file) the CLI checks every row's seal too; another key fails each row, the signature still valid", async () => {
    const file = join(dir, 'bundle-seals.json');
    writeFileSync(file, JSON.stringify(bundle));
    expect(bundle.sealAlgorithm).toBe('HMAC-SHA256');
    expect(bundle.rows.map((r) => r.seal)).toEqual(bundle.rows.map(() => expect.stringMatching(/^hmac-sha256:written:[0-9a-f]{64}$/)));
    const keyFile = join(dir, 'seal.key');
    writeFileSync(keyFile, `${TEST_ENV.evidenceSealKey}\n`, { mode: 0o600 });
    const res = await cli(['verify-evidence', file, '--public-key', publicKeyFile, '--seal-key-file', keyFile]);
    expect(res).toEqual({ code: 0, out: expect.stringMatching(/^OK: 3 rows, .*\nseals: every row carries the gateway's seal under the given seal key\n$/) });
    const otherKey = join(dir, 'other-seal.key');
    writeFileSync(otherKey, 'another-seal-key-0123456789abcdef0123', { mode: 0o600 });
    const other = await cli(['verify-evidence', file, '--public-key', publicKeyFile, '--seal-key-file', otherKey]);
    expect(other.code).toBe(1);
    expect(other.out).toMatch(/^FAIL row 1: seal does not verify: the gateway did not write this row with its key\nFAIL row 2: seal does not verify.*\nFAIL row 3: seal does not verify.*\nNOT VERIFIED: 3 problem\(s\)/m);
    expect(other.out).not.toMatch(/FAIL signature/);
    // A key file too short to be a seal key: a usage error that never quotes its content.
    writeFileSync(otherKey, 'short-seal-key', { mode: 0o600 });
    const short = await cli(['verify-evidence', file, '--seal-key-file', otherKey]);
    expect(short).toEqual({ code: 2, out: `cannot use the seal key in ${otherKey}: the evidence seal key must be at least 32 bytes\n` });
  });

  it.each<[string, (b: EvidenceExport) => void, RegExp]>([
    ['a field of a row', (b) => void ((b.rows[1] as EvidenceExport['rows'][number]).record.outcome = 'revoked'), /^FAIL row 2: record differs from the hashed canonical text$/m],
    ['the canonical text of a row', (b) => void ((b.rows[1] as { canonical: string }).canonical = b.rows[1]!.canonical.replace('"verified":true', '"verified":false')), /^FAIL row 2: hash does not match its canonical text$/m],
    ['a hash', (b) => void ((b.rows[0] as { hash: string }).hash = 'f'.repeat(64)), /^FAIL row 1: hash does not match its canonical text\nFAIL row 2: prevHash does not link to row 1's hash$/m],
    ['a deleted row', (b) => void b.rows.splice(1, 1), /^FAIL row 2: carries seq 3 where seq 2 belongs: a row is missing or out of order$/m],
    ['reordered rows', (b) => void b.rows.splice(1, 2, b.rows[2]!, b.rows[1]!), /^FAIL row 2: carries seq 3 where seq 2 belongs: a row is missing or out of order$/m],
  ])('refuses %s, naming the row it breaks, with exit code 1', async (what, edit, expected) => {
    const res = await verify(tampered(edit), what.replace(/\W+/g, '-'));
    expect(res.code).toBe(1);
    expect(res.out).toMatch(expected);
    expect(res.out).toMatch(/^FAIL signature: does not verify/m);
  });

  it('refuses a row rewritten with its hash and every later link recomputed: only the signature catches it', async () => {
    const forged = tampered((b) => {
      let prev = b.rows[0]!.hash;
      for (const row of b.rows.slice(1)) {
        const record = { ...row.record, prevHash: prev, ...(row.seq === 2 ? { outcome: 'revoked' } : {}) };
        Object.assign(row, { prevHash: prev, record, canonical: canonicalize(record) as string });
        row.hash = createHash('sha256').update(row.canonical, 'utf8').digest('hex');
        prev = row.hash;
      }
    });
    const res = await verify(forged, 'rechained');
    expect(res.code).toBe(1);
    expect(res.out).not.toMatch(/FAIL row/);
    expect(res.out).toMatch(/^FAIL signature: does not verify with key \S+ over the bundle's RFC 8785 bytes/m);
  });

  it('refuses a bundle signed with another key when the gateway key is given; without it, says the key was only the embedded one', async () => {
    const other = evidenceSigner(generateKeyPairSync('ed25519').privateKey);
    const resigned = tampered((b) => {
      b.signature = { alg: 'Ed25519', keyId: other.keyId, publicKeyJwk: other.publicKeyJwk, value: other.sign(signedBytes(b)) };
    });
    const res = await verify(resigned, 'other-key');
    expect(res.code).toBe(1);
    expect(res.out).toContain(`FAIL signature: made with key ${other.keyId}, not the given public key ${bundle.signature.keyId}`);
    const file = join(dir, 'other-key-no-flag.json');
    writeFileSync(file, JSON.stringify(resigned));
    const embedded = await cli(['verify-evidence', file]);
    expect(embedded.code).toBe(0);
    expect(embedded.out).toMatch(/NOTE: checked against the key the bundle carries/);
    // A signature by the right key id but other bytes: a forger who copies the key id gains nothing.
    const copiedId = tampered((b) => {
      b.signature = { ...b.signature, value: sign(null, signedBytes(b), generateKeyPairSync('ed25519').privateKey).toString('base64url') };
    });
    const forged = await verify(copiedId, 'copied-key-id');
    expect([forged.code, forged.out]).toEqual([1, expect.stringMatching(/^FAIL signature: does not verify/m)]);
  });

  it('answers 2 with its usage for a missing file argument or an unreadable bundle', async () => {
    expect(await cli(['verify-evidence'])).toEqual({ code: 2, out: expect.stringMatching(/^usage: changegate verify-evidence/) });
    expect(await cli(['verify-evidence', join(dir, 'no-such.json')])).toEqual({ code: 2, out: expect.stringMatching(/^cannot read .*no-such\.json as JSON/) });
  });
});

describe('evidence export without a signing key', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ inProcessWorker: false, evidenceSigningKey: false });
  });
  afterAll(async () => {
    await stack.stop();
  });

  it('answers 503 naming the variable to set, for the export and the public key', async () => {
    const { token } = await stack.tokenFor('auditor');
    for (const path of [`/api/changes/servicenow/${uniqueTicketNumber()}/evidence/export`, '/api/evidence/public-key']) {
      const res = await axios.get(`${stack.apiUrl}${path}`, { headers: { authorization: `Bearer ${token}` }, validateStatus: () => true });
      expect({ path, status: res.status, error: res.data.error }).toEqual({
        path,
        status: 503,
        error: { code: 'UNAVAILABLE', message: 'evidence export needs a signing key: set CHANGEGATE_EVIDENCE_SIGNING_KEY', issues: [] },
      });
    }
  });
});
