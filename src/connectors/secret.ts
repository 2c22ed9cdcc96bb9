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

  constructor(value: string) {
    if (value.length === 0) throw new Error('a secret must not be empty');
    this.#value = value;
    this.fingerprint = fingerprintOf(value);
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
