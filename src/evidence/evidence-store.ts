import type { DataSource, EntityManager } from 'typeorm';
import type { QueryDeepPartialEntity } from 'typeorm/query-builder/QueryPartialEntity';
import type { Actor } from '../auth/principal';
import { createLogger, type Logger } from '../logger';
import { EvidenceRecord } from '../persistence/entities/evidence-record.entity';
import { GENESIS_HASH, jcs, sha256Hex } from './canonical-json';
import type { EvidenceSealer, SealKind } from './evidence-seal';
import { EvidenceRefusal, assertNoSecrets } from './redaction';

export interface EvidenceInput {
  ticketKey: string;
  stepId: string;
  outcome: string;
  actionKind: string;
  system: string;
  identity: Record<string, unknown>;
  desiredState: Record<string, unknown>;
  observedState: Record<string, unknown>;
  verified: boolean;
  verification: Record<string, unknown>;
  /** The process that performed the step (`changegate-worker@host`). */
  actor: string;
  /**
   * The authenticated person or API token on whose behalf it happened, when one did (an inventory scan; later,
   * approvals and reviews). Rows written before principals existed have no such field, and their hashed canonical
   * JSON stays exactly as it was.
   */
  principal?: Actor;
  eventReceivedAt: string;
  startedAt: string;
  verifiedAt: string | null;
}

export interface EvidenceView extends EvidenceInput {
  seq: number;
  recordedAt: string;
  prevHash: string;
  hash: string;
}

/** One row as stored: the hash is SHA-256 over exactly `canonical` (UTF-8); `seal` is the gateway's keyed seal over the hash. */
export interface StoredEvidence {
  seq: number;
  prevHash: string;
  hash: string;
  canonical: string;
  /** Null when the row has none (which the chain check reports). */
  seal: string | null;
}

/** What the chain check reads of a row: its columns, and its seal (written with it, or backfilled for an older row). */
export interface ChainRow {
  ticketKey: string;
  seq: number;
  stepId: string;
  verified: boolean;
  prevHash: string;
  hash: string;
  canonical: string;
  seal: string | null;
  sealKind: SealKind;
}

export interface ChainCheck {
  valid: boolean;
  rows: number;
  /** First row whose hash or link does not match, if any. */
  brokenAt?: { seq: number; reason: string };
}

/**
 * Work that must commit or roll back with the evidence row: a projection of what the row proves (the identity
 * inventory). It runs inside the row's transaction, before the insert, and again if the insert has to retry; it
 * does not run when the row was already recorded (its work committed with that row).
 */
export type AlongsideEvidence = (tx: EntityManager) => Promise<void>;

/** Attempts when two writers race for the same ticket's next sequence number. */
const APPEND_ATTEMPTS = 8;

/**
 * A retried append found its record's place (ticket, step, outcome) taken by a row the gateway did not write. That
 * row is not returned as the gateway's; the record cannot be written until an administrator has looked at the row.
 */
export class ForgedEvidenceInTheWay extends Error {
  constructor(
    readonly ticketKey: string,
    readonly seq: number,
    readonly reason: string,
  ) {
    super(`evidence for ${ticketKey} cannot be recorded: row ${seq}, which holds its place, is not the gateway's (${reason})`);
    this.name = 'ForgedEvidenceInTheWay';
  }
}

export class EvidenceStore {
  /**
   * `sealer` holds CHANGEGATE_EVIDENCE_SEAL_KEY: every row written is sealed with it, and every check requires it.
   * `log` is told of each row a reader leaves out because the gateway did not write it.
   */
  constructor(
    private readonly ds: DataSource,
    private readonly sealer: EvidenceSealer,
    private readonly log: Logger = createLogger('evidence'),
  ) {}

  /** The database the chain lives in: projections written alongside its rows use the same one. */
  get dataSource(): DataSource {
    return this.ds;
  }

  /**
   * Appends one row to the ticket's chain. Idempotent per (ticket, step, outcome): an activity retried after a
   * committed append gets the existing row back instead of a second one. `alongside`, when given, runs in the same
   * database transaction as the insert: both commit, or neither does.
   */
  async append(input: EvidenceInput, alongside?: AlongsideEvidence): Promise<EvidenceView> {
    assertNoSecrets(input);
    const repo = this.ds.getRepository(EvidenceRecord);
    for (let attempt = 1; ; attempt++) {
      // A first attempt inserts straight away: the unique index on (ticket, step, outcome) refuses a row already
      // recorded (an activity retried after a committed append), and the next attempt returns that row.
      if (attempt > 1) {
        const existing = await repo.findOne({ where: { ticketKey: input.ticketKey, stepId: input.stepId, outcome: input.outcome } });
        if (existing) {
          // The application's database account may INSERT: a row placed here ahead of the gateway's is no answer.
          const [row] = await this.withSeals([existing]);
          const problem = rowProblem(row!, this.sealer);
          if (problem) {
            this.log.error('a forged evidence row holds the place of a record the gateway is writing', { ticketKey: row!.ticketKey, seq: row!.seq, id: row!.id, reason: problem });
            throw new ForgedEvidenceInTheWay(row!.ticketKey, row!.seq, problem);
          }
          return toView(existing);
        }
      }
      const last = await repo.findOne({ select: { seq: true, hash: true }, where: { ticketKey: input.ticketKey }, order: { seq: 'DESC' } });
      const seq = (last?.seq ?? 0) + 1;
      const prevHash = last?.hash ?? GENESIS_HASH;
      const recordedAt = new Date().toISOString();
      const body = { ...input, seq, prevHash, recordedAt };
      // RFC 8785 since the export; earlier rows keep the text they were hashed over, which every check reads back.
      const canonical = canonicalOrRefused(body);
      const hash = sha256Hex(canonical);
      try {
        const row = repo.create({
          ticketKey: input.ticketKey,
          seq,
          stepId: input.stepId,
          outcome: input.outcome,
          actionKind: input.actionKind,
          system: input.system,
          identity: input.identity,
          desiredState: input.desiredState,
          observedState: input.observedState,
          verified: input.verified,
          verification: input.verification,
          actor: input.actor,
          eventReceivedAt: new Date(input.eventReceivedAt),
          startedAt: new Date(input.startedAt),
          verifiedAt: input.verifiedAt ? new Date(input.verifiedAt) : null,
          recordedAt: new Date(recordedAt),
          prevHash,
          hash,
          canonical,
          seal: this.sealer.seal(hash, 'written'),
        }) as QueryDeepPartialEntity<EvidenceRecord>;
        if (alongside) {
          await this.ds.transaction(async (tx) => {
            await alongside(tx);
            await tx.getRepository(EvidenceRecord).insert(row);
          });
        } else {
          await repo.insert(row);
        }
        return { ...body, hash };
      } catch (err) {
        // A concurrent writer took this seq (or recorded the same step): read again and retry.
        if (isDuplicateKey(err) && attempt < APPEND_ATTEMPTS) continue;
        // Work alongside locks projection rows; two such transactions can deadlock, and InnoDB rolls one back whole.
        if (alongside && isDeadlock(err) && attempt < APPEND_ATTEMPTS) continue;
        throw err;
      }
    }
  }

  /**
   * The ticket's rows the gateway wrote, in order: what its activities and the ticket's gate read. A row that is not
   * (its seal, hash or columns do not check out) is left out and logged; the chain check still reports it.
   */
  async list(ticketKey: string): Promise<EvidenceView[]> {
    return this.genuine(await this.load(ticketKey)).map(toView);
  }

  /** Recomputes every hash and link of a ticket's chain from the stored canonical bytes. */
  async verifyChain(ticketKey: string): Promise<ChainCheck> {
    return checkChain(await this.load(ticketKey), this.sealer);
  }

  /** The rows and their chain check from one read, for endpoints that need both. */
  async listVerified(ticketKey: string): Promise<{ rows: EvidenceView[]; chain: ChainCheck }> {
    const rows = await this.load(ticketKey);
    return { rows: rows.map(toView), chain: checkChain(rows, this.sealer) };
  }

  /** The stored rows as they were hashed (the canonical text each hash is over) and their chain check: for exports. */
  async listCanonical(ticketKey: string): Promise<{ rows: StoredEvidence[]; chain: ChainCheck }> {
    const rows = await this.load(ticketKey);
    return { rows: rows.map((r) => ({ seq: r.seq, prevHash: r.prevHash, hash: r.hash, canonical: r.canonical, seal: r.seal })), chain: checkChain(rows, this.sealer) };
  }

  /**
   * The newest verified delivery of a credential with this fingerprint (`sha256:<128 bits>`): a rotation, or a
   * pipeline run's mint. It names the identity a leaked value belongs to and where it went. Only fingerprints are
   * compared; no value is ever stored. Only a row the gateway wrote counts, and only for what its hashed content says.
   */
  async deliveryByFingerprint(fingerprint: string): Promise<EvidenceView | null> {
    const rows = await this.ds
      .getRepository(EvidenceRecord)
      .createQueryBuilder('e')
      .where('e.outcome IN (:...outcomes) AND e.verified = :v', { outcomes: DELIVERIES, v: true })
      // The whole value, or one secret-bearing part of a structured credential (an AWS secret access key alone).
      .andWhere("(JSON_UNQUOTE(JSON_EXTRACT(e.observed_state, '$.fingerprint')) = :fp OR JSON_SEARCH(JSON_EXTRACT(e.observed_state, '$.partFingerprints'), 'one', :fp) IS NOT NULL)", { fp: fingerprint })
      .orderBy('e.id', 'DESC')
      .getMany();
    const views = this.genuine(await this.withSeals(rows)).map(toView);
    return views.find((v) => DELIVERIES.includes(v.outcome) && v.verified && deliveredFingerprints(v).includes(fingerprint)) ?? null;
  }

  /**
   * The latest outcome (verified, or failed) per (system, identity name) across every ticket, oldest first so later rows win:
   * what the inventory uses to tell identities the gateway granted from ones nobody asked for. Rows the gateway did
   * not write are left out, and each row counts for what its hashed content says.
   */
  async latestOutcomes(): Promise<Map<string, { outcome: string; ticketKey: string; recordedAt: string }>> {
    const recorded: Array<{ id: number; system: string; name: string; outcome: string; ticketKey: string; recordedAt: string }> = [];
    const seen = new Set<string>();
    // In batches: each row is checked from its canonical text, and only what the map needs is kept of it.
    for (let after = '0'; ; ) {
      const rows = await this.ds
        .getRepository(EvidenceRecord)
        .createQueryBuilder('e')
        // A failed step counts too: after a verified grant and a failed revoke the identity is not "managed" any more.
        .where('(e.verified = :v OR e.outcome = :failed) AND e.id > :after', { v: true, failed: 'failed', after })
        .orderBy('e.id', 'ASC')
        .take(LATEST_BATCH)
        .getMany();
      for (const r of this.genuine(await this.withSeals(rows), seen)) {
        const v = toView(r);
        recorded.push({ id: Number(r.id), system: v.system, name: String((v.identity as { name?: unknown }).name ?? ''), outcome: v.outcome, ticketKey: v.ticketKey, recordedAt: v.recordedAt });
      }
      if (rows.length < LATEST_BATCH) break;
      after = rows.at(-1)!.id;
    }
    // In the order the rows were recorded, as their hashed content says: not the column, which a copy can set.
    recorded.sort((a, b) => a.recordedAt.localeCompare(b.recordedAt) || a.id - b.id);
    return new Map(recorded.map((r) => [identityKey(r.system, r.name), { outcome: r.outcome, ticketKey: r.ticketKey, recordedAt: r.recordedAt }]));
  }

  /**
   * The rows the gateway wrote between `since` and `until` (recorded), of the action kinds named (all when none), for
   * views across tickets (the dashboard's reports). The columns narrow the read; what each row counts for is its hashed
   * content, read again here, because the application's account could write a column that says otherwise.
   */
  async listRecorded(filter: RecordedFilter): Promise<EvidenceView[]> {
    const out: EvidenceView[] = [];
    const seen = new Set<string>();
    for (let after = '0'; ; ) {
      const q = this.ds
        .getRepository(EvidenceRecord)
        .createQueryBuilder('e')
        .where('e.id > :after AND e.recorded_at >= :since AND e.recorded_at < :until', { after, since: filter.since, until: filter.until })
        .orderBy('e.id', 'ASC')
        .take(LATEST_BATCH);
      if (filter.actionKinds) q.andWhere('e.action_kind IN (:...kinds)', { kinds: filter.actionKinds.length > 0 ? filter.actionKinds : [''] });
      if (filter.system !== undefined) q.andWhere('e.system = :system', { system: filter.system });
      const rows = await q.getMany();
      for (const r of this.genuine(await this.withSeals(rows), seen)) {
        const v = toView(r);
        const at = Date.parse(v.recordedAt);
        if (filter.actionKinds && !filter.actionKinds.includes(v.actionKind)) continue;
        if (filter.system !== undefined && v.system !== filter.system) continue;
        if (!(at >= filter.since.getTime() && at < filter.until.getTime())) continue;
        out.push(v);
      }
      if (rows.length < LATEST_BATCH) break;
      after = rows.at(-1)!.id;
    }
    return out;
  }

  /** A ticket's rows in order, each with the seal that applies: its own, or the one backfilled for an older row. */
  private async load(ticketKey: string): Promise<Array<EvidenceRecord & ChainRow>> {
    return this.withSeals(await this.ds.getRepository(EvidenceRecord).find({ where: { ticketKey }, order: { seq: 'ASC' } }));
  }

  /** The rows, each with the seal that applies: its own, or the one backfilled for an older row. */
  private async withSeals(rows: EvidenceRecord[]): Promise<Array<EvidenceRecord & ChainRow>> {
    const unsealed = rows.filter((r) => r.seal === null).map((r) => r.id);
    const backfilled = new Map<string, string>();
    if (unsealed.length > 0) {
      const found = (await this.ds.query('SELECT evidence_id AS id, seal FROM evidence_backfilled_seals WHERE evidence_id IN (?)', [unsealed])) as Array<{ id: string | number; seal: string }>;
      for (const f of found) backfilled.set(String(f.id), f.seal);
    }
    return rows.map((r) =>
      Object.assign(r, r.seal === null ? { seal: backfilled.get(String(r.id)) ?? null, sealKind: 'backfilled' as const } : { sealKind: 'written' as const }),
    );
  }

  /**
   * The rows the gateway wrote, as checkChain checks each row (hash, columns, seal), and each once: a copy of a sealed
   * row (same hash) under an index the account could drop is a replay, not a second record. The others are logged.
   * `seen`: the hashes of rows already read, for a reader that goes through them in batches.
   */
  private genuine<R extends EvidenceRecord & ChainRow>(rows: R[], seen = new Set<string>()): R[] {
    return rows.filter((row) => {
      const problem = rowProblem(row, this.sealer) ?? (seen.has(row.hash) ? 'a copy of an earlier row' : null);
      seen.add(row.hash);
      if (problem) this.log.warn('evidence row left out: the gateway did not write it', { ticketKey: row.ticketKey, seq: row.seq, id: row.id, reason: problem });
      return problem === null;
    });
  }
}

/** What listRecorded reads: a window of recording times, and optionally action kinds and one system. */
export interface RecordedFilter {
  since: Date;
  until: Date;
  actionKinds?: readonly string[];
  system?: string;
}

/** Rows latestOutcomes and listRecorded read at a time. */
const LATEST_BATCH = 1000;

/** Outcomes that deliver a credential to where it is used. */
const DELIVERIES = ['rotated', 'minted'];

/** The fingerprints a delivery row records: the whole value's, and each secret-bearing part's. */
function deliveredFingerprints(view: EvidenceView): unknown[] {
  const observed = view.observedState as { fingerprint?: unknown; partFingerprints?: Record<string, unknown> };
  return [observed.fingerprint, ...Object.values(observed.partFingerprints ?? {})];
}

export function identityKey(system: string, name: string): string {
  return `${system}\u0000${name}`;
}

/**
 * Checks a ticket's rows in order: sequence, links, and each row as {@link rowProblem} checks it. The first row that
 * fails is where the chain breaks.
 */
export function checkChain(rows: ChainRow[], sealer: EvidenceSealer): ChainCheck {
  let prev = GENESIS_HASH;
  for (const [i, row] of rows.entries()) {
    if (row.seq !== i + 1) return { valid: false, rows: rows.length, brokenAt: { seq: row.seq, reason: 'sequence gap' } };
    if (row.prevHash !== prev) return { valid: false, rows: rows.length, brokenAt: { seq: row.seq, reason: 'prev_hash does not link to the previous row' } };
    const problem = rowProblem(row, sealer);
    if (problem) return { valid: false, rows: rows.length, brokenAt: { seq: row.seq, reason: problem } };
    prev = row.hash;
  }
  return { valid: true, rows: rows.length };
}

/**
 * Why one row is not the gateway's own, or null when it is: its hash against its canonical text, the queried columns
 * against what was hashed, and its seal against the gateway's key. What every reader of a single row checks.
 */
export function rowProblem(row: ChainRow, sealer: EvidenceSealer): string | null {
  if (sha256Hex(row.canonical) !== row.hash) return 'hash does not match the canonical content';
  const body = parsedObject(row.canonical) as { ticketKey?: unknown; seq?: unknown; prevHash?: unknown; stepId?: unknown; verified?: unknown } | null;
  // The ticket too: a sealed first row (every first row links to the genesis hash) copied under another ticket's key
  // would otherwise pass as that ticket's evidence.
  if (!body || body.ticketKey !== row.ticketKey || body.seq !== row.seq || body.prevHash !== row.prevHash || body.stepId !== row.stepId || body.verified !== Boolean(row.verified)) {
    return 'columns differ from the hashed content';
  }
  const sealed = sealer.check(row.hash, row.seal, row.sealKind);
  return sealed.ok ? null : sealed.reason;
}

/** The hashed text as a JSON object; null when it is not one (a forger may hash any text). */
function parsedObject(text: string): object | null {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

function toView(row: EvidenceRecord): EvidenceView {
  // The canonical text is the source of truth; columns are for querying.
  const body = JSON.parse(row.canonical) as Omit<EvidenceView, 'hash'>;
  return { ...body, hash: row.hash };
}

function isDeadlock(err: unknown): boolean {
  const e = err as { code?: string; driverError?: { code?: string } };
  return e?.code === 'ER_LOCK_DEADLOCK' || e?.driverError?.code === 'ER_LOCK_DEADLOCK';
}

function isDuplicateKey(err: unknown): boolean {
  const e = err as { code?: string; driverError?: { code?: string } };
  return e?.code === 'ER_DUP_ENTRY' || e?.driverError?.code === 'ER_DUP_ENTRY';
}

/**
 * The row's RFC 8785 text. A value canonical JSON cannot hold (an unpaired surrogate in a justification, say) is the
 * same every time: refused like a secret-bearing field, so the caller answers 400 instead of retrying forever.
 */
function canonicalOrRefused(body: Record<string, unknown>): string {
  try {
    return jcs(body);
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
    const message = err.message.replace(/^canonical JSON: /, '');
    throw new EvidenceRefusal('', 'a value canonical JSON cannot hold', `refusing to record evidence: ${message} (RFC 8785 cannot represent it)`);
  }
}
