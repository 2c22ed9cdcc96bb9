import { Secret } from '../connectors/secret';

/**
 * What evidence must never hold, decided by what a value IS, not only by what its field is called.
 *
 * First line, everywhere (any field, any depth, inside longer text, and in keys): a `Secret` object, and values in the
 * shape of a known credential — PEM private keys, password hashes (bcrypt, crypt, Argon2, PBKDF2, scrypt, PostgreSQL
 * SCRAM and MD5, MySQL, LDAP `{SSHA}`-style, Redis ACL `#<sha256>`), Vault/OpenBao tokens, bearer and basic
 * credentials, JSON Web Tokens, passwords in URLs, AWS secret access keys and base64 salted-hash passwords
 * (RabbitMQ), the last two told from names of the same length by looking random.
 *
 * Second line, by name: a field whose name says secret (`password`, `token`, `credential`…) may hold only what
 * cannot be a credential — a count, a boolean, null, a fingerprint (`sha256:<hex>`), or an identifier (`ssh-key:
 * APKA…:Active`, a UUID). Anything else under such a name is refused, whatever it looks like.
 *
 * Evidence is refused rather than silently scrubbed, and the refusal names the path and the kind of value, never
 * the value.
 */

/** Names whose values are credentials unless they are plainly something else (a count, an id, a fingerprint). */
const SECRET_NAME = /pass(word)?|pwd|secret|token|credential|private[_-]?key|api[_-]?key|authorization|cookie/i;

/** A refusal the evidence store raises before writing: deterministic, so retrying it cannot help. */
export class EvidenceRefusal extends Error {
  constructor(
    /** Where the value sits, e.g. `observedState.attributes.passwords[0]`. */
    readonly path: string,
    /** What kind of value it is, e.g. "a PEM private key"; never the value. */
    readonly reason: string,
    /** The whole message, where the refusal is not about a secret (a value canonical JSON cannot hold). */
    message = `refusing to record a secret-bearing field at ${path || '(the record itself)'}: it holds ${reason}`,
  ) {
    super(message);
    this.name = 'EvidenceRefusal';
  }
}

interface Shape {
  what: string;
  /** Returns true when `text` contains a value of this shape. */
  found(text: string): boolean;
}

const pattern = (what: string, re: RegExp): Shape => ({ what, found: (t) => re.test(t) });

const SHAPES: readonly Shape[] = [
  pattern('a PEM private key', /-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----/),
  pattern('a bcrypt password hash', /\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}/),
  pattern('a crypt(3) password hash', /\$(?:1|5|6|md5|sha1|apr1)\$(?:rounds=\d+\$)?[./A-Za-z0-9]{1,64}\$[./A-Za-z0-9]{20,}/),
  pattern('a yescrypt or scrypt password hash', /\$(?:y|gy|7|scrypt)\$[./A-Za-z0-9]+\$[./A-Za-z0-9$=,]{20,}/),
  pattern('an Argon2 password hash', /\$argon2(?:id|i|d)\$(?:v=\d+\$)?m=\d+,t=\d+,p=\d+\$/),
  pattern('a PBKDF2 password hash', /\bpbkdf2[-_]sha\d+\$\d+\$[^$\s]+\$[A-Za-z0-9+/=._-]{16,}/i),
  pattern('a PostgreSQL SCRAM verifier', /SCRAM-SHA-256\$\d+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+/),
  pattern('a PostgreSQL MD5 password hash', /\bmd5[0-9a-f]{32}\b/),
  pattern('a MySQL password hash', /\*[0-9A-F]{40}(?![0-9A-Za-z])/),
  pattern('a MySQL caching_sha2 password hash', /\$A\$0\d\d\$/),
  pattern('an LDAP password hash', /\{(?:S?SHA(?:1|256|384|512)?|S?MD5|CRYPT|PBKDF2[-_A-Z0-9]*|ARGON2|BCRYPT)\}[A-Za-z0-9+/$.=]{8,}/i),
  pattern('a Redis ACL password hash', /(?:^|[^0-9A-Za-z])#[0-9a-fA-F]{64}(?![0-9A-Za-z])/),
  pattern('a Vault or OpenBao token', /\bhv[sbr]\.[A-Za-z0-9_-]{20,}/),
  { what: 'a Vault or OpenBao token', found: (t) => [...t.matchAll(/(?<![A-Za-z0-9.])[sbr]\.([A-Za-z0-9]{24,})(?![A-Za-z0-9])/g)].some((m) => mixedCase(m[1] ?? '')) },
  pattern('a bearer token', /\bBearer\s+[A-Za-z0-9._~+/-]{16,}=*/i),
  { what: 'a basic-auth credential', found: (t) => [...t.matchAll(/\bBasic\s+([A-Za-z0-9+/]{8,}={0,2})(?![A-Za-z0-9+/=])/gi)].some((m) => decodesToPair(m[1] ?? '')) },
  pattern('a JSON Web Token', /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/),
  pattern('a password in a URL', /[a-z][a-z0-9+.-]*:\/\/[^/\s:@]+:[^/\s@]+@/i),
  { what: 'an AWS secret access key', found: (t) => base64Tokens(t, [40]).some(looksRandom) },
  // RabbitMQ's password_hash: base64 of a 4-byte salt and a SHA-256 (48 characters) or SHA-512 (92) digest.
  { what: 'a salted SHA-2 password hash', found: (t) => base64Tokens(t, [48, 92]).some(looksRandom) },
];

/** Under a secret-like name, the values that still cannot be a credential. */
const FINGERPRINT = /^(?:sha256:[0-9a-f]{16,64}|\[secret sha256:[0-9a-f]{16,64}\])$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/**
 * `APKAEIBAERJR2EXAMPLE` or `ssh-key:APKA…:Active`: an upper-case identifier, optionally with a kind and a state; or
 * any short id in the `<kind>:<id>:<state>` form inspect lists credentials in (moto's signing-certificate ids are
 * lower case), the state being a status word, which a credential never ends in.
 */
const IDENTIFIER = /^(?:(?:[a-z][a-z-]{0,31}:)?[A-Z0-9]{8,128}(?::[A-Z][a-z]{1,15})?|[a-z][a-z-]{0,31}:[A-Za-z0-9_-]{1,128}:(?:Active|Inactive|Expired|Revoked|Disabled|Enabled))$/;

/** Throws EvidenceRefusal if `value` holds a secret anywhere; see the top of this file for what counts. */
export function assertNoSecrets(value: unknown, path = ''): void {
  walk(value, path, false, new WeakSet());
}

function walk(value: unknown, path: string, secretNamed: boolean, seen: WeakSet<object>): void {
  if (value instanceof Secret) throw new EvidenceRefusal(path, 'a Secret (record its fingerprint instead)');
  if (typeof value === 'string') {
    checkText(value, path);
    if (secretNamed && !FINGERPRINT.test(value) && !UUID.test(value) && !IDENTIFIER.test(value)) {
      throw new EvidenceRefusal(path, 'text under a secret-like name (only counts, booleans, identifiers and fingerprints may sit there)');
    }
    return;
  }
  if (value === null || typeof value !== 'object') {
    // Numbers, booleans, null, undefined: a count or a flag, even under a secret-like name.
    if (typeof value === 'bigint' || typeof value === 'symbol' || typeof value === 'function') {
      throw new EvidenceRefusal(path, `a ${typeof value}, which evidence does not hold`);
    }
    return;
  }
  if (seen.has(value)) return;
  seen.add(value);
  if (Array.isArray(value)) {
    value.forEach((v, i) => walk(v, `${path}[${i}]`, secretNamed, seen));
    return;
  }
  if (value instanceof Date) return;
  if (Buffer.isBuffer(value) || ArrayBuffer.isView(value)) throw new EvidenceRefusal(path, 'raw bytes, which evidence does not hold');
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    // A key is text that lands in evidence too; a refused key is named by where it sits, never by itself.
    checkText(k, `a key of ${path || 'the record'}`);
    const at = path ? `${path}.${k}` : k;
    walk(v, at, secretNamed || SECRET_NAME.test(k), seen);
  }
}

function checkText(text: string, path: string): void {
  for (const shape of SHAPES) if (shape.found(text)) throw new EvidenceRefusal(path, shape.what);
}

function mixedCase(s: string): boolean {
  return /[A-Z]/.test(s) && /[a-z]/.test(s) && /[0-9]/.test(s);
}

function decodesToPair(b64: string): boolean {
  const text = Buffer.from(b64, 'base64').toString('utf8');
  return /^[\x20-\x7e]+:[\x20-\x7e]+$/.test(text);
}

/** Runs of standard base64 of exactly these lengths, not part of a longer run. */
function base64Tokens(text: string, lengths: number[]): string[] {
  return [...text.matchAll(/(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]+={0,2}(?![A-Za-z0-9/+=])/g)].map((m) => m[0]).filter((t) => lengths.includes(t.length));
}

/**
 * Random rather than written: both letter cases, high Shannon entropy per character, not a path of words, and little
 * of it in word-like runs (an optional capital, then three or more lower-case letters with a vowel). The last test
 * keeps PascalCase names of the same length (AWS managed policies such as `AmazonEC2ContainerRegistryPowerUser`) out.
 */
function looksRandom(token: string): boolean {
  const body = token.replace(/=+$/, '');
  if (!/[A-Z]/.test(body) || !/[a-z]/.test(body)) return false;
  if (shannon(body) < 4) return false;
  // A path that starts with lower-case words and ends in a random id (a Vault lease id: database/creds/app-ro/<id>)
  // is an address, not a credential.
  const word = (seg: string): boolean => /^[a-z][a-z0-9_-]+$/.test(seg) && /[a-z]{2}/.test(seg);
  const segs = body.split('/');
  if (segs.length >= 3 && word(segs[0] ?? '') && segs.filter(word).length >= 2) return false;
  const wordy = [...body.matchAll(/[A-Z]?[a-z]{3,}/g)].filter((m) => /[aeiouy]/i.test(m[0])).reduce((n, m) => n + m[0].length, 0);
  // Measured: random base64 of 40-48 characters reaches 0.65 about 3 times in 100,000; managed-policy names sit at
  // 0.7 and above.
  return wordy / body.length < 0.65;
}

function shannon(s: string): number {
  const counts = new Map<string, number>();
  for (const ch of s) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  let h = 0;
  for (const n of counts.values()) {
    const p = n / s.length;
    h -= p * Math.log2(p);
  }
  return h;
}

/** Replaces credentials in a URL or text before it is logged. */
export function redactUrl(url: string): string {
  return url.replace(/(\/\/[^:/@]+:)[^@/]*@/, '$1***@');
}
