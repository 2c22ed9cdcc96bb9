import { createHash } from 'node:crypto';
import type { DataSource } from 'typeorm';
import type { Logger } from '../logger';
import type { RawDelivery } from './source';

/** Where a source's reconciliation has read up to: the newest record handed over, by update time then record id. */
export interface SyncCursor {
  updatedOn: string;
  recordId: string;
}

/** Whether `a` is past `b` in the order records are read: update time, then record id. */
export function isLater(a: SyncCursor, b: SyncCursor | undefined): boolean {
  return !b || a.updatedOn > b.updatedOn || (a.updatedOn === b.updatedOn && a.recordId > b.recordId);
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

export interface ReconcilerBase {
  ds: DataSource;
  /** The delivery path after authentication: parse, de-duplicate, signal. Throws what the edge would answer. */
  accept(delivery: RawDelivery): Promise<{ duplicate: boolean }>;
  log: Logger;
  now?: () => number;
}

/** An error the edge answers with a status: 400 (invalid, the requester was told) and 409 (finished) are final. */
function finalRefusal(err: unknown): boolean {
  const status = (err as { status?: unknown }).status;
  return status === 400 || status === 409;
}

/**
 * What every source's reconciliation shares: records the webhook may have lost are read back through the source's
 * API, in a stable order from a cursor kept in the gateway's database (`itsm_sync_cursors`), and each is handed to
 * the same path as a webhook delivery, where one the webhook already delivered is a duplicate.
 *
 * A poll loop in the worker process rather than a Temporal schedule: each pass is one idempotent read whose only
 * state is the cursor row, so a workflow per pass would add history and a task-queue round trip and buy nothing; it
 * runs where the source's credentials already are. Several worker replicas take turns through a MariaDB named lock,
 * and even two passes at once would only meet as duplicates.
 */
export abstract class PollingReconciler {
  private readonly lockName: string;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;

  protected constructor(
    private readonly base: ReconcilerBase,
    /** One cursor per source system (an instance, a site's project). */
    private readonly cursorKey: string,
  ) {
    // MariaDB lock names are at most 64 characters.
    this.lockName = `cg-reconcile-${createHash('sha256').update(cursorKey).digest('hex').slice(0, 40)}`;
  }

  /**
   * One pass from the stored cursor: hands records over in order (`hand`), and returns the newest record handed,
   * also when it stops on an error part-way (then through `handed`, which it keeps current).
   */
  protected abstract pass(stored: SyncCursor | undefined, report: ReconcileReport, handed: { newest?: SyncCursor }): Promise<void>;

  protected now(): number {
    return (this.base.now ?? Date.now)();
  }

  /** Runs a pass every `intervalMs` (the first at once), one at a time, until stop(). */
  start(intervalMs: number): void {
    const tick = () => {
      if (this.stopped) return;
      this.running = this.runOnce()
        .catch((err: unknown) => this.base.log.warn('reconciliation pass failed; the next pass starts from the same cursor', { error: (err as Error).message }))
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

  /** One pass, under the lock; another process holding it means this one does nothing. */
  async runOnce(): Promise<ReconcileReport> {
    const runner = this.base.ds.createQueryRunner();
    await runner.connect();
    try {
      const [lock] = (await runner.query('SELECT GET_LOCK(?, 0) AS got', [this.lockName])) as Array<{ got: number | string | null }>;
      if (Number(lock?.got) !== 1) return { ran: false, read: 0, accepted: 0, duplicates: 0, refused: 0 };
      try {
        return await this.runPass();
      } finally {
        await runner.query('SELECT RELEASE_LOCK(?)', [this.lockName]);
      }
    } finally {
      await runner.release();
    }
  }

  private async runPass(): Promise<ReconcileReport> {
    const stored = await this.readCursor();
    const report: ReconcileReport = { ran: true, read: 0, accepted: 0, duplicates: 0, refused: 0, cursor: stored?.updatedOn };
    const handed: { newest?: SyncCursor } = {};
    try {
      await this.pass(stored, report, handed);
    } finally {
      // Records are handed in order, so everything up to the newest handed one is done, even if a later one failed.
      if (handed.newest && isLater(handed.newest, stored)) {
        await this.writeCursor(handed.newest);
        report.cursor = handed.newest.updatedOn;
      }
    }
    if (report.accepted > 0 || report.refused > 0) this.base.log.info('reconciliation handed over record versions no accepted delivery carried', { ...report });
    return report;
  }

  /** Hands one record to the delivery path; a final refusal (400, 409) is counted, anything else stops the pass. */
  protected async hand(delivery: RawDelivery, report: ReconcileReport): Promise<void> {
    try {
      const { duplicate } = await this.base.accept(delivery);
      if (duplicate) report.duplicates++;
      else report.accepted++;
    } catch (err) {
      if (!finalRefusal(err)) throw err;
      report.refused++;
    }
  }

  private async readCursor(): Promise<SyncCursor | undefined> {
    const rows = (await this.base.ds.query('SELECT updated_on, record_id FROM itsm_sync_cursors WHERE cursor_key = ?', [this.cursorKey])) as Array<{
      updated_on: string;
      record_id: string;
    }>;
    return rows[0] ? { updatedOn: rows[0].updated_on, recordId: rows[0].record_id } : undefined;
  }

  private async writeCursor(cursor: SyncCursor): Promise<void> {
    // Never moves back: two passes that overlapped leave the newer cursor.
    await this.base.ds.query(
      `INSERT INTO itsm_sync_cursors (cursor_key, updated_on, record_id, synced_at) VALUES (?, ?, ?, ?)
       ON DUPLICATE KEY UPDATE
         record_id = IF(VALUES(updated_on) > updated_on OR (VALUES(updated_on) = updated_on AND VALUES(record_id) > record_id), VALUES(record_id), record_id),
         updated_on = GREATEST(updated_on, VALUES(updated_on)),
         synced_at = VALUES(synced_at)`,
      [this.cursorKey, cursor.updatedOn, cursor.recordId, new Date()],
    );
  }
}
