import { createHash } from 'node:crypto';
import type { DataSource } from 'typeorm';
import type { Logger } from '../../logger';
import type { RawDelivery } from '../source';
import type { ServiceNowClient } from './servicenow-client';
import { EVENT_ID_HEADER } from './webhook-signature';

/**
 * Reconciliation: ServiceNow sends each change once (RESTMessageV2 has no retry), so a delivery lost to a gateway
 * restart, a network fault or a late ECC queue (refused as a replay) would be lost for good. The worker therefore
 * reads back, through the Table API, every change_request updated since its cursor, in the stable order
 * (sys_updated_on, sys_id), and hands each record to the same path as a webhook delivery (parse, de-duplicate on
 * sys_id + sys_mod_count, signal-with-start). A record the webhook already delivered is a duplicate there and
 * costs one insert attempt.
 *
 * A poll loop in the worker process rather than a Temporal schedule: each pass is one idempotent read whose only
 * state is the cursor row in the gateway's database, so a workflow per pass would add history and a task-queue round
 * trip and buy nothing; it runs where the ServiceNow credentials already are. Several worker replicas take turns
 * through a MariaDB named lock, and even two passes at once would only meet as duplicates.
 */
export interface ReconcilerOptions {
  client: ServiceNowClient;
  ds: DataSource;
  /** Names the instance in the cursor's key: one cursor per ServiceNow instance. */
  instanceUrl: string;
  /** The webhook's path after authentication: parse, de-duplicate, signal. Throws what the edge would answer. */
  accept(delivery: RawDelivery): Promise<{ duplicate: boolean }>;
  log: Logger;
  /** How far back the very first pass looks (no cursor yet). Default one hour. */
  firstLookbackMs?: number;
  /**
   * Each pass starts this far before the cursor: a transaction that committed late can carry a sys_updated_on older
   * than records already read. Repeats are duplicates. Default one minute.
   */
  overlapMs?: number;
  pageSize?: number;
  /** Pages read per pass at most; the next pass continues from the cursor. */
  maxPages?: number;
  now?: () => number;
}

export interface ReconcileReport {
  /** False when another process held the lock. */
  ran: boolean;
  read: number;
  accepted: number;
  duplicates: number;
  refused: number;
  cursor?: string;
}

const GLIDE_DATE_TIME = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/;

function glideDateTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
}

function glideMs(value: string): number {
  return Date.parse(`${value.replace(' ', 'T')}Z`);
}

/** An error the edge answers with a status: 400 (invalid, the requester was told) and 409 (finished) are final. */
function finalRefusal(err: unknown): boolean {
  const status = (err as { status?: unknown }).status;
  return status === 400 || status === 409;
}

export class ServiceNowReconciler {
  private readonly cursorKey: string;
  private readonly lockName: string;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;

  constructor(private readonly opts: ReconcilerOptions) {
    const instance = new URL(opts.instanceUrl);
    this.cursorKey = `servicenow:${instance.origin}${instance.pathname.replace(/\/+$/, '')}`;
    // MariaDB lock names are at most 64 characters.
    this.lockName = `cg-reconcile-${createHash('sha256').update(this.cursorKey).digest('hex').slice(0, 40)}`;
  }

  /** Runs a pass every `intervalMs` (the first at once), one at a time, until stop(). */
  start(intervalMs: number): void {
    const tick = () => {
      if (this.stopped) return;
      this.running = this.runOnce()
        .catch((err: unknown) => this.opts.log.warn('reconciliation pass failed; the next pass starts from the same cursor', { error: (err as Error).message }))
        .finally(() => {
          this.running = undefined;
          if (!this.stopped) this.timer = setTimeout(tick, intervalMs);
        });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  /** One pass: every change updated since the cursor (less the overlap), handed to the delivery path in order. */
  async runOnce(): Promise<ReconcileReport> {
    const runner = this.opts.ds.createQueryRunner();
    await runner.connect();
    try {
      const [lock] = (await runner.query('SELECT GET_LOCK(?, 0) AS got', [this.lockName])) as Array<{ got: number | string | null }>;
      if (Number(lock?.got) !== 1) return { ran: false, read: 0, accepted: 0, duplicates: 0, refused: 0 };
      try {
        return await this.pass();
      } finally {
        await runner.query('SELECT RELEASE_LOCK(?)', [this.lockName]);
      }
    } finally {
      await runner.release();
    }
  }

  private async pass(): Promise<ReconcileReport> {
    const { client, log } = this.opts;
    const now = (this.opts.now ?? Date.now)();
    const pageSize = this.opts.pageSize ?? 100;
    const maxPages = this.opts.maxPages ?? 50;
    const stored = await this.readCursor();
    const start = stored ? glideMs(stored.updatedOn) - (this.opts.overlapMs ?? 60_000) : now - (this.opts.firstLookbackMs ?? 3_600_000);
    const report: ReconcileReport = { ran: true, read: 0, accepted: 0, duplicates: 0, refused: 0, cursor: stored?.updatedOn };
    let newest = stored;
    const seen = new Set<string>();
    let since = glideDateTime(start);
    let offset = 0;
    try {
      for (let page = 0; page < maxPages; page++) {
        const records = await client.listChangesUpdatedSince(since, { limit: pageSize, offset });
        for (const record of records) {
          const sysId = typeof record.sys_id === 'string' ? record.sys_id : '';
          const modCount = typeof record.sys_mod_count === 'string' ? record.sys_mod_count : '';
          const updatedOn = typeof record.sys_updated_on === 'string' ? record.sys_updated_on : '';
          if (!/^[0-9a-f]{32}$/.test(sysId) || !/^\d{1,9}$/.test(modCount) || !GLIDE_DATE_TIME.test(updatedOn)) continue;
          const key = `${sysId}:${modCount}`;
          if (seen.has(key)) continue;
          seen.add(key);
          report.read++;
          await this.hand(record, sysId, modCount, report);
          if (!newest || updatedOn > newest.updatedOn || (updatedOn === newest.updatedOn && sysId > newest.recordId)) newest = { updatedOn, recordId: sysId };
        }
        if (records.length < pageSize) break;
        // Keyset paging: the next page starts at the last record's time (records of that second are seen already);
        // a page that is all one second moves on by offset instead.
        const last = records[records.length - 1].sys_updated_on;
        if (typeof last === 'string' && last !== since) {
          since = last;
          offset = 0;
        } else {
          offset += pageSize;
        }
      }
    } finally {
      // Records are handed in order, so everything up to the newest handed one is done, even if a later one failed.
      if (newest && newest !== stored) {
        await this.writeCursor(newest);
        report.cursor = newest.updatedOn;
      }
    }
    if (report.accepted > 0 || report.refused > 0) log.info('reconciliation handed over record versions no accepted delivery carried', { ...report });
    return report;
  }

  private async hand(record: Record<string, unknown>, sysId: string, modCount: string, report: ReconcileReport): Promise<void> {
    const delivery: RawDelivery = {
      raw: Buffer.from(JSON.stringify(record), 'utf8'),
      // Stable per record version, so a second pass over the same version is a duplicate by event id as well.
      headers: { [EVENT_ID_HEADER]: `reconcile:${sysId}:${modCount}` },
      receivedAt: new Date((this.opts.now ?? Date.now)()),
      secret: undefined,
    };
    try {
      const { duplicate } = await this.opts.accept(delivery);
      if (duplicate) report.duplicates++;
      else report.accepted++;
    } catch (err) {
      if (!finalRefusal(err)) throw err;
      report.refused++;
    }
  }

  private async readCursor(): Promise<{ updatedOn: string; recordId: string } | undefined> {
    const rows = (await this.opts.ds.query('SELECT updated_on, record_id FROM itsm_sync_cursors WHERE cursor_key = ?', [this.cursorKey])) as Array<{
      updated_on: string;
      record_id: string;
    }>;
    return rows[0] ? { updatedOn: rows[0].updated_on, recordId: rows[0].record_id } : undefined;
  }

  private async writeCursor(cursor: { updatedOn: string; recordId: string }): Promise<void> {
    // Never moves back: two passes that overlapped leave the newer cursor.
    await this.opts.ds.query(
      `INSERT INTO itsm_sync_cursors (cursor_key, updated_on, record_id, synced_at) VALUES (?, ?, ?, ?)
       ON DUPLICATE KEY UPDATE
         record_id = IF(VALUES(updated_on) > updated_on OR (VALUES(updated_on) = updated_on AND VALUES(record_id) > record_id), VALUES(record_id), record_id),
         updated_on = GREATEST(updated_on, VALUES(updated_on)),
         synced_at = VALUES(synced_at)`,
      [this.cursorKey, cursor.updatedOn, cursor.recordId, new Date()],
    );
  }
}
