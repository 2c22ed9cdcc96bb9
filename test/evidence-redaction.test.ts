import { execFileSync } from 'node:child_process';
import { createHash, createHmac, generateKeyPairSync, pbkdf2Sync, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Secret } from '../src/connectors/secret';
import { assertNoSecrets, EvidenceRefusal } from '../src/evidence/redaction';

/**
 * Real values of every credential shape the evidence store must refuse, made by the real tools where the machine has
 * them (openssl, slappasswd, ssh-keygen, libxcrypt through Python) and by the published algorithm otherwise.
 */
function realSecrets(): Array<[string, string | Secret]> {
  // Never a leading '-': the tools below would read the password as an option (1 run in 64 failed that way).
  const pw = `p${randomBytes(12).toString('base64url')}`;
  const run = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8' }).trim();
  const pem = (type: 'rsa' | 'ec' | 'ed25519', format: 'pkcs1' | 'pkcs8' | 'sec1', encrypted = false): string => {
    const opts = type === 'rsa' ? { modulusLength: 2048 } : type === 'ec' ? { namedCurve: 'P-256' } : {};
    const { privateKey } = generateKeyPairSync(type as 'rsa', opts as { modulusLength: number });
    return privateKey.export({ type: format as 'pkcs1', format: 'pem', ...(encrypted ? { cipher: 'aes-256-cbc', passphrase: pw } : {}) }).toString();
  };
  const dir = mkdtempSync(join(tmpdir(), 'cg-ssh-'));
  let openssh: string;
  try {
    run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'cg-test', '-f', join(dir, 'key')]);
    openssh = readFileSync(join(dir, 'key'), 'utf8');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const salt = randomBytes(16);
  // PostgreSQL's SCRAM-SHA-256 verifier, as pg_authid.rolpassword holds it (RFC 5802, 4096 iterations).
  const salted = pbkdf2Sync(pw, salt, 4096, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const scram = `SCRAM-SHA-256$4096:${salt.toString('base64')}$${createHash('sha256').update(clientKey).digest('base64')}:${createHmac('sha256', salted).update('Server Key').digest('base64')}`;
  const rabbitSalt = randomBytes(4);
  const b64url = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const jwtBody = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ sub: 'svc-billing', iat: 1_700_000_000 })}`;
  return [
    ['a PEM private key (RSA, PKCS#1)', pem('rsa', 'pkcs1')],
    ['a PEM private key (RSA, PKCS#8)', pem('rsa', 'pkcs8')],
    ['a PEM private key (EC, SEC1)', pem('ec', 'sec1')],
    ['a PEM private key (Ed25519, PKCS#8)', pem('ed25519', 'pkcs8')],
    ['a PEM private key (encrypted PKCS#8)', pem('rsa', 'pkcs8', true)],
    ['an OpenSSH private key (ssh-keygen)', openssh],
    ['a bcrypt hash (libxcrypt)', run('python3', ['-W', 'ignore', '-c', 'import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))', pw])],
    ['a SHA-512 crypt hash (openssl passwd -6)', run('openssl', ['passwd', '-6', pw])],
    ['an MD5 crypt hash (openssl passwd -1)', run('openssl', ['passwd', '-1', pw])],
    ['an Apache MD5 hash (openssl passwd -apr1)', run('openssl', ['passwd', '-apr1', pw])],
    ['an LDAP {SSHA} hash (slappasswd)', run('slappasswd', ['-s', pw])],
    ['an LDAP {CRYPT} hash (slappasswd)', run('slappasswd', ['-h', '{CRYPT}', '-c', '$6$%.16s', '-s', pw])],
    // No Argon2 tool here: the reference implementation's own example (password "password", salt "somesalt").
    ['an Argon2 hash (reference example)', '$argon2i$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG'],
    ['a Django PBKDF2 hash', `pbkdf2_sha256$1000$${salt.toString('hex')}$${pbkdf2Sync(pw, salt.toString('hex'), 1000, 32, 'sha256').toString('base64')}`],
    ['a PostgreSQL SCRAM-SHA-256 verifier', scram],
    ['a PostgreSQL MD5 hash', `md5${createHash('md5').update(`${pw}svc_billing`).digest('hex')}`],
    ['a MySQL native password hash', `*${createHash('sha1').update(createHash('sha1').update(pw).digest()).digest('hex').toUpperCase()}`],
    ['a Redis ACL password hash', `#${createHash('sha256').update(pw).digest('hex')}`],
    ['a RabbitMQ password_hash', Buffer.concat([rabbitSalt, createHash('sha256').update(Buffer.concat([rabbitSalt, Buffer.from(pw)])).digest()]).toString('base64')],
    ['an AWS secret access key', randomBytes(30).toString('base64')],
    ['a Vault service token', `hvs.${randomBytes(68).toString('base64url')}`],
    ['a legacy Vault token', `s.${randomBytes(24).toString('base64').replace(/[^A-Za-z0-9]/g, '').slice(0, 22)}Q7`],
    ['a bearer token', `Bearer ${Secret.generate().reveal()}`],
    ['a basic-auth credential', `Basic ${Buffer.from(`svc-billing:${pw}`).toString('base64')}`],
    ['a JSON Web Token', `${jwtBody}.${createHmac('sha256', pw).update(jwtBody).digest('base64url')}`],
    ['a password in a URL', `postgres://svc_billing:${pw}@db.internal:5432/billing`],
    ['a Secret object', Secret.generate()],
  ];
}

/** Every place a value can reach in an evidence record, with the path the refusal must name. */
function placements(v: string | Secret): Array<[string, Record<string, unknown>, string]> {
  const anywhere: Array<[string, Record<string, unknown>, string]> = [
    ['an observed attribute', { observedState: { exists: true, attributes: { note: v } } }, 'observedState.attributes.note'],
    ['deep in arrays of objects', { verification: { steps: [{ ok: true }, { out: [['x', v]] }] } }, 'verification.steps[1].out[0][1]'],
    ['a list of grants', { observedState: { grants: ['SELECT ON `b`.*', v] } }, 'observedState.grants[1]'],
    ['the identity', { identity: { type: 'service_account', name: v } }, 'identity.name'],
  ];
  if (v instanceof Secret) return anywhere;
  return [
    ...anywhere,
    ['longer text', { verification: { applied: `revoked; the target answered ${v} (sic)` } }, 'verification.applied'],
    ['a key', { observedState: { attributes: { [v]: 1 } } }, 'a key of observedState.attributes'],
  ];
}

describe('evidence secret check: what a secret is', () => {
  it.each(realSecrets())('refuses %s wherever it is nested, naming the path but never the value', (_label, value) => {
    for (const [where, record, path] of placements(value)) {
      let err: unknown = null;
      try {
        assertNoSecrets(record);
      } catch (e) {
        err = e;
      }
      if (!(err instanceof EvidenceRefusal)) throw new Error(`${_label} in ${where} was accepted`);
      expect([where, err.path]).toEqual([where, path]);
      const revealed = value instanceof Secret ? value.reveal() : value;
      expect(err.message).not.toContain(revealed);
      // A line of a multi-line value (a PEM body) must not leak either.
      for (const line of revealed.split('\n').filter((l) => l.length > 20)) expect(err.message).not.toContain(line);
    }
  });

  it('accepts the read-back facts that sit under secret-like names: counts, booleans, null, identifiers and fingerprints', () => {
    const record = {
      observedState: {
        exists: true,
        locked: true,
        grants: [],
        attributes: {
          flags: ['off'],
          passwords: 0,
          // AWS's own id shapes, and moto's lower-case signing-certificate ids.
          otherCredentials: ['signing-certificate:TA7SMP42TDN5Z26OBPJE7EXAMPLE:Inactive', 'signing-certificate:zf5aa328d8z26u2adu5wzehtxnr1w064:Active', 'ssh-key:APKAEIBAERJR2EXAMPLE:Inactive'],
          accessKeys: ['AKIAIOSFODNN7EXAMPLE:Inactive'],
          loginProfile: false,
          tokenCount: 3,
          credentialId: randomUUID(),
          secretFingerprint: `sha256:${randomBytes(16).toString('hex')}`,
          privateKeyRetained: null,
        },
      },
      desiredState: { rotated: true, deliveredTo: { system: 'vault-local', path: 'apps/billing/db-password' } },
      verification: { mismatches: [], applied: `[secret sha256:${randomBytes(16).toString('hex')}] delivered` },
    };
    expect(() => assertNoSecrets(record)).not.toThrow();
  });

  it.each([
    [{ password: 'x' }, 'password'],
    [{ password: 'hunter2' }, 'password'],
    [{ identity: { token: 'x' } }, 'identity.token'],
    [{ verification: { applied: { steps: [{ ok: true }, { client_secret: 'x' }] } } }, 'verification.applied.steps[1].client_secret'],
    [[{ a: 1 }, { apiKey: 'x' }], '[1].apiKey'],
    [{ headers: { Authorization: 'Bearer x' } }, 'headers.Authorization'],
    [{ db: { PASSWD: 'x' } }, 'db.PASSWD'],
    // What ACL GETUSER returns under `passwords`: the SHA-256 of each password, which no shape alone tells from a digest.
    [{ attributes: { passwords: [createHash('sha256').update('pw').digest('hex')] } }, 'attributes.passwords[0]'],
    [{ credentials: { current: { value: 'correct horse battery staple' } } }, 'credentials.current.value'],
  ])('refuses text under a secret-like name: %j at %s', (value, path) => {
    expect(() => assertNoSecrets(value)).toThrow(`refusing to record a secret-bearing field at ${path}`);
  });

  it.each([
    ['an AWS managed-policy ARN', 'policy=arn:aws:iam::aws:policy/AWSCodeDeployRoleForECSLimitedAccessPolicy2024'],
    ['a 40-character managed-policy name', 'arn:aws:iam::aws:policy/AmazonDynamoDBFullAccesswithDataPipeline'],
    ['a Vault lease id', `issued lease database/creds/app-ro/${randomBytes(18).toString('base64url').replace(/[-_]/g, 'x')} for database user 'v-token-app-ro-3kD9aLm2Qp7Zx1Vb8Nc4-1700000000'`],
    ['a certificate serial', '3f:2a:11:9c:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99'],
    ['a hex digest', createHash('sha256').update('x').digest('hex')],
    ['an access key id', 'AKIAIOSFODNN7EXAMPLE:Active'],
    ['prose about credentials', 'removed the password, Basic access revoked, the bearer of this token is gone; Bearer of notes'],
    ['a grant on a key pattern', '~cgt:orders:* &cgt:events:* +@hash'],
  ])('accepts %s outside secret-like names', (_label, text) => {
    expect(() => assertNoSecrets({ verification: { applied: text }, observedState: { grants: [text] } })).not.toThrow();
  });
});
