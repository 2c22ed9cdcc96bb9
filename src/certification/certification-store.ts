import { type DataSource, In, IsNull } from 'typeorm';
import type { Actor } from '../auth/principal';
import type { AlongsideEvidence } from '../evidence/evidence-store';
import { CertificationItemRow } from '../persistence/entities/certification-item.entity';
import { type CertificationItem, type CertificationStatus, type CertificationTrigger, type GrantDecision, type OnTimeout, reviewerText } from './certification';

export interface CertificationFilter {
  status?: CertificationStatus;
  system?: string;
  /** `role:…`, `group:…` or `user:…`, as items list their reviewer. */
  reviewer?: string;
  /**
   * true: past the due date with no decision (open and late, or escalated: kept by the policy until its reviewer
   * decides), the queue someone has to follow up; false: open and not yet due.
   */
  overdue?: boolean;
  afterId?: string;
  limit: number;
}

export const toCertificationItem = (r: CertificationItemRow): CertificationItem => ({
  id: r.id, system: r.system, name: r.name, host: r.host, type: r.identityType, owner: r.owner, workload: r.workload, grants: r.grants,
  trigger: r.triggerType as CertificationTrigger, reference: r.reference, detail: r.detail, reviewer: r.reviewer, dueAt: r.dueAt.toISOString(),
  onTimeout: r.onTimeout as OnTimeout, status: r.status as CertificationStatus, decisions: r.decisions, decidedBy: r.decidedBy,
  decidedAt: r.decidedAt ? r.decidedAt.toISOString() : null, justification: r.justification, change: r.changeKey, revocationError: r.revocationError, openedAt: r.openedAt.toISOString(),
});

/** A second decision on an item: the first one stands. */
export class AlreadyDecided extends Error {
  constructor(id: string) {
    super(`certification ${id} is already decided`);
    this.name = 'AlreadyDecided';
  }
}

/** Certification items (table certification_items), each written in the transaction of its evidence row. */
export class CertificationStore {
  constructor(private readonly ds: DataSource) {}

  /** The item's row, for the `alongside` of its opening evidence row; an item already there is left as it is. */
  openProjection(item: CertificationItem): AlongsideEvidence {
    return async (tx) => {
      const repo = tx.getRepository(CertificationItemRow);
      if (await repo.findOne({ where: { id: item.id } })) return;
      await repo.insert({
        id: item.id, system: item.system, name: item.name, host: item.host, identityType: item.type, owner: item.owner, workload: item.workload,
        grants: item.grants, triggerType: item.trigger, reference: item.reference.slice(0, 300), detail: item.detail.slice(0, 500), reviewer: item.reviewer,
        reviewerKey: reviewerText(item.reviewer).slice(0, 260), dueAt: new Date(item.dueAt), onTimeout: item.onTimeout, status: 'open',
        decisions: null, decidedBy: null, decidedAt: null, justification: null, changeKey: null, revocationError: null, openedAt: new Date(item.openedAt),
      });
    };
  }

  /**
   * Records the decision (a person's, or the policy's at the due date) on an undecided item. An item decided already
   * keeps its decision: this throws AlreadyDecided, and the evidence row written with it is rolled back.
   */
  decisionProjection(id: string, d: { status: CertificationStatus; decisions: GrantDecision[]; decidedBy: Actor | null; decidedAt: string; justification: string }): AlongsideEvidence {
    return async (tx) => {
      const { affected } = await tx.getRepository(CertificationItemRow).update(
        { id, status: In(['open', 'escalated']), decidedAt: IsNull() },
        { status: d.status, decisions: d.decisions, decidedBy: d.decidedBy, decidedAt: new Date(d.decidedAt), justification: d.justification.slice(0, 2000) },
      );
      if (affected === 0) throw new AlreadyDecided(id);
    };
  }

  /** The policy kept an open item at its due date: escalated, still waiting for its reviewer's decision. */
  escalationProjection(id: string): AlongsideEvidence {
    return async (tx) => {
      await tx.getRepository(CertificationItemRow).update({ id, status: 'open' }, { status: 'escalated' });
    };
  }

  /** Names the revocation change opened for an item. */
  changeProjection(id: string, changeKey: string): AlongsideEvidence {
    return async (tx) => {
      await tx.getRepository(CertificationItemRow).update({ id, changeKey: IsNull() }, { changeKey });
    };
  }

  /** The ticket system refused the item's revocation change: the item says so, and why, instead of sitting in revoking. */
  revocationFailedProjection(id: string, reason: string): AlongsideEvidence {
    return async (tx) => {
      await tx.getRepository(CertificationItemRow).update({ id, status: 'revoking', changeKey: IsNull() }, { status: 'revocation-failed', revocationError: reason.slice(0, 500) });
    };
  }

  /** Whether a ticket (`source:key`) is the revocation change of an item. */
  async changeOpenedByGateway(ticketKey: string): Promise<boolean> {
    return (await this.ds.getRepository(CertificationItemRow).count({ where: { changeKey: ticketKey } })) > 0;
  }

  async get(id: string): Promise<CertificationItem | null> {
    const row = await this.ds.getRepository(CertificationItemRow).findOne({ where: { id } });
    return row ? toCertificationItem(row) : null;
  }

  async list(filter: CertificationFilter, now = new Date()): Promise<{ items: CertificationItem[]; nextCursor: string | null }> {
    const q = this.ds.getRepository(CertificationItemRow).createQueryBuilder('c').orderBy('c.id', 'ASC').take(filter.limit + 1);
    if (filter.status !== undefined) q.andWhere('c.status = :status', { status: filter.status });
    if (filter.system !== undefined) q.andWhere('c.system = :system', { system: filter.system });
    if (filter.reviewer !== undefined) q.andWhere('c.reviewer_key = :reviewer', { reviewer: filter.reviewer });
    if (filter.overdue === true) q.andWhere("((c.status = 'open' AND c.due_at < :now) OR c.status = 'escalated')", { now });
    if (filter.overdue === false) q.andWhere("c.status = 'open' AND c.due_at >= :now", { now });
    if (filter.afterId !== undefined) q.andWhere('c.id > :after', { after: filter.afterId });
    const rows = await q.getMany();
    const page = rows.slice(0, filter.limit);
    return { items: page.map(toCertificationItem), nextCursor: rows.length > filter.limit ? (page[page.length - 1]?.id ?? null) : null };
  }
}
