import type { DataSource } from 'typeorm';
import type { ClosureView } from '../change/closure';
import { ClosureVerdictRecord } from '../persistence/entities/closure-verdict.entity';

export interface PublishedVerdict {
  view: ClosureView;
  evaluatedVersion: number;
  /** The newest delivery version the gateway accepted for the ticket (webhook_deliveries), -1 when none. */
  newestDelivery: number;
}

/**
 * The closure verdicts workflows publish (append-only), and what closure-check reads: the newest verdict of a ticket
 * together with the newest accepted delivery, in one round trip.
 */
export class ClosureVerdictStore {
  constructor(private readonly ds: DataSource) {}

  async publish(ticketKey: string, evaluatedVersion: number, view: ClosureView): Promise<void> {
    await this.ds.getRepository(ClosureVerdictRecord).insert({ ticketKey, evaluatedVersion, allowed: view.allowed, body: view, createdAt: new Date() });
  }

  async latest(source: string, ticket: string): Promise<PublishedVerdict | null> {
    const rows: Array<{ evaluated_version: number; body: string | ClosureView; newest: number | null }> = await this.ds.query(
      `SELECT v.evaluated_version, v.body,
              (SELECT MAX(d.record_version) FROM webhook_deliveries d WHERE d.source = ? AND d.ticket_number = ?) AS newest
         FROM closure_verdicts v
        WHERE v.ticket_key = ?
        ORDER BY v.id DESC
        LIMIT 1`,
      [source, ticket, `${source}:${ticket}`],
    );
    const row = rows[0];
    if (!row) return null;
    return {
      view: typeof row.body === 'string' ? (JSON.parse(row.body) as ClosureView) : row.body,
      evaluatedVersion: Number(row.evaluated_version),
      newestDelivery: row.newest === null ? -1 : Number(row.newest),
    };
  }
}
