import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The keyed seal on every evidence row. The hash chain is public (RFC 8785 + SHA-256), so anyone who may INSERT into
 * the table (the application's database account) can compute a well-formed next row; the seal is what they cannot
 * compute: HMAC-SHA256 over the row's hash, keyed with CHANGEGATE_EVIDENCE_SEAL_KEY, which only the gateway's
 * processes hold and the database never does.
 *
 * HMAC rather than an Ed25519 signature with the export signing key: every process that writes evidence (the worker
 * above all) would have to hold the signing key, which is kept to the API alone; and the gateway, the only party
 * that checks seals online, holds the key anyway. What an HMAC cannot give is a check by someone without the key:
 * an offline auditor checks the chain and the export's signature, under which the gateway states its own seal check
 * (see the README, "Evidence export").
 *
 * `written`: sealed by the gateway as it wrote the row. `backfilled`: a row recorded before sealing existed, sealed
 * once by the seal migration (it proves the row was there then, not who wrote it). `verdict`: a closure verdict the
 * gateway published (src/closure/verdict-store.ts), which the same account could otherwise INSERT as well. The kind is
 * inside the MAC, so one cannot pass for another.
 */
export type SealKind = 'written' | 'backfilled' | 'verdict';

export const SEAL_ALGORITHM = 'HMAC-SHA256';
/** Shortest key accepted: 32 bytes, the HMAC-SHA256 output size. */
export const SEAL_KEY_MIN_BYTES = 32;

export type SealCheck = { ok: true; kind: SealKind } | { ok: false; reason: string };

export interface EvidenceSealer {
  seal(hash: string, kind: SealKind): string;
  /** Whether `seal` is this key's seal of `hash`, of the kind given (a backfilled seal never stands for a written one). */
  check(hash: string, seal: string | null | undefined, kind: SealKind): SealCheck;
}

export const SEAL_MISSING = 'no seal: the gateway did not write this row';
export const SEAL_INVALID = 'seal does not verify: the gateway did not write this row with its key';

const PREFIX = 'hmac-sha256';

/** A sealer for the key (its UTF-8 bytes, at least 32). The key never leaves this closure. */
export function evidenceSealer(key: string): EvidenceSealer {
  const bytes = Buffer.from(key, 'utf8');
  if (bytes.length < SEAL_KEY_MIN_BYTES) throw new Error(`the evidence seal key must be at least ${SEAL_KEY_MIN_BYTES} bytes`);
  const mac = (hash: string, kind: SealKind) =>
    createHmac('sha256', bytes).update(`changegate-evidence-seal/1\n${kind}\n${hash}`, 'utf8').digest();
  return {
    seal: (hash, kind) => `${PREFIX}:${kind}:${mac(hash, kind).toString('hex')}`,
    check(hash, seal, kind) {
      if (!seal) return { ok: false, reason: SEAL_MISSING };
      const [prefix, sealKind, value, ...rest] = seal.split(':');
      if (prefix !== PREFIX || sealKind !== kind || !value || rest.length > 0 || !/^[0-9a-f]{64}$/.test(value)) return { ok: false, reason: SEAL_INVALID };
      return timingSafeEqual(Buffer.from(value, 'hex'), mac(hash, kind)) ? { ok: true, kind } : { ok: false, reason: SEAL_INVALID };
    },
  };
}
