import { ConfigError, evidenceSealKey, loadConfig } from '../src/config';
import { GENESIS_HASH, jcs, sha256Hex } from '../src/evidence/canonical-json';
import { SEAL_INVALID, SEAL_MISSING, evidenceSealer } from '../src/evidence/evidence-seal';
import { type ChainRow, checkChain } from '../src/evidence/evidence-store';

/**
 * The keyed seal on evidence rows (HMAC-SHA256 over the row's hash): what a forger holding only the database account
 * cannot make, however well the row is chained. The chain check over rows in memory; the database e2e is in
 * evidence-tamper.e2e.test.ts and evidence-seal-backfill.test.ts.
 */
describe('evidence seal', () => {
  const key = 'k'.repeat(32);
  const sealer = evidenceSealer(key);
  const hash = sha256Hex('some canonical text');

  it('seals a hash so that the same key verifies it, and says which kind of seal it is', () => {
    const seal = sealer.seal(hash, 'written');
    expect(seal).toMatch(/^hmac-sha256:written:[0-9a-f]{64}$/);
    expect(sealer.check(hash, seal, 'written')).toEqual({ ok: true, kind: 'written' });
    expect(evidenceSealer(key).check(hash, sealer.seal(hash, 'backfilled'), 'backfilled')).toEqual({ ok: true, kind: 'backfilled' });
  });

  it('refuses a seal made with another key', () => {
    const other = evidenceSealer('o'.repeat(32));
    expect(sealer.check(hash, other.seal(hash, 'written'), 'written')).toEqual({ ok: false, reason: SEAL_INVALID });
  });

  it('reports a missing seal as missing', () => {
    expect(sealer.check(hash, null, 'written')).toEqual({ ok: false, reason: SEAL_MISSING });
    expect(sealer.check(hash, '', 'written')).toEqual({ ok: false, reason: SEAL_MISSING });
  });

  it('refuses a seal over another hash (the row altered, its seal kept), and malformed seals', () => {
    const seal = sealer.seal(hash, 'written');
    const altered = sha256Hex('some other canonical text');
    expect(sealer.check(altered, seal, 'written')).toEqual({ ok: false, reason: SEAL_INVALID });
    for (const bad of ['hmac-sha256:written:', `hmac-sha256:written:${'0'.repeat(64)}`, `${seal}:extra`, seal.toUpperCase(), seal.replace('hmac-sha256', 'sha256')]) {
      expect([bad, sealer.check(hash, bad, 'written')]).toEqual([bad, { ok: false, reason: SEAL_INVALID }]);
    }
  });

  it('refuses a backfilled seal where a written one belongs, and the other way round (the kind is inside the MAC)', () => {
    const backfilled = sealer.seal(hash, 'backfilled');
    expect(sealer.check(hash, backfilled, 'written')).toEqual({ ok: false, reason: SEAL_INVALID });
    // Relabelled: the text says written, the MAC was made for backfilled.
    expect(sealer.check(hash, backfilled.replace(':backfilled:', ':written:'), 'written')).toEqual({ ok: false, reason: SEAL_INVALID });
    expect(sealer.check(hash, sealer.seal(hash, 'written'), 'backfilled')).toEqual({ ok: false, reason: SEAL_INVALID });
  });

  it('refuses a key shorter than 32 bytes', () => {
    expect(() => evidenceSealer('k'.repeat(31))).toThrow('the evidence seal key must be at least 32 bytes');
  });
});

describe('the chain check with seals', () => {
  const sealer = evidenceSealer('k'.repeat(32));

  /** A ticket's rows as the gateway writes them: chained, hashed over RFC 8785, each sealed. */
  function chain(ticketKey: string, n: number): ChainRow[] {
    const rows: ChainRow[] = [];
    let prevHash = GENESIS_HASH;
    for (let seq = 1; seq <= n; seq++) {
      const canonical = jcs({ ticketKey, seq, prevHash, stepId: `step-${seq}`, verified: true, outcome: 'revoked' });
      const hash = sha256Hex(canonical);
      rows.push({ ticketKey, seq, stepId: `step-${seq}`, verified: true, prevHash, hash, canonical, seal: sealer.seal(hash, 'written'), sealKind: 'written' });
      prevHash = hash;
    }
    return rows;
  }

  it('accepts a chain the gateway sealed, written or backfilled', () => {
    const rows = chain('servicenow:CHG1', 3);
    rows[0] = { ...rows[0]!, seal: sealer.seal(rows[0]!.hash, 'backfilled'), sealKind: 'backfilled' };
    expect(checkChain(rows, sealer)).toEqual({ valid: true, rows: 3 });
  });

  it('reports a well-chained row without a seal at that row', () => {
    const rows = chain('servicenow:CHG1', 3);
    rows[1]!.seal = null;
    expect(checkChain(rows, sealer)).toEqual({ valid: false, rows: 3, brokenAt: { seq: 2, reason: SEAL_MISSING } });
  });

  it('reports a chain sealed under another key at its first row', () => {
    expect(checkChain(chain('servicenow:CHG1', 2), evidenceSealer('o'.repeat(32)))).toEqual({ valid: false, rows: 2, brokenAt: { seq: 1, reason: SEAL_INVALID } });
  });

  it('reports a row rewritten with its hash recomputed (and the rows after it relinked) at that row: its seal is over the old hash', () => {
    const rows = chain('servicenow:CHG1', 3);
    let prevHash = rows[0]!.hash;
    for (const row of rows.slice(1)) {
      row.prevHash = prevHash;
      row.canonical = jcs({ ticketKey: row.ticketKey, seq: row.seq, prevHash, stepId: row.stepId, verified: true, outcome: row.seq === 2 ? 'granted' : 'revoked' });
      row.hash = sha256Hex(row.canonical);
      prevHash = row.hash;
    }
    expect(checkChain(rows, sealer)).toEqual({ valid: false, rows: 3, brokenAt: { seq: 2, reason: SEAL_INVALID } });
  });

  it("reports a sealed first row copied under another ticket's key (every first row links to the genesis hash)", () => {
    const [copied] = chain('servicenow:CHG1', 1);
    expect(checkChain([{ ...copied!, ticketKey: 'servicenow:CHG2' }], sealer)).toEqual({ valid: false, rows: 1, brokenAt: { seq: 1, reason: 'columns differ from the hashed content' } });
  });
});

describe('CHANGEGATE_EVIDENCE_SEAL_KEY', () => {
  const base = {
    SERVICENOW_URL: 'http://127.0.0.1:8090', SERVICENOW_USERNAME: 'u', SERVICENOW_PASSWORD: 'p',
    SERVICENOW_WEBHOOK_SECRET: 'sn-secret-0123456789', CHANGEGATE_ADMIN_TOKEN: 'admin-token-0123456789',
  };

  it('takes a key of at least 32 bytes, and refuses a shorter one without quoting it', () => {
    expect(evidenceSealKey(loadConfig({ ...base, CHANGEGATE_EVIDENCE_SEAL_KEY: 'é'.repeat(16) }))).toBe('é'.repeat(16));
    const short = 'short-seal-key-0123456789';
    let error: unknown;
    try {
      loadConfig({ ...base, CHANGEGATE_EVIDENCE_SEAL_KEY: short });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain('CHANGEGATE_EVIDENCE_SEAL_KEY: must be at least 32 bytes');
    expect((error as Error).message).not.toContain(short);
  });

  it('is required in production, and by every process that writes or checks evidence', () => {
    expect(() => loadConfig({ ...base, NODE_ENV: 'production' })).toThrow(/CHANGEGATE_EVIDENCE_SEAL_KEY: is required in production/);
    expect(() => evidenceSealKey(loadConfig({ ...base, CHANGEGATE_EVIDENCE_SEAL_KEY: '' }))).toThrow(/CHANGEGATE_EVIDENCE_SEAL_KEY: is required \(at least 32 bytes/);
  });
});
