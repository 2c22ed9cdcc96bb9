import type { DataSource } from 'typeorm';
import type { ClosureView } from '../change/closure';
import { canonicalJson, sha256Hex } from '../evidence/canonical-json';
import type { EvidenceSealer } from '../evidence/evidence-seal';
import { createLogger, type Logger } from '../logger';
import { ClosureVerdictRecord } from '../persistence/entities/closure-verdict.entity';

export interface PublishedVerdict {
  view: ClosureView;
  evaluatedVersion: number;
  /** The newest delivery version the gateway accepted for the ticket (webhook_deliveries), -1 when none. */
  newestDelivery: number;
}

/** Verdict rows read at a time while looking for a ticket's newest sealed one. */
const BATCH = 20;

/**
 * The closure verdicts workflows publish (append-only), and what closure-check reads: the newest verdict of a ticket
 * together with the newest accepted delivery, in one round trip.
 *
 * Each row is sealed with the evidence seal key (kind `verdict`) over the ticket, the version, the moment it was
 * published and the view, because the application's database account may INSERT here as it may into the evidence:
 * a verdict without the gateway's seal is not read, and neither is a second copy of a sealed one (its seal repeats an
 * earlier row's), which would put an older verdict back on top. Such rows are logged and passed over; the newest
 * genuine verdict answers, and a ticket with none is answered by its workflow.
 */
export class ClosureVerdictStore {
  constructor(
    private readonly ds: DataSource,
    private readonly sealer: EvidenceSealer,
    private readonly log: Logger = createLogger('verdicts'),
  ) {}

  async publish(ticketKey: string, evaluatedVersion: number, view: ClosureView): Promise<void> {
    // Sealed over the view as the JSON column stores it and reads it back.
    const body = JSON.parse(JSON.stringify(view)) as ClosureView;
    const createdAt = new Date();
    const seal = this.sealer.seal(verdictHash(ticketKey, evaluatedVersion, createdAt, body), 'verdict');
    await this.ds.getRepository(ClosureVerdictRecord).insert({ ticketKey, evaluatedVersion, allowed: view.allowed, body, createdAt, seal });
  }

  /**
   * The newest genuine verdict of each ticket, newest tickets first: the dashboard's list of changes. A ticket whose
   * newest row is not the gateway's (unsealed, or a copy) is answered as latest() answers it, from the rows before.
   * `source` keeps tickets of that source; `system` and `kind` those with a step on that system, of that action kind,
   * in any of their verdicts. No `limit`: every ticket. `receivedAt` is when the gateway first received the ticket (its
   * first accepted delivery; the first verdict for a ticket no delivery brought, such as a change the gateway opened).
   */
  async listLatest(filter: { source?: string; system?: string; kind?: string; limit?: number }): Promise<Array<{ source: string; ticket: string; publishedAt: string; receivedAt: string } & PublishedVerdict>> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.source) {
      where.push('v.ticket_key LIKE ?');
      args.push(`${filter.source.replace(/[\\%_]/g, '\\$&')}:%`);
    }
    if (filter.system) {
      where.push(stepHas('system'));
      args.push(filter.system);
    }
    if (filter.kind) {
      where.push(stepHas('kind'));
      args.push(filter.kind);
    }
    const rows: Array<VerdictRow & { ticket_key: string; received: Date | string }> = await this.ds.query(
      `SELECT v.id, v.ticket_key, v.evaluated_version, v.body, v.created_at, v.seal,
              EXISTS (SELECT 1 FROM closure_verdicts o WHERE o.ticket_key = v.ticket_key AND o.seal = v.seal AND o.id < v.id) AS copied,
              (SELECT MAX(d.record_version) FROM webhook_deliveries d
                WHERE d.source = SUBSTRING_INDEX(v.ticket_key, ':', 1) AND d.ticket_number = SUBSTRING(v.ticket_key, LOCATE(':', v.ticket_key) + 1)) AS newest,
              COALESCE(
                (SELECT MIN(d.received_at) FROM webhook_deliveries d
                  WHERE d.source = SUBSTRING_INDEX(v.ticket_key, ':', 1) AND d.ticket_number = SUBSTRING(v.ticket_key, LOCATE(':', v.ticket_key) + 1)),
                (SELECT MIN(f.created_at) FROM closure_verdicts f WHERE f.ticket_key = v.ticket_key)) AS received
         FROM closure_verdicts v
         JOIN (SELECT ticket_key, MAX(id) AS id FROM closure_verdicts GROUP BY ticket_key) l ON l.id = v.id
        ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY v.id DESC
        ${filter.limit === undefined ? '' : `LIMIT ${Number(filter.limit)}`}`,
      args,
    );
    const out: Array<{ source: string; ticket: string; publishedAt: string; receivedAt: string } & PublishedVerdict> = [];
    for (const row of rows) {
      const [source, ticket] = splitKey(row.ticket_key);
      const genuine = this.genuine(row.ticket_key, row);
      const verdict = genuine ? { view: genuine, evaluatedVersion: Number(row.evaluated_version), newestDelivery: row.newest === null ? -1 : Number(row.newest) } : await this.latest(source, ticket);
      if (verdict) out.push({ source, ticket, publishedAt: new Date(row.created_at).toISOString(), receivedAt: new Date(row.received).toISOString(), ...verdict });
    }
    return out;
  }

  async latest(source: string, ticket: string): Promise<PublishedVerdict | null> {
    const ticketKey = `${source}:${ticket}`;
    for (let before: string | null = null; ; ) {
      const rows: VerdictRow[] = await this.ds.query(
        `SELECT v.id, v.evaluated_version, v.body, v.created_at, v.seal,
                EXISTS (SELECT 1 FROM closure_verdicts o WHERE o.ticket_key = v.ticket_key AND o.seal = v.seal AND o.id < v.id) AS copied,
                (SELECT MAX(d.record_version) FROM webhook_deliveries d WHERE d.source = ? AND d.ticket_number = ?) AS newest
           FROM closure_verdicts v
          WHERE v.ticket_key = ? ${before === null ? '' : 'AND v.id < ?'}
          ORDER BY v.id DESC
          LIMIT ${BATCH}`,
        [source, ticket, ticketKey, ...(before === null ? [] : [before])],
      );
      for (const row of rows) {
        const view = this.genuine(ticketKey, row);
        if (view) return { view, evaluatedVersion: Number(row.evaluated_version), newestDelivery: row.newest === null ? -1 : Number(row.newest) };
      }
      if (rows.length < BATCH) return null;
      before = String(rows.at(-1)!.id);
    }
  }

  /** The row's view when the gateway published it (sealed, and not a copy of an earlier row); null, logged, otherwise. */
  private genuine(ticketKey: string, row: VerdictRow): ClosureView | null {
    const view = typeof row.body === 'string' ? (JSON.parse(row.body) as ClosureView) : row.body;
    const sealed = this.sealer.check(verdictHash(ticketKey, Number(row.evaluated_version), new Date(row.created_at), view), row.seal, 'verdict');
    const problem = !sealed.ok ? sealed.reason : Number(row.copied) ? 'a copy of an earlier verdict' : null;
    if (!problem) return view;
    this.log.warn('closure verdict passed over: the gateway did not publish it', { ticketKey, id: String(row.id), reason: problem });
    return null;
  }
}

/**
 * Any of the ticket's rows has a step with this field's value, not only the newest (which may be a forgery naming
 * none): the caller checks the value again on the genuine view.
 */
function stepHas(field: 'system' | 'kind'): string {
  return `EXISTS (SELECT 1 FROM closure_verdicts s WHERE s.ticket_key = v.ticket_key AND JSON_CONTAINS(JSON_EXTRACT(s.body, '$.steps[*].${field}'), JSON_QUOTE(?)))`;
}

function splitKey(ticketKey: string): [string, string] {
  const at = ticketKey.indexOf(':');
  return [ticketKey.slice(0, at), ticketKey.slice(at + 1)];
}

interface VerdictRow {
  id: string | number;
  evaluated_version: string | number;
  body: string | ClosureView;
  created_at: Date | string;
  seal: string | null;
  copied: string | number;
  newest: string | number | null;
}

/** What a verdict's seal is over: the hash of its ticket, version, publishing time and view, in canonical JSON. */
function verdictHash(ticketKey: string, evaluatedVersion: number, publishedAt: Date, view: ClosureView): string {
  return sha256Hex(canonicalJson({ ticketKey, evaluatedVersion, publishedAt: publishedAt.toISOString(), view }));
}
