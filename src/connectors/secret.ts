import { createHash, randomBytes } from 'node:crypto';
import { inspect } from 'node:util';

/**
 * A credential value on its way from a target to the secrets store. It prints, serialises and logs as
 * `[secret sha256:…]`, so a stray `console.log`, `JSON.stringify` or error message cannot leak it; only `reveal()`
 * gives the value, and only the connector writing it to a target or store should call that.
 */
export class Secret {
  readonly #value: string;
  readonly fingerprint: string;
  /**
   * A structured credential's secret-bearing parts, by member name, as fingerprints (never values): a leak report
   * carrying one part alone (an AWS secret access key without its key id, a JSON credential's password) matches them.
   * Empty for a plain value.
   */
  readonly partFingerprints: Readonly<Record<string, string>>;

  constructor(value: string) {
    if (value.length === 0) throw new Error('a secret must not be empty');
    this.#value = value;
    this.fingerprint = fingerprintOf(value);
    this.partFingerprints = Object.freeze(secretParts(value));
  }

  /** A new random secret: 32 bytes of CSPRNG output, base64url (43 characters, no padding). */
  static generate(bytes = 32): Secret {
    return new Secret(randomBytes(bytes).toString('base64url'));
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return `[secret ${this.fingerprint}]`;
  }

  toJSON(): string {
    return this.toString();
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/**
 * What evidence records instead of a value: the first 128 bits of SHA-256, hex. Only ever applied to generated,
 * high-entropy credentials, so the prefix identifies a version without making the value guessable.
 */
export function fingerprintOf(value: string): string {
  return `sha256:${createHash('sha256').update(value, 'utf8').digest('hex').slice(0, 32)}`;
}

/** Member names that say a part holds the secret (`secretAccessKey`, `password`, `token`…), not an id or a user name. */
const SECRET_PART = /pass(word)?|pwd|secret|token|credential|private[_-]?key|api[_-]?key/i;
/** Shorter parts are not fingerprinted: a 128-bit prefix of a short value could be reversed by guessing. */
const PART_MIN_LENGTH = 16;

/** The fingerprints of a JSON object credential's secret-bearing string members; none for anything else. */
function secretParts(value: string): Record<string, string> {
  if (!value.trimStart().startsWith('{')) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return {};
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return {};
  const out: Record<string, string> = {};
  for (const [name, part] of Object.entries(parsed)) {
    if (SECRET_PART.test(name) && typeof part === 'string' && part.length >= PART_MIN_LENGTH && part !== value) out[name] = fingerprintOf(part);
  }
  return out;
}

/** What a delivery's evidence row adds for a structured credential: its parts' fingerprints, when it has any. */
export function partsEvidence(secret: Secret): { partFingerprints?: Record<string, string> } {
  return Object.keys(secret.partFingerprints).length > 0 ? { partFingerprints: { ...secret.partFingerprints } } : {};
}
