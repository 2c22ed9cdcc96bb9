import type { DataSource } from 'typeorm';
import type { Actor } from '../auth/principal';
import type { AlongsideEvidence } from '../evidence/evidence-store';
import type { ExceptionDecision, ExceptionStatus } from '../change/exception';

/** One row of the ledger, as the queue lists it. */
export interface LedgerException {
  id: string;
  source: string;
  ticket: string;
  stepId: string;
  actionKind: string;
  system: string;
  identity: Record<string, unknown>;
  grants: string[];
  requester: string | null;
  implementer: string | null;
  grantedAt: string;
  escalateAt: string;
  deadline: string;
  onDeadline: ExceptionDecision;
  status: Exclude<ExceptionStatus, 'opening'>;
  escalatedAt: string | null;
  notified: string | null;
  decision: { decision: ExceptionDecision; by: Actor; byPolicy: boolean; at: string; justification: string } | null;
  outcome: string | null;
}

export type NewException = Pick<LedgerException, 'id' | 'source' | 'ticket' | 'stepId' | 'actionKind' | 'system' | 'identity' | 'grants' | 'requester' | 'implementer' | 'grantedAt' | 'escalateAt' | 'deadline' | 'onDeadline'>;

export interface ExceptionFilter {
  /** `undecided`: open or escalated; `decided`: accepted or revoked. */
  status?: 'open' | 'escalated' | 'accepted' | 'revoked' | 'undecided' | 'decided';
  source?: string;
  system?: string;
  /** Undecided and past the deadline (true), or not (false). */
  overdue?: boolean;
  afterId?: string;
  limit: number;
  now: Date;
}

const STATUS_SETS: Record<NonNullable<ExceptionFilter['status']>, string[]> = {
  open: ['open'], escalated: ['escalated'], accepted: ['accepted'], revoked: ['revoked'], undecided: ['open', 'escalated'], decided: ['accepted', 'revoked'],
};

type Row = Record<string, unknown>;
const iso = (v: unknown): string | null => (v instanceof Date ? v.toISOString() : v == null ? null : new Date(String(v)).toISOString());
const json = <T>(v: unknown): T => (typeof v === 'string' ? (JSON.parse(v) as T) : (v as T));

function toItem(r: Row): LedgerException {
  const by = r.decided_by == null ? null : json<Actor>(r.decided_by);
  return {
    id: String(r.id), source: String(r.source), ticket: String(r.ticket), stepId: String(r.step_id), actionKind: String(r.action_kind), system: String(r.system),
    identity: json(r.identity), grants: json(r.grants), requester: (r.requester as string | null) ?? null, implementer: (r.implementer as string | null) ?? null,
    grantedAt: iso(r.granted_at) as string, escalateAt: iso(r.escalate_at) as string, deadline: iso(r.deadline) as string, onDeadline: r.on_deadline as ExceptionDecision,
    status: r.status as LedgerException['status'], escalatedAt: iso(r.escalated_at), notified: (r.notified as string | null) ?? null,
    decision: by ? { decision: r.decision as ExceptionDecision, by, byPolicy: Number(r.decided_by_policy) === 1, at: iso(r.decided_at) as string, justification: String(r.justification ?? '') } : null,
    outcome: (r.outcome as string | null) ?? null,
  };
}

/**
 * The emergency-exception ledger (table emergency_exceptions): written in the transactions of the ticket's evidence
 * rows that open, escalate and decide each exception, so the queue never says more than the evidence proves.
 */
export class ExceptionStore {
  constructor(private readonly ds: DataSource) {}

  /** The row for a newly opened exception; a retry finds it there and changes nothing. */
  openProjection(e: NewException): AlongsideEvidence {
    return async (tx) => {
      await tx.query(
        `INSERT IGNORE INTO emergency_exceptions (id, source, ticket, step_id, action_kind, system, identity, grants, requester, implementer, granted_at, escalate_at, deadline, on_deadline, status)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open')`,
        [e.id, e.source, e.ticket, e.stepId, e.actionKind, e.system, JSON.stringify(e.identity), JSON.stringify(e.grants), e.requester, e.implementer, new Date(e.grantedAt), new Date(e.escalateAt), new Date(e.deadline), e.onDeadline],
      );
    };
  }

  /** Escalated, unless it was decided meanwhile. */
  escalateProjection(id: string, at: string): AlongsideEvidence {
    return async (tx) => {
      await tx.query("UPDATE emergency_exceptions SET status = 'escalated', escalated_at = ? WHERE id = ? AND status = 'open'", [new Date(at), id]);
    };
  }

  /** The decision, once: a second (a retried record) finds it taken and changes nothing. */
  decisionProjection(id: string, d: { decision: ExceptionDecision; by: Actor; byPolicy: boolean; at: string; justification: string }): AlongsideEvidence {
    return async (tx) => {
      await tx.query(
        `UPDATE emergency_exceptions SET status = ?, decision = ?, decided_by = ?, decided_by_policy = ?, decided_at = ?, justification = ?
         WHERE id = ? AND status IN ('open', 'escalated')`,
        [d.decision === 'accept' ? 'accepted' : 'revoked', d.decision, JSON.stringify(d.by), d.byPolicy ? 1 : 0, new Date(d.at), d.justification, id],
      );
    };
  }

  /** What the decision did on the target (its take-back is its own evidence row): for the queue. */
  async setOutcome(id: string, outcome: string): Promise<void> {
    await this.ds.query('UPDATE emergency_exceptions SET outcome = ? WHERE id = ?', [outcome.slice(0, 500), id]);
  }

  /** What became of the escalation's notification (delivered, not configured, or why it failed): not evidence. */
  async markNotified(id: string, notified: string): Promise<void> {
    await this.ds.query('UPDATE emergency_exceptions SET notified = ? WHERE id = ?', [notified.slice(0, 500), id]);
  }

  async find(id: string): Promise<LedgerException | null> {
    const rows = (await this.ds.query('SELECT * FROM emergency_exceptions WHERE id = ?', [id])) as Row[];
    return rows[0] ? toItem(rows[0]) : null;
  }

  /** Paged by (deadline, id): the soonest deadline first, so what is overdue leads an undecided queue. */
  async list(f: ExceptionFilter): Promise<{ items: LedgerException[]; nextCursor: string | null }> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (f.status) {
      where.push(`status IN (${STATUS_SETS[f.status].map(() => '?').join(', ')})`);
      params.push(...STATUS_SETS[f.status]);
    }
    if (f.source) {
      where.push('source = ?');
      params.push(f.source);
    }
    if (f.system) {
      where.push('system = ?');
      params.push(f.system);
    }
    if (f.overdue !== undefined) {
      where.push(f.overdue ? "(status IN ('open', 'escalated') AND deadline < ?)" : "NOT (status IN ('open', 'escalated') AND deadline < ?)");
      params.push(f.now);
    }
    if (f.afterId) {
      where.push('(deadline, id) > (SELECT deadline, id FROM emergency_exceptions WHERE id = ?)');
      params.push(f.afterId);
    }
    const sql = `SELECT * FROM emergency_exceptions ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY deadline, id LIMIT ?`;
    const rows = (await this.ds.query(sql, [...params, f.limit + 1])) as Row[];
    const page = rows.slice(0, f.limit).map(toItem);
    return { items: page, nextCursor: rows.length > f.limit ? (page[page.length - 1]?.id ?? null) : null };
  }
}
