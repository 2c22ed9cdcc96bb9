import { type DataSource, type EntityManager, In, IsNull } from 'typeorm';
import type { AlongsideEvidence } from '../evidence/evidence-store';
import { DriftFinding } from '../persistence/entities/drift-finding.entity';
import { InventoryIdentity } from '../persistence/entities/inventory-identity.entity';
import { type DriftAction, type Finding, type FindingType, orphanFinding } from './drift';

export interface DriftItem {
  id: string;
  system: string;
  name: string;
  host: string;
  type: string;
  grant: string | null;
  detail: string;
  status: string;
  action: string;
  change: string | null;
  firstSeenAt: string;
  lastSeenAt: string;
  resolvedAt: string | null;
  lastScan: string;
}

export interface DriftFilter {
  system?: string;
  type?: FindingType;
  status?: 'open' | 'resolved';
  afterId?: string;
  limit: number;
}

const toItem = (f: DriftFinding): DriftItem => ({
  id: f.id, system: f.system, name: f.name, host: f.host, type: f.findingType, grant: f.grant, detail: f.detail, status: f.status, action: f.action,
  change: f.changeKey, firstSeenAt: f.firstSeenAt.toISOString(), lastSeenAt: f.lastSeenAt.toISOString(), resolvedAt: f.resolvedAt ? f.resolvedAt.toISOString() : null, lastScan: f.lastScan,
});

/** Drift findings (table drift_findings): kept in the transaction of the evidence row of the scan that found them. */
export class DriftStore {
  constructor(private readonly ds: DataSource) {}

  /**
   * One system's scan, for its evidence row's `alongside` (after the inventory's reconcile in the same transaction):
   * the findings it made plus every orphan the inventory now lists are open (first seen kept, a resolved one opened
   * again); an open finding of the system it no longer makes is resolved.
   */
  scanProjection(system: string, found: Finding[], scanKey: string, at: Date, actionOf: (type: FindingType) => DriftAction): AlongsideEvidence {
    return async (tx) => {
      const orphans = await tx.getRepository(InventoryIdentity).find({ where: { system, status: 'orphan' } });
      const all = new Map<string, Finding>();
      for (const f of [...found, ...orphans.map((o) => orphanFinding(system, o.name, o.host))]) all.set(f.id, f);
      const repo = tx.getRepository(DriftFinding);
      const existing = await repo.createQueryBuilder('d').setLock('pessimistic_write').where('d.system = :system', { system }).getMany();
      const byId = new Map(existing.map((e) => [e.id, e]));
      // Every scan sees most findings again unchanged (each orphan of a large target, every scan): those are one
      // UPDATE per 500, not one each; new ones one INSERT per 500; only a changed or reopened finding is its own.
      const seenAgain: string[] = [];
      const fresh: Array<Partial<DriftFinding>> = [];
      for (const f of all.values()) {
        const row = byId.get(f.id);
        const detail = f.detail.slice(0, 500);
        if (!row) {
          fresh.push({
            id: f.id, system, name: f.name, host: f.host, findingType: f.type, grant: f.grant ?? null, detail, status: 'open',
            action: actionOf(f.type), changeKey: null, firstSeenAt: at, lastSeenAt: at, resolvedAt: null, lastScan: scanKey,
          });
        } else if (row.status === 'open' && row.detail === detail) {
          seenAgain.push(f.id);
        } else {
          await repo.update({ id: f.id }, { detail, status: 'open', lastSeenAt: at, resolvedAt: null, lastScan: scanKey, ...(row.status === 'resolved' ? { changeKey: null, action: actionOf(f.type) } : {}) });
        }
      }
      const gone = existing.filter((row) => row.status === 'open' && !all.has(row.id)).map((row) => row.id);
      for (let i = 0; i < fresh.length; i += 500) await repo.insert(fresh.slice(i, i + 500));
      for (let i = 0; i < seenAgain.length; i += 500) await repo.update({ id: In(seenAgain.slice(i, i + 500)) }, { lastSeenAt: at, lastScan: scanKey });
      for (let i = 0; i < gone.length; i += 500) await repo.update({ id: In(gone.slice(i, i + 500)) }, { status: 'resolved', resolvedAt: at, lastScan: scanKey });
    };
  }

  /** Open findings the policy says to remediate and no change has been opened for yet. */
  async toRemediate(): Promise<DriftItem[]> {
    const rows = await this.ds.getRepository(DriftFinding).find({ where: { status: 'open', action: 'remediate', changeKey: IsNull() }, order: { id: 'ASC' }, take: 200 });
    return rows.map(toItem);
  }

  /** The grants an identity is found lacking (open missing-grant findings, whatever the policy does with them). */
  async missingGrantsOf(system: string, name: string, host: string): Promise<Set<string>> {
    const rows = await this.ds.getRepository(DriftFinding).find({ select: { grant: true }, where: { system, name, host, findingType: 'missing-grant', status: 'open' } });
    return new Set(rows.map((r) => String(r.grant)));
  }

  /**
   * Orphans awaiting remediation, per system, counted whole (not only those in one batch of toRemediate): what the
   * orphan cap is measured against.
   */
  async orphansToRemediate(): Promise<Map<string, number>> {
    const rows = (await this.ds.query(
      "SELECT system, COUNT(*) AS n FROM drift_findings WHERE status = 'open' AND action = 'remediate' AND change_key IS NULL AND finding_type = 'orphan' GROUP BY system",
    )) as Array<{ system: string; n: number | string }>;
    return new Map(rows.map((r) => [r.system, Number(r.n)]));
  }

  /** Open findings the policy says to certify and no certification item has been opened for yet. */
  async toCertify(): Promise<DriftItem[]> {
    const rows = await this.ds.getRepository(DriftFinding).find({ where: { status: 'open', action: 'certify', changeKey: IsNull() }, order: { id: 'ASC' }, take: 200 });
    return rows.map(toItem);
  }

  /** Whether a ticket (`source:key`) is a change opened to remediate findings. */
  async isRemediationChange(ticketKey: string): Promise<boolean> {
    return (await this.ds.getRepository(DriftFinding).count({ where: { changeKey: ticketKey } })) > 0;
  }

  /** Names the change opened for findings, for the evidence row's `alongside` of that decision. */
  changeProjection(ids: string[], changeKey: string): AlongsideEvidence {
    return async (tx: EntityManager) => {
      for (const id of ids) await tx.getRepository(DriftFinding).update({ id, changeKey: IsNull() }, { changeKey });
    };
  }

  /** Findings whose remediation policy withheld (a protected identity, too many orphans): reported from now on. */
  withheldProjection(ids: string[]): AlongsideEvidence {
    return async (tx: EntityManager) => {
      if (ids.length > 0) await tx.getRepository(DriftFinding).update({ id: In(ids), changeKey: IsNull() }, { action: 'report' });
    };
  }

  async list(filter: DriftFilter): Promise<{ items: DriftItem[]; nextCursor: string | null }> {
    const q = this.ds.getRepository(DriftFinding).createQueryBuilder('d').orderBy('d.id', 'ASC').take(filter.limit + 1);
    if (filter.system !== undefined) q.andWhere('d.system = :system', { system: filter.system });
    if (filter.type !== undefined) q.andWhere('d.finding_type = :type', { type: filter.type });
    if (filter.status !== undefined) q.andWhere('d.status = :status', { status: filter.status });
    if (filter.afterId !== undefined) q.andWhere('d.id > :after', { after: filter.afterId });
    const rows = await q.getMany();
    const page = rows.slice(0, filter.limit);
    return { items: page.map(toItem), nextCursor: rows.length > filter.limit ? (page[page.length - 1]?.id ?? null) : null };
  }

  /** Open findings per system and finding type (of one system when named): the dashboard's drift per target. */
  async openBySystem(system?: string): Promise<Map<string, Record<string, number>>> {
    const q = this.ds
      .getRepository(DriftFinding)
      .createQueryBuilder('d')
      .select('d.system', 'system')
      .addSelect('d.finding_type', 'type')
      .addSelect('COUNT(*)', 'n')
      .where('d.status = :open', { open: 'open' })
      .groupBy('d.system')
      .addGroupBy('d.finding_type');
    if (system !== undefined) q.andWhere('d.system = :system', { system });
    const out = new Map<string, Record<string, number>>();
    for (const r of await q.getRawMany<{ system: string; type: string; n: string | number }>()) {
      out.set(r.system, { ...out.get(r.system), [r.type]: Number(r.n) });
    }
    return out;
  }

  async get(id: string): Promise<DriftItem | null> {
    const row = await this.ds.getRepository(DriftFinding).findOne({ where: { id } });
    return row ? toItem(row) : null;
  }
}
