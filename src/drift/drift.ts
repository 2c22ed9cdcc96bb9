/**
 * Drift: where a target differs from the approved state the inventory holds. Pure: the scan reads the target and the
 * inventory, this module says what differs, and the store keeps each finding under a stable id.
 */
import { createHash } from 'node:crypto';
import type { ObservedAccount } from '../connectors/connector';
import type { HeldGrant } from '../persistence/entities/inventory-identity.entity';
import type { ClosureView } from '../change/closure';

export const FINDING_TYPES = ['orphan', 'extra-grant', 'missing-grant', 're-enabled'] as const;
export type FindingType = (typeof FINDING_TYPES)[number];

export const DRIFT_ACTIONS = ['report', 'remediate', 'certify'] as const;
export type DriftAction = (typeof DRIFT_ACTIONS)[number];

export interface Finding {
  id: string;
  system: string;
  name: string;
  host: string;
  type: FindingType;
  grant?: string;
  detail: string;
}

/** The same difference found again has the same id: system, identity, type and grant. */
export function findingId(system: string, name: string, host: string, type: FindingType, grant?: string): string {
  return createHash('sha256').update([system, name, host, type, grant ?? ''].join('\u0000')).digest('hex').slice(0, 32);
}

/** The inventory's view of an identity, as drift compares it. */
export interface ApprovedIdentity {
  system: string;
  name: string;
  host: string;
  status: string;
  grants: HeldGrant[];
  lastTicket: string | null;
}

/**
 * What differs between one identity's approved state and its read-back: a grant the target holds that no change
 * holds (and the connector manages), a grant a change holds that the target lacks, or an identity a leaver disabled
 * that can log in again. Grants outside what the connector manages are never findings.
 */
export function driftOf(row: ApprovedIdentity, observed: ObservedAccount, isManaged: (grant: string) => boolean): Finding[] {
  const make = (type: FindingType, detail: string, grant?: string): Finding => ({
    id: findingId(row.system, row.name, row.host, type, grant), system: row.system, name: row.name, host: row.host, type, detail, ...(grant !== undefined ? { grant } : {}),
  });
  if (!observed.exists) return [];
  if (row.status === 'disabled') {
    return observed.locked === false ? [make('re-enabled', `disabled by ${row.lastTicket ?? 'a leaver'} under policy disable, and able to log in again`)] : [];
  }
  if (row.status !== 'managed') return [];
  const held = new Map(row.grants.filter((g) => g.tickets.length > 0).map((g) => [g.grant, g.tickets]));
  const out: Finding[] = [];
  for (const g of [...new Set(observed.grants)].sort()) {
    if (!held.has(g) && isManaged(g)) out.push(make('extra-grant', 'the target holds it; no change holds it', g));
  }
  for (const [g, tickets] of [...held.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    if (!observed.grants.includes(g)) out.push(make('missing-grant', `${tickets.join(', ')} hold${tickets.length === 1 ? 's' : ''} it; the target does not have it`, g));
  }
  return out;
}

/** An orphan the inventory lists: on the target, nothing accounts for it. */
export function orphanFinding(system: string, name: string, host: string): Finding {
  return { id: findingId(system, name, host, 'orphan'), system, name, host, type: 'orphan', detail: 'on the target; no change accounts for it' };
}

/**
 * Whether a change's hold on a grant of `name` on `system` still stands, read from the change's newest closure view:
 * undefined when it does (standing access, an expiry not yet due, a grant with no end), else why not. A grant the
 * inventory still lists for a change whose expiry is due, running or done, or whose change has ended, is not
 * restored: remediation must not give back access no change holds any more.
 */
export function endedHold(view: ClosureView | null, system: string, name: string, now: number): string | undefined {
  if (!view) return 'its change has published no state';
  const steps = view.steps.filter((s) => s.system === system && s.identity.name === name);
  if (steps.some((s) => s.cleanup?.status === 'standing')) return undefined;
  if (view.phase === 'closed' || view.phase === 'cancelled' || view.phase === 'rejected') return `its change is ${view.phase}`;
  if (steps.length === 0) return 'its change shows no step on this identity';
  const live = steps.some((s) => {
    const c = s.cleanup;
    if (!c || c.status === 'none') return true;
    return c.status === 'scheduled' && (!('expiresAt' in c) || c.expiresAt === undefined || Date.parse(c.expiresAt) > now);
  });
  return live ? undefined : 'its grant has expired or is being taken back';
}

/** When the longest of the live holds ends: undefined when one of them has no end time. */
export function holdEnds(view: ClosureView, system: string, name: string): number | undefined {
  const ends = view.steps
    .filter((s) => s.system === system && s.identity.name === name)
    .map((s) => (s.cleanup?.status === 'scheduled' && 'expiresAt' in s.cleanup && s.cleanup.expiresAt ? Date.parse(s.cleanup.expiresAt) : Number.POSITIVE_INFINITY));
  const latest = Math.max(...ends);
  return Number.isFinite(latest) ? latest : undefined;
}
