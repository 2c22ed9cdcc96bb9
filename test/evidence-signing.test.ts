import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../src/config';
import { ensureDemoSigningKey, evidenceSigner } from '../src/evidence/evidence-signing';

/** The evidence signing key: configured by CHANGEGATE_EVIDENCE_SIGNING_KEY, generated owner-only for the demo. */
describe('evidence signing key', () => {
  const base = {
    SERVICENOW_URL: 'http://127.0.0.1:8090', SERVICENOW_USERNAME: 'u', SERVICENOW_PASSWORD: 'p',
    SERVICENOW_WEBHOOK_SECRET: 'sn-secret-0123456789', CHANGEGATE_ADMIN_TOKEN: 'admin-token-0123456789',
  };
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cg-signing-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const ed25519Pem = () => generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();

  it('takes a PKCS#8 PEM inline (newlines written \\n, as env files hold them) or from a file, and is optional', () => {
    const pem = ed25519Pem();
    const file = join(dir, 'key.pem');
    writeFileSync(file, pem);
    const fromFile = loadConfig({ ...base, CHANGEGATE_EVIDENCE_SIGNING_KEY: file }).CHANGEGATE_EVIDENCE_SIGNING_KEY;
    const inline = loadConfig({ ...base, CHANGEGATE_EVIDENCE_SIGNING_KEY: pem.replace(/\n/g, '\\n') }).CHANGEGATE_EVIDENCE_SIGNING_KEY;
    expect(evidenceSigner(fromFile!).keyId).toBe(evidenceSigner(inline!).keyId);
    expect(loadConfig({ ...base, CHANGEGATE_EVIDENCE_SIGNING_KEY: '' }).CHANGEGATE_EVIDENCE_SIGNING_KEY).toBeUndefined();
  });

  it('stops start-up naming the variable, never quoting the value, for another key type, a public key or a missing file', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const pub = generateKeyPairSync('ed25519').publicKey.export({ format: 'pem', type: 'spki' }).toString();
    for (const [value, message] of [
      [rsa, /CHANGEGATE_EVIDENCE_SIGNING_KEY: must be an Ed25519 key, not rsa/],
      [pub, /CHANGEGATE_EVIDENCE_SIGNING_KEY: must be an Ed25519 private key as PKCS#8 PEM/],
      [join(dir, 'missing.pem'), /CHANGEGATE_EVIDENCE_SIGNING_KEY: cannot read the key file \(ENOENT\)/],
    ] as const) {
      let error: unknown;
      try {
        loadConfig({ ...base, CHANGEGATE_EVIDENCE_SIGNING_KEY: value });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).not.toContain(value.split('\n')[1] ?? value);
    }
  });

  it('is generated for the demo once, owner-only whatever the umask', () => {
    const file = join(dir, '.data', 'evidence-signing-key.pem');
    const previous = process.umask(0o000);
    try {
      ensureDemoSigningKey(file);
    } finally {
      process.umask(previous);
    }
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const first = readFileSync(file, 'utf8');
    expect(first).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    ensureDemoSigningKey(file);
    expect(readFileSync(file, 'utf8')).toBe(first);
  });
});
