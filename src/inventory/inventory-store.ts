/**
 * The identity inventory: one row per identity the gateway knows (table identity_inventory). It is a projection of
 * the evidence, so every change to it rides in the transaction of the evidence row that justifies it — a step's
 * verified read-back, a discovery scan's row, an operator's ownership decision — through EvidenceStore.append's
 * `alongside`. Nothing here writes outside such a transaction.
 */
import { createHash } from 'node:crypto';
import mysql from 'mysql2/promise';
import type { DataSource, EntityManager } from 'typeorm';
import type { MysqlConnectionOptions } from 'typeorm/driver/mysql/MysqlConnectionOptions';
import type { QueryDeepPartialEntity } from 'typeorm/query-builder/QueryPartialEntity';
import type { DiscoveredIdentity, DesiredAccount } from '../connectors/connector';
import type { IdentityRef } from '../kinds/spec';
import type { OwnershipRule } from '../connectors/connector-config';
import type { AlongsideEvidence } from '../evidence/evidence-store';
import { assertNoSecrets, EvidenceRefusal } from '../evidence/redaction';
import { type AttributionSource, type HeldGrant, InventoryIdentity } from '../persistence/entities/inventory-identity.entity';
import { ruleAttribution } from './ownership';

export const INVENTORY_STATUSES = ['managed', 'protected', 'orphan', 'disabled', 'revoked'] as const;
export type InventoryRowStatus = (typeof INVENTORY_STATUSES)[number];

export const INVENTORY_TYPES = ['person', 'service_account', 'api_key', 'secret', 'certificate', 'workload_binding', 'agent'] as const;
export type InventoryType = (typeof INVENTORY_TYPES)[number];

/** Longest name and host the table keys on; a longer discovered name is counted, not listed. */
const NAME_MAX = 256;
const HOST_MAX = 255;

/**
 * An inventory row as the identity a step acts on: a person stays a person, every other inventory type (service
 * account, secret, certificate, workload binding, …) is a service account to the connector; '' is no host.
 */
export function identityOfRow(row: { type: string; name: string; host: string }): IdentityRef {
  return { type: row.type === 'person' ? 'person' : 'service_account', name: row.name, ...(row.host ? { host: row.host } : {}) };
}

/** One verified step, as the inventory needs it: what the evidence row proves about the identity. */
export interface StepChange {
  ticketKey: string;
  system: string;
  identity: { type: string; name: string };
  /** The identity's host, '' on targets without one (the grammar's default applied). */
  host: string;
  /** The evidence row's outcome (granted, revoked, expired, rotated, …), for people. */
  outcome: string;
  /**
   * What the step did, which decides the projection whatever a kind calls its outcome: grant (adds grants held by the
   * ticket), take-back (removes the ticket's hold on those grants), revoke (a leaver), rotate, move (a mover: the
   * ticket holds the grants it wants; what it took away goes with the read-back).
   */
  operation: 'grant' | 'take-back' | 'revoke' | 'rotate' | 'move';
  /** What the policy said the read-back must find. */
  desired: DesiredAccount | Record<string, unknown>;
  /** What it found: the evidence row's observed state. */
  observed: Record<string, unknown>;
  verifiedAt: string;
  /** The grants the step granted (joiner) or took back (expiry). */
  grants?: string[];
  /** The step created the identity. */
  created?: boolean;
  owner?: string;
  workload?: string;
  detail?: string;
  /** The grants are standing access owned by `owner` (a grant or move planned with neither a ttl nor an until). */
  standing?: boolean;
}

/** The view the API returns: no internal columns beyond what a reviewer needs. */
export interface InventoryItem {
  id: string;
  system: string;
  name: string;
  host: string;
  type: string;
  owner: string | null;
  ownerSource: AttributionSource | null;
  workload: string | null;
  workloadSource: AttributionSource | null;
  createdByTicket: string | null;
  grants: HeldGrant[];
  status: string;
  lastVerified: { state: Record<string, unknown> | null; at: string | null };
  lastEvent: string;
  lastTicket: string | null;
  changedAt: string;
  discoveredAt: string | null;
  firstSeenAt: string;
}

export interface InventoryFilter {
  system?: string;
  /** The identity's name as the target spells it (every host it has there). */
  name?: string;
  owner?: string;
  workload?: string;
  status?: InventoryRowStatus;
  /** Rows with an id above this one (the previous page's nextCursor). */
  afterId?: string;
  limit: number;
}

/** What one discovery of one system does to the table. */
export interface ReconcileInput {
  system: string;
  found: DiscoveredIdentity[];
  /** Taken before discovery listed the target: rows a step changed after it are left alone. */
  listedAt: Date;
  /** The scan's evidence chain, `inventory:<scanId>`. */
  scanKey: string;
  rules: readonly OwnershipRule[];
  /** The inventory type of a discovered identity (the connector grammar's inventoryType, else what discovery says). */
  typeOf: (identity: DiscoveredIdentity) => string;
  /** How the evidence accounts for an identity the table has not seen yet (steps recorded before the table existed). */
  fromEvidence: (identity: DiscoveredIdentity) => { status: 'managed' | 'revoked' | 'orphan' | 'protected'; ticketKey?: string };
}

export interface ReconcileSummary {
  /** Identities the table did not know, now listed (as orphans unless the evidence or the target accounts for them). */
  added: number;
  /** Known identities discovery no longer finds: now `revoked`. */
  missing: Array<{ name: string; host: string }>;
  /** Revoked identities found on the target again: now orphans. */
  reappeared: Array<{ name: string; host: string }>;
  /** Discovered identities not listed: a name too long for the table, or one the secret check refused. */
  skipped: number;
}

const keyOf = (name: string, host: string) => `${name}\u0000${host}`;

/** How long a step waits for another step on the same identity before its attempt fails (and Temporal retries it). */
const IDENTITY_LOCK_WAIT_SECONDS = 60;

/** Another step held the identity's lock for longer than a step waits: transient, the activity's retry tries again. */
export class IdentityBusy extends Error {}

export class InventoryStore {
  constructor(private readonly ds: DataSource) {}

  /**
   * Runs one step on one identity — decide from the inventory, act on the target, read back, record the evidence and
   * its projection — while no other step on the same identity runs, in any worker.
   *
   * A MariaDB named lock (GET_LOCK), not `SELECT … FOR UPDATE` on the inventory row: the target is changed between
   * the decision and the record, outside any database transaction, and the record commits in a transaction of its
   * own (EvidenceStore.append). A row lock would have to keep one transaction open across a remote call, would
   * block the record's own `FOR UPDATE` of that row from the other connection (the step would wait on itself), and
   * could lock nothing for an identity the table does not list yet. A named lock belongs to a connection, not to a
   * transaction: it spans decide → act → record whatever transactions run meanwhile, covers identities not listed
   * yet, and is released by the server if the worker dies holding it. The lock's connection is its own, not one
   * from the pool, so steps waiting for a lock never starve the steps holding one of the connection their record
   * needs. Names are keyed by database too, so separate installations on one server do not wait for each other.
   */
  async withIdentityLock<T>(target: { system: string; name: string; host: string }, fn: () => Promise<T>): Promise<T> {
    const options = this.ds.options as MysqlConnectionOptions;
    const conn = await mysql.createConnection(options.url ? { uri: options.url } : { host: options.host, port: options.port, user: options.username, password: options.password, database: options.database });
    try {
      const [db] = await conn.query<mysql.RowDataPacket[]>('SELECT DATABASE() AS db');
      // GET_LOCK names are at most 64 characters: a digest of database, system, name and host.
      const digest = createHash('sha256').update([db[0]?.db ?? '', target.system, target.name, target.host].join('\u0000')).digest('hex');
      const lock = `cg-identity:${digest.slice(0, 48)}`;
      const [got] = await conn.query<mysql.RowDataPacket[]>('SELECT GET_LOCK(?, ?) AS got', [lock, IDENTITY_LOCK_WAIT_SECONDS]);
      if (Number(got[0]?.got) !== 1) {
        throw new IdentityBusy(`${target.system}: another step on '${target.name}' has run for over ${IDENTITY_LOCK_WAIT_SECONDS}s; this one waits its turn`);
      }
      try {
        return await fn();
      } finally {
        await conn.query('SELECT RELEASE_LOCK(?)', [lock]).catch(() => undefined);
      }
    } finally {
      await conn.end().catch(() => undefined);
    }
  }

  /** The projection of one verified step, for EvidenceStore.append's `alongside`. */
  stepProjection(change: StepChange): AlongsideEvidence {
    return async (tx) => {
      const repo = tx.getRepository(InventoryIdentity);
      const now = new Date();
      const existing = await repo
        .createQueryBuilder('i')
        .setLock('pessimistic_write')
        .where('i.system = :system AND i.name = :name AND i.host = :host', { system: change.system, name: change.identity.name, host: change.host })
        .getOne();
      const row = applyStep(existing ?? newRow(change.system, change.identity.name, change.host, change.identity.type, now), change, now);
      checkRow(row);
      // A concurrent first insert of the same identity is a duplicate key: append retries the whole transaction.
      if (existing) await repo.update({ id: row.id }, columnsOf(row));
      else await repo.insert(row as QueryDeepPartialEntity<InventoryIdentity>);
    };
  }

  /** What a reconcile would do, read without locks: what the scan's evidence row reports. */
  async previewReconcile(input: ReconcileInput): Promise<ReconcileSummary> {
    const rows = await this.ds.getRepository(InventoryIdentity).find({ where: { system: input.system } });
    return planReconcile(rows, input, new Date()).summary;
  }

  /** The same reconcile, for the scan evidence row's `alongside`: the rows are locked and read again inside it. */
  reconcileProjection(input: ReconcileInput): AlongsideEvidence {
    return async (tx) => {
      const repo = tx.getRepository(InventoryIdentity);
      const rows = await repo.createQueryBuilder('i').setLock('pessimistic_write').where('i.system = :system', { system: input.system }).getMany();
      const plan = planReconcile(rows, input, new Date());
      for (const row of plan.inserts) await repo.insert(row as QueryDeepPartialEntity<InventoryIdentity>);
      for (const row of plan.updates) await repo.update({ id: row.id }, columnsOf(row));
      if (plan.seen.length > 0) {
        for (let i = 0; i < plan.seen.length; i += 500) {
          await tx
            .createQueryBuilder()
            .update(InventoryIdentity)
            .set({ discoveredAt: input.listedAt })
            .whereInIds(plan.seen.slice(i, i + 500))
            .execute();
        }
      }
    };
  }

  async get(id: string, tx?: EntityManager): Promise<InventoryIdentity | null> {
    const repo = (tx ?? this.ds.manager).getRepository(InventoryIdentity);
    return tx ? repo.createQueryBuilder('i').setLock('pessimistic_write').where('i.id = :id', { id }).getOne() : repo.findOne({ where: { id } });
  }

  async find(system: string, name: string, host = ''): Promise<InventoryItem | null> {
    const row = await this.ds.getRepository(InventoryIdentity).findOne({ where: { system, name, host } });
    return row ? toItem(row) : null;
  }

  /**
   * The identities of a system whose approved state drift is checked against (managed and disabled), as they stood
   * when discovery listed the target: rows a step changed since are left to that step.
   */
  async approvedRows(system: string, listedAt: Date, limit = 2_000): Promise<InventoryIdentity[]> {
    return this.ds
      .getRepository(InventoryIdentity)
      .createQueryBuilder('i')
      .where('i.system = :system AND i.status IN (:...statuses) AND i.changed_at <= :listedAt', { system, statuses: ['managed', 'disabled'], listedAt })
      .orderBy('i.id', 'ASC')
      .take(limit)
      .getMany();
  }

  /** One page, oldest id first; `nextCursor` is set while more rows match. */
  async list(filter: InventoryFilter): Promise<{ items: InventoryItem[]; nextCursor: string | null }> {
    const q = this.ds.getRepository(InventoryIdentity).createQueryBuilder('i').orderBy('i.id', 'ASC').take(filter.limit + 1);
    if (filter.system !== undefined) q.andWhere('i.system = :system', { system: filter.system });
    if (filter.name !== undefined) q.andWhere('i.name = :name', { name: filter.name });
    if (filter.owner !== undefined) q.andWhere('i.owner = :owner', { owner: filter.owner });
    if (filter.workload !== undefined) q.andWhere('i.workload = :workload', { workload: filter.workload });
    if (filter.status !== undefined) q.andWhere('i.status = :status', { status: filter.status });
    if (filter.afterId !== undefined) q.andWhere('i.id > :after', { after: filter.afterId });
    const rows = await q.getMany();
    const page = rows.slice(0, filter.limit);
    return { items: page.map(toItem), nextCursor: rows.length > filter.limit ? (page[page.length - 1]?.id ?? null) : null };
  }

  /**
   * Every identity a selecting step acts on: linked to the workload, or held by the owner, that is not already
   * revoked; by system, name and host. Reads at most `limit` + 1 rows, so the caller can tell a plan that is too big.
   */
  async selected(by: { workload: string } | { owner: string }, limit: number): Promise<InventoryItem[]> {
    const q = this.ds
      .getRepository(InventoryIdentity)
      .createQueryBuilder('i')
      .where('i.status <> :revoked', { revoked: 'revoked' })
      .orderBy('i.system', 'ASC')
      .addOrderBy('i.name', 'ASC')
      .addOrderBy('i.host', 'ASC')
      .take(limit + 1);
    if ('workload' in by) q.andWhere('i.workload = :workload', { workload: by.workload });
    else q.andWhere('i.owner = :owner', { owner: by.owner });
    return (await q.getMany()).map(toItem);
  }

  /**
   * A leaver by owner hands a non-human identity that still serves a workload to another owner, for the evidence
   * row's `alongside`: nothing on the target changes. Checked under the row's lock: an identity whose owner changed
   * since the plan is refused (`onConflict`); one already handed over is left as it is.
   */
  reassignProjection(target: { system: string; name: string; host: string }, from: string, to: string, ticketKey: string, onConflict: (owner: string | null) => Error): AlongsideEvidence {
    return async (tx) => {
      const repo = tx.getRepository(InventoryIdentity);
      const row = await repo
        .createQueryBuilder('i')
        .setLock('pessimistic_write')
        .where('i.system = :system AND i.name = :name AND i.host = :host', target)
        .getOne();
      if (!row || (row.owner !== from && row.owner !== to)) throw onConflict(row?.owner ?? null);
      if (row.owner === to) return;
      const now = new Date();
      row.owner = to;
      row.ownerSource = 'action';
      row.lastEvent = `reassigned from ${from} to ${to}: its owner left, it still serves ${row.workload ?? 'a workload'}`.slice(0, 200);
      row.lastTicket = ticketKey;
      row.changedAt = now;
      row.updatedAt = now;
      checkRow(row);
      await repo.update({ id: row.id }, columnsOf(row));
    };
  }

  /** An operator's ownership decision on an orphan, for the decision's evidence row's `alongside`. */
  ownershipProjection(id: string, set: { owner?: string; workload?: string }, event: string, chain: string, onConflict: (status: string) => Error): AlongsideEvidence {
    return async (tx) => {
      const row = await this.get(id, tx);
      // Checked again under the lock: a step may have adopted it since the API looked.
      if (!row || row.status !== 'orphan') throw onConflict(row?.status ?? 'gone');
      const now = new Date();
      if (set.owner !== undefined) {
        row.owner = set.owner;
        row.ownerSource = 'operator';
      }
      if (set.workload !== undefined) {
        row.workload = set.workload;
        row.workloadSource = 'operator';
      }
      row.lastEvent = event.slice(0, 200);
      row.lastTicket = chain;
      row.changedAt = now;
      row.updatedAt = now;
      checkRow(row);
      await tx.getRepository(InventoryIdentity).update({ id: row.id }, columnsOf(row));
    };
  }
}

function newRow(system: string, name: string, host: string, type: string, now: Date): InventoryIdentity {
  const row = new InventoryIdentity();
  Object.assign(row, {
    system, name, host, type: (INVENTORY_TYPES as readonly string[]).includes(type) ? type : 'service_account',
    owner: null, ownerSource: null, workload: null, workloadSource: null, createdByTicket: null, grants: [], status: 'orphan',
    verifiedState: null, verifiedAt: null, lastEvent: '', lastTicket: null, changedAt: now, discoveredAt: null, firstSeenAt: now, updatedAt: now,
  });
  return row;
}

/** The columns an update writes: everything but the key. */
function columnsOf(row: InventoryIdentity): QueryDeepPartialEntity<InventoryIdentity> {
  const rest: Partial<InventoryIdentity> = { ...row };
  delete rest.id;
  return rest as QueryDeepPartialEntity<InventoryIdentity>;
}

/** Whatever lands in the table passes the evidence store's secret check first, and is refused the same way. */
function checkRow(row: InventoryIdentity): void {
  assertNoSecrets({ name: row.name, host: row.host, owner: row.owner, workload: row.workload, grants: row.grants, verifiedState: row.verifiedState, lastEvent: row.lastEvent });
}

/** A verified step applied to the row: the policy's outcome first, then the grants aligned with what the read-back found. */
export function applyStep(row: InventoryIdentity, c: StepChange, now: Date): InventoryIdentity {
  const holders = new Map(row.grants.map((g) => [g.grant, new Set(g.tickets)]));
  // Per grant: the tickets holding it as standing access, and the owner each named.
  const standing = new Map(row.grants.map((g) => [g.grant, new Map((g.standing ?? []).map((s) => [s.ticket, s.owner]))]));
  const desired = c.desired as DesiredAccount;
  const stripped = desired.exists === false || desired.locked === true || desired.noGrants === true;
  const leaves: InventoryRowStatus = desired.exists === false ? 'revoked' : 'disabled';
  if (c.operation === 'grant' || c.operation === 'move') {
    for (const g of c.grants ?? []) {
      holders.set(g, (holders.get(g) ?? new Set()).add(c.ticketKey));
      const owned = standing.get(g) ?? new Map<string, string>();
      if (c.standing && c.owner !== undefined) owned.set(c.ticketKey, c.owner);
      else owned.delete(c.ticketKey);
      standing.set(g, owned);
    }
    row.status = 'managed';
    if (c.created) row.createdByTicket = c.ticketKey;
  } else if (c.operation === 'rotate') {
    if (row.status !== 'disabled' && row.status !== 'protected') row.status = 'managed';
  } else if (c.operation === 'revoke' || stripped) {
    // A leaver, or an expiry that took the identity the joiner created: gone (delete) or kept, locked and stripped (disable).
    holders.clear();
    row.status = leaves;
  } else {
    for (const g of c.grants ?? []) {
      const held = holders.get(g);
      held?.delete(c.ticketKey);
      if (held && held.size === 0) holders.delete(g);
      standing.get(g)?.delete(c.ticketKey);
    }
  }
  // The read-back is the truth about grants: what the target no longer has is not held, and what it has that no
  // ticket accounts for is listed with no ticket.
  if (typeof c.observed.exists === 'boolean' && Array.isArray(c.observed.grants)) {
    const observed = (c.observed.grants as unknown[]).map(String);
    const aligned = new Map<string, Set<string>>();
    if (c.observed.exists) for (const g of observed) aligned.set(g, holders.get(g) ?? new Set());
    holders.clear();
    for (const [g, t] of aligned) holders.set(g, t);
  }
  row.grants = [...holders.entries()]
    .map(([grant, tickets]): HeldGrant => {
      const owned = [...(standing.get(grant) ?? new Map<string, string>()).entries()]
        .filter(([ticket]) => tickets.has(ticket))
        .map(([ticket, owner]) => ({ ticket, owner }))
        .sort((a, b) => a.ticket.localeCompare(b.ticket));
      return { grant, tickets: [...tickets].sort(), ...(owned.length > 0 ? { standing: owned } : {}) };
    })
    .sort((a, b) => a.grant.localeCompare(b.grant));
  if (c.owner !== undefined) {
    row.owner = c.owner;
    row.ownerSource = 'action';
  }
  if (c.workload !== undefined) {
    row.workload = c.workload;
    row.workloadSource = 'action';
  }
  row.verifiedState = c.observed;
  row.verifiedAt = new Date(c.verifiedAt);
  row.lastEvent = `${c.outcome}${c.detail ? `: ${c.detail}` : ''}`.slice(0, 200);
  row.lastTicket = c.ticketKey;
  row.changedAt = now;
  row.updatedAt = now;
  return row;
}

/**
 * A discovery of one system set against the table. It never adopts: an identity the table does not know is listed
 * as an orphan, unless the target protects it or the evidence of earlier steps accounts for it. A known identity
 * discovery no longer finds is `revoked` (it is gone; `lastEvent` says discovery found it so), and a revoked one
 * found again is an orphan. Rows a step changed after the target was listed are left to that step.
 */
function planReconcile(rows: InventoryIdentity[], input: ReconcileInput, now: Date) {
  const byKey = new Map(rows.map((r) => [keyOf(r.name, r.host), r]));
  const inserts: InventoryIdentity[] = [];
  const updates: InventoryIdentity[] = [];
  const seen: string[] = [];
  const summary: ReconcileSummary = { added: 0, missing: [], reappeared: [], skipped: 0 };
  const found = new Set<string>();
  for (const d of input.found) {
    const host = d.host ?? '';
    if (d.name.length > NAME_MAX || host.length > HOST_MAX) {
      summary.skipped += 1;
      continue;
    }
    const key = keyOf(d.name, host);
    if (found.has(key)) continue;
    found.add(key);
    const existing = byKey.get(key);
    if (!existing) {
      const row = newRow(input.system, d.name, host, input.typeOf(d), input.listedAt);
      const known = d.protected ? { status: 'protected' as const } : input.fromEvidence(d);
      row.status = known.status === 'revoked' ? 'disabled' : known.status;
      row.lastTicket = known.ticketKey ?? input.scanKey;
      row.lastEvent = known.status === 'orphan' ? 'found by discovery; no change accounts for it' : `found by discovery; ${known.status} per ${known.ticketKey ?? 'policy'}`;
      row.discoveredAt = input.listedAt;
      applyRules(row, d, input.rules);
      if (refused(row)) {
        summary.skipped += 1;
        continue;
      }
      inserts.push(row);
      summary.added += 1;
      continue;
    }
    const before = JSON.stringify(columnsOf(existing));
    if (existing.changedAt.getTime() <= input.listedAt.getTime()) {
      if (d.protected && existing.status !== 'protected') {
        existing.status = 'protected';
        existing.lastEvent = 'protected by the target or policy (discovery)';
      } else if (existing.status === 'revoked') {
        existing.status = 'orphan';
        existing.lastEvent = 'found again by discovery after it was revoked; no change accounts for it';
        existing.lastTicket = input.scanKey;
        existing.changedAt = input.listedAt;
        summary.reappeared.push({ name: d.name, host });
      }
    }
    applyRules(existing, d, input.rules);
    if (JSON.stringify(columnsOf(existing)) !== before && !refused(existing)) {
      existing.discoveredAt = input.listedAt;
      existing.updatedAt = now;
      updates.push(existing);
    } else {
      seen.push(existing.id);
    }
  }
  for (const row of rows) {
    if (found.has(keyOf(row.name, row.host)) || row.status === 'revoked') continue;
    if (row.changedAt.getTime() > input.listedAt.getTime()) continue;
    row.status = 'revoked';
    row.grants = [];
    row.verifiedState = { exists: false, grants: [] };
    row.verifiedAt = input.listedAt;
    row.lastEvent = 'not found by discovery';
    row.lastTicket = input.scanKey;
    row.changedAt = input.listedAt;
    row.updatedAt = now;
    updates.push(row);
    summary.missing.push({ name: row.name, host: row.host });
  }
  return { inserts, updates, seen, summary };
}

/** Rules fill what neither an action nor an operator has set, and follow the rules as they change. */
function applyRules(row: InventoryIdentity, d: DiscoveredIdentity, rules: readonly OwnershipRule[]): void {
  const mapped = ruleAttribution(rules, d);
  if (row.ownerSource === null || row.ownerSource === 'rule') {
    row.owner = mapped.owner ?? null;
    row.ownerSource = mapped.owner !== undefined ? 'rule' : null;
  }
  if (row.workloadSource === null || row.workloadSource === 'rule') {
    row.workload = mapped.workload ?? null;
    row.workloadSource = mapped.workload !== undefined ? 'rule' : null;
  }
}

function refused(row: InventoryIdentity): boolean {
  try {
    checkRow(row);
    return false;
  } catch (err) {
    if (err instanceof EvidenceRefusal) return true;
    throw err;
  }
}

export function toItem(row: InventoryIdentity): InventoryItem {
  return {
    id: String(row.id),
    system: row.system,
    name: row.name,
    host: row.host,
    type: row.type,
    owner: row.owner,
    ownerSource: row.ownerSource,
    workload: row.workload,
    workloadSource: row.workloadSource,
    createdByTicket: row.createdByTicket,
    grants: row.grants,
    status: row.status,
    lastVerified: { state: row.verifiedState, at: row.verifiedAt ? row.verifiedAt.toISOString() : null },
    lastEvent: row.lastEvent,
    lastTicket: row.lastTicket,
    changedAt: row.changedAt.toISOString(),
    discoveredAt: row.discoveredAt ? row.discoveredAt.toISOString() : null,
    firstSeenAt: row.firstSeenAt.toISOString(),
  };
}
