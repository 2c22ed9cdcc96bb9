import type { RawDelivery } from '../source';
import { PollingReconciler, isLater, type ReconcileReport, type ReconcilerBase, type SyncCursor } from '../reconciler';
import type { ServiceNowClient } from './servicenow-client';
import { EVENT_ID_HEADER } from './webhook-signature';

export type { ReconcileReport } from '../reconciler';

/**
 * Reconciliation with ServiceNow, which sends each change once (RESTMessageV2 has no retry), so a delivery lost to a
 * gateway restart, a network fault or a late ECC queue (refused as a replay) would be lost for good. The worker reads
 * back, through the Table API, every change_request updated since its cursor, in the stable order
 * (sys_updated_on, sys_id), and hands each record to the webhook's path (de-duplicated on sys_id + sys_mod_count).
 * A record the webhook already delivered costs one insert attempt.
 */
export interface ReconcilerOptions extends ReconcilerBase {
  client: ServiceNowClient;
  /** Names the instance in the cursor's key: one cursor per ServiceNow instance. */
  instanceUrl: string;
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
}

const GLIDE_DATE_TIME = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/;

function glideDateTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
}

function glideMs(value: string): number {
  return Date.parse(`${value.replace(' ', 'T')}Z`);
}

export class ServiceNowReconciler extends PollingReconciler {
  constructor(private readonly opts: ReconcilerOptions) {
    const instance = new URL(opts.instanceUrl);
    super(opts, `servicenow:${instance.origin}${instance.pathname.replace(/\/+$/, '')}`);
  }

  /** Every change updated since the cursor (less the overlap), handed to the delivery path in order. */
  protected async pass(stored: SyncCursor | undefined, report: ReconcileReport, handed: { newest?: SyncCursor }): Promise<void> {
    const { client } = this.opts;
    const now = this.now();
    const pageSize = this.opts.pageSize ?? 100;
    const maxPages = this.opts.maxPages ?? 50;
    const start = stored ? glideMs(stored.updatedOn) - (this.opts.overlapMs ?? 60_000) : now - (this.opts.firstLookbackMs ?? 3_600_000);
    const seen = new Set<string>();
    let since = glideDateTime(start);
    let offset = 0;
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
        await this.hand(this.delivery(record, sysId, modCount), report);
        const at = { updatedOn, recordId: sysId };
        if (isLater(at, handed.newest)) handed.newest = at;
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
  }

  private delivery(record: Record<string, unknown>, sysId: string, modCount: string): RawDelivery {
    return {
      raw: Buffer.from(JSON.stringify(record), 'utf8'),
      // Stable per record version, so a second pass over the same version is a duplicate by event id as well.
      headers: { [EVENT_ID_HEADER]: `reconcile:${sysId}:${modCount}` },
      receivedAt: new Date(this.now()),
      secret: undefined,
    };
  }
}
