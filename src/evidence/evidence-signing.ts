import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from 'node:crypto';
import { jcs } from './canonical-json';

/** The public half as a JWK (RFC 8037), with its key id; what /api/evidence/public-key and every export publish. */
export interface EvidencePublicJwk {
  kty: 'OKP';
  crv: 'Ed25519';
  x: string;
  kid: string;
  alg: 'EdDSA';
  use: 'sig';
}

/** The gateway's evidence signer. It holds the private key and hands out only signatures and the public half. */
export interface EvidenceSigner {
  keyId: string;
  publicKeyJwk: EvidencePublicJwk;
  publicKeyPem: string;
  sign(bytes: Buffer): string;
}

/**
 * The signing key from CHANGEGATE_EVIDENCE_SIGNING_KEY: a PKCS#8 PEM, inline (newlines may be written `\n`) or in a
 * file the value names. Anything else (another key type, a public key, an unreadable file) is refused with a message
 * that never quotes the value.
 */
export function loadSigningKey(value: string): KeyObject {
  const inline = value.includes('-----BEGIN');
  let pem: string;
  try {
    pem = inline ? value.replace(/\\n/g, '\n') : readFileSync(value, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the key file (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`, { cause: err });
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw new Error('must be an Ed25519 private key as PKCS#8 PEM (inline or a file path)');
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`must be an Ed25519 key, not ${key.asymmetricKeyType}`);
  return key;
}

export function evidenceSigner(privateKey: KeyObject): EvidenceSigner {
  const publicKey = createPublicKey(privateKey);
  const keyId = keyIdOf(publicKey);
  return {
    keyId,
    publicKeyJwk: { ...(publicKey.export({ format: 'jwk' }) as { kty: 'OKP'; crv: 'Ed25519'; x: string }), kid: keyId, alg: 'EdDSA', use: 'sig' },
    publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    sign: (bytes) => sign(null, bytes, privateKey).toString('base64url'),
  };
}

/** RFC 7638 JWK thumbprint (SHA-256, base64url): anyone holding the public key computes the same id. */
export function keyIdOf(publicKey: KeyObject): string {
  const { crv, kty, x } = publicKey.export({ format: 'jwk' }) as { crv: string; kty: string; x: string };
  return createHash('sha256').update(jcs({ crv, kty, x }), 'utf8').digest('base64url');
}

/** A public key as an auditor passes it: SPKI PEM, or a JWK (bare, or as /api/evidence/public-key answers). */
export function parsePublicKey(text: string): KeyObject {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    const parsed = JSON.parse(trimmed) as { jwk?: Record<string, unknown> } & Record<string, unknown>;
    const jwk = parsed.jwk ?? parsed;
    return createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x } as never, format: 'jwk' });
  }
  const key = createPublicKey({ key: trimmed, format: 'pem' });
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`not an Ed25519 public key (${key.asymmetricKeyType})`);
  return key;
}

export function verifySignature(bytes: Buffer, signature: string, publicKey: KeyObject): boolean {
  try {
    return verify(null, bytes, publicKey, Buffer.from(signature, 'base64url'));
  } catch {
    return false;
  }
}

/**
 * The demo's signing key in `.data/`: generated once, owner-only whatever the process umask, never printed. Returns
 * the file's path, which is what CHANGEGATE_EVIDENCE_SIGNING_KEY then names.
 */
export function ensureDemoSigningKey(file: string): string {
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true });
    const { privateKey } = generateKeyPairSync('ed25519');
    // 'wx': a second launcher racing this one keeps the first key instead of replacing it.
    try {
      writeFileSync(file, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  chmodSync(file, 0o600);
  return file;
}
