import type { KeyObject } from 'node:crypto';
import { createPublicKey } from 'node:crypto';
import type { SourceName } from '../change/ticket';
import { ticketKey } from '../change/ticket';
import { isDeepStrictEqual } from 'node:util';
import { GENESIS_HASH, jcs, sha256Hex } from './canonical-json';
import type { ChainCheck, EvidenceStore } from './evidence-store';
import { type EvidenceSealer, SEAL_ALGORITHM, type SealKind } from './evidence-seal';
import { type EvidencePublicJwk, type EvidenceSigner, keyIdOf, verifySignature } from './evidence-signing';

export const EXPORT_FORMAT = 'changegate-evidence-export/1';

export interface ExportedRow {
  seq: number;
  prevHash: string;
  /** SHA-256 (hex) over `canonical` as UTF-8. */
  hash: string;
  /** The exact text the hash is over: RFC 8785 for rows recorded since the gateway said so, and kept as stored. */
  canonical: string;
  /** `canonical` parsed, for reading; the verifier checks it says the same. */
  record: Record<string, unknown>;
  /**
   * The gateway's seal over `hash` (HMAC-SHA256 under CHANGEGATE_EVIDENCE_SEAL_KEY, `hmac-sha256:<kind>:<hex>`), null
   * if the row has none. Only a holder of that key can check it; everyone else relies on `chain`, the gateway's check
   * (seals included), which the signature covers.
   */
  seal: string | null;
}

export interface EvidenceExport {
  format: typeof EXPORT_FORMAT;
  source: string;
  ticket: string;
  exportedAt: string;
  canonicalization: 'RFC 8785';
  hashAlgorithm: 'SHA-256';
  sealAlgorithm: typeof SEAL_ALGORITHM;
  genesisHash: string;
  /** The gateway's own check of the chain when it exported it. */
  chain: ChainCheck;
  rows: ExportedRow[];
  /** Detached Ed25519 signature over the RFC 8785 bytes of this object without its `signature` member. */
  signature: { alg: 'Ed25519'; keyId: string; publicKeyJwk: EvidencePublicJwk; value: string };
}

/** The bytes a bundle's signature is over: the RFC 8785 form of the bundle without its `signature` member. */
export function signedBytes(bundle: Omit<EvidenceExport, 'signature'> & { signature?: unknown }): Buffer {
  const signed: Record<string, unknown> = { ...bundle };
  delete signed.signature;
  return Buffer.from(jcs(signed), 'utf8');
}

/** A ticket's signed evidence bundle; null when nothing was recorded. */
export async function exportEvidence(evidence: EvidenceStore, signer: EvidenceSigner, source: SourceName, key: string): Promise<EvidenceExport | null> {
  const { rows, chain } = await evidence.listCanonical(ticketKey(source, key));
  if (rows.length === 0) return null;
  const unsigned = {
    format: EXPORT_FORMAT,
    source,
    ticket: key,
    exportedAt: new Date().toISOString(),
    canonicalization: 'RFC 8785',
    hashAlgorithm: 'SHA-256',
    sealAlgorithm: SEAL_ALGORITHM,
    genesisHash: GENESIS_HASH,
    chain,
    rows: rows.map((r) => ({ ...r, record: JSON.parse(r.canonical) as Record<string, unknown> })),
  } as const;
  return { ...unsigned, signature: { alg: 'Ed25519', keyId: signer.keyId, publicKeyJwk: signer.publicKeyJwk, value: signer.sign(signedBytes(unsigned)) } };
}

export interface ExportProblem {
  /** The row the problem breaks (its position's expected seq), or none for the bundle and its signature. */
  seq?: number;
  message: string;
}

export interface ExportVerdict {
  valid: boolean;
  rows: number;
  keyId?: string;
  /** Whether the signature was checked against a key the caller trusts, or only against the one the bundle carries. */
  keySource: 'given' | 'embedded';
  /** Whether each row's seal was checked (the caller holds the seal key), or left to the gateway's signed chain check. */
  seals: 'checked' | 'not checked';
  problems: ExportProblem[];
}

/**
 * Verifies a bundle offline: each row's hash over its canonical text, the record against that text, the links of the
 * chain from the genesis hash, and the signature over the whole. Every problem is reported with the row it breaks,
 * not just the first. Without `trusted`, the signature is checked against the key the bundle carries: that proves
 * the bundle is intact, not who signed it. With `sealer` (only for a holder of the gateway's seal key), each row's
 * seal too; without it, the seals stand on the gateway's own check, `chain`, which the signature covers.
 */
export function verifyExport(input: unknown, trusted?: KeyObject, sealer?: EvidenceSealer): ExportVerdict {
  const problems: ExportProblem[] = [];
  const bundle = input as Partial<EvidenceExport> | null;
  const verdict = (keyId?: string): ExportVerdict => ({
    valid: problems.length === 0,
    rows: Array.isArray(bundle?.rows) ? bundle.rows.length : 0,
    keySource: trusted ? 'given' : 'embedded',
    seals: sealer ? 'checked' : 'not checked',
    ...(keyId ? { keyId } : {}),
    problems,
  });
  if (!bundle || typeof bundle !== 'object' || bundle.format !== EXPORT_FORMAT || !Array.isArray(bundle.rows)) {
    problems.push({ message: `not a changegate evidence bundle (format must be ${EXPORT_FORMAT}, with a rows array)` });
    return verdict();
  }
  if (bundle.rows.length === 0) problems.push({ message: 'the bundle holds no rows' });
  let prevHash = bundle.genesisHash === GENESIS_HASH ? GENESIS_HASH : '';
  if (!prevHash) problems.push({ message: 'genesisHash is not 64 zeros' });
  for (const [i, row] of (bundle.rows as Array<Partial<ExportedRow> | null>).entries()) {
    const seq = i + 1;
    const at = (message: string) => problems.push({ seq, message: `row ${seq}: ${message}` });
    if (!row || typeof row !== 'object' || typeof row.canonical !== 'string' || typeof row.hash !== 'string') {
      at('is not a row (needs seq, prevHash, hash and canonical)');
      prevHash = '';
      continue;
    }
    if (row.seq !== seq) at(`carries seq ${String(row.seq)} where seq ${seq} belongs: a row is missing or out of order`);
    if (row.prevHash !== prevHash) at(seq === 1 ? 'prevHash is not the genesis hash' : `prevHash does not link to row ${seq - 1}'s hash`);
    if (sha256Hex(row.canonical) !== row.hash) at('hash does not match its canonical text');
    let body: Record<string, unknown> | undefined;
    try {
      body = JSON.parse(row.canonical) as Record<string, unknown>;
    } catch {
      at('canonical text is not JSON');
    }
    if (body) {
      if (body.seq !== row.seq || body.prevHash !== row.prevHash) at('seq or prevHash differ from the hashed canonical text');
      if (!isDeepStrictEqual(row.record, body)) at('record differs from the hashed canonical text');
    }
    if (sealer) {
      // The kind (written, or backfilled for a row older than sealing) is inside the MAC: take it from the seal.
      const kind = (typeof row.seal === 'string' ? row.seal.split(':')[1] : undefined) as SealKind | undefined;
      const sealed = sealer.check(row.hash, typeof row.seal === 'string' ? row.seal : null, kind === 'backfilled' ? 'backfilled' : 'written');
      if (!sealed.ok) at(sealed.reason);
    }
    prevHash = row.hash;
  }
  if (bundle.chain?.valid !== true || bundle.chain.rows !== bundle.rows.length) {
    problems.push({ message: `the gateway's chain check in the bundle does not say valid for ${bundle.rows.length} rows` });
  }
  return verdict(checkSignature(bundle, trusted, problems));
}

function checkSignature(bundle: Partial<EvidenceExport>, trusted: KeyObject | undefined, problems: ExportProblem[]): string | undefined {
  const sig = bundle.signature;
  if (!sig || sig.alg !== 'Ed25519' || typeof sig.value !== 'string') {
    problems.push({ message: 'signature: missing, or not Ed25519' });
    return undefined;
  }
  let key = trusted;
  if (!key) {
    try {
      key = createPublicKey({ key: { kty: sig.publicKeyJwk?.kty, crv: sig.publicKeyJwk?.crv, x: sig.publicKeyJwk?.x } as never, format: 'jwk' });
    } catch {
      problems.push({ message: 'signature: the bundle carries no usable public key (pass --public-key)' });
      return undefined;
    }
  }
  const keyId = keyIdOf(key);
  if (trusted && sig.keyId !== keyId) {
    problems.push({ message: `signature: made with key ${String(sig.keyId)}, not the given public key ${keyId}` });
  }
  if (!verifySignature(signedBytes(bundle as EvidenceExport), sig.value, key)) {
    problems.push({ message: `signature: does not verify with key ${keyId} over the bundle's RFC 8785 bytes (the bundle changed after it was signed, or another key signed it)` });
  }
  return keyId;
}
