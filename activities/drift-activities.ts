/**
 * Remediation of drift the policy says to remediate: a standard change in the configured ticket system carrying the
 * actions that bring the target back — a mover back to the grants changes hold (an extra grant, or a missing one a
 * change still holds), a leaver of an identity a leaver had disabled and someone enabled again, or of an orphan. The
 * change runs like any other; opening it is recorded as evidence in the finding's own chain, with the change named
 * on the finding in the same transaction. What remediation must not do (touch an identity the connector refuses,
 * remove more orphans than the cap, give back access no change holds any more) is withheld: recorded the same way,
 * and the finding is reported from then on.
 */
import type { ClosureView } from '../src/change/closure';
import type { ConnectorRegistry } from '../src/connectors/registry';
import { endedHold, holdEnds } from '../src/drift/drift';
import type { DriftItem, DriftStore } from '../src/drift/drift-store';
import type { EvidenceStore } from '../src/evidence/evidence-store';
import { identityOfRow, type InventoryItem, type InventoryStore } from '../src/inventory/inventory-store';
import type { IdentityRef } from '../src/kinds/spec';
import type { TicketWriteBack } from '../src/itsm/source';
import { DEFAULT_ORPHAN_CAP, type Policy } from '../src/policy/policy';
import { refusalsAreFinal } from './connector-activities';

export interface DriftActivityDeps {
  registry: ConnectorRegistry;
  evidence: EvidenceStore;
  inventory: InventoryStore;
  drift: DriftStore;
  policy?: Policy;
  writeBackFor: (source: string) => TicketWriteBack;
  actor: string;
  /** The newest closure view of a ticket (`servicenow:CHG…`): whether a change still holds a grant it is missing. */
  latestView?: (ticketKey: string) => Promise<ClosureView | null>;
}

const REMEDIABLE = new Set(['extra-grant', 'missing-grant', 're-enabled', 'orphan']);

/** What one identity's findings become: a change to open (for some of them), and findings withheld with the reason. */
interface RemediationPlan {
  open?: { findings: DriftItem[]; action: Record<string, unknown>; what: string; how: string; short: string; windowEnd?: string };
  withheld: Array<{ findings: DriftItem[]; reason: string }>;
}

export function createDriftActivities({ registry, evidence, inventory, drift, policy, writeBackFor, actor, latestView }: DriftActivityDeps) {
  const record = (first: DriftItem, findings: DriftItem[], identity: IdentityRef, outcome: string, action: Record<string, unknown> | null, extra: Record<string, unknown>, alongside: ReturnType<DriftStore['changeProjection']>) => {
    const now = new Date().toISOString();
    return refusalsAreFinal(() => evidence.append({
      ticketKey: `drift:${first.id}`,
      stepId: 'remediation',
      outcome,
      actionKind: 'drift-remediation',
      system: first.system,
      identity: { ...identity },
      desiredState: action ? { action } : {},
      observedState: { findings: findings.map((f) => ({ id: f.id, type: f.type, ...(f.grant ? { grant: f.grant } : {}) })), ...extra },
      // Opening a change proves nothing on the target: the change's own steps are read back and evidenced.
      verified: false,
      verification: {},
      actor,
      eventReceivedAt: first.lastSeenAt,
      startedAt: now,
      verifiedAt: null,
    }, alongside));
  };

  /** Missing grants whose holding changes no longer hold them, with why; and when the live holds end (ms), if they do. */
  async function holdsOf(system: string, row: InventoryItem, missing: DriftItem[]): Promise<{ ended: Map<string, string>; endsAt: number | undefined }> {
    const ended = new Map<string, string>();
    const ends: Array<number | undefined> = [];
    const now = Date.now();
    for (const f of missing) {
      const tickets = row.grants.find((g) => g.grant === f.grant)?.tickets ?? [];
      const why: string[] = [];
      for (const ticket of tickets) {
        const view = latestView ? await latestView(ticket) : null;
        const reason = endedHold(view, system, row.name, now);
        if (reason === undefined && view) ends.push(holdEnds(view, system, row.name));
        else why.push(`${ticket}: ${reason ?? 'unknown'}`);
      }
      if (why.length === tickets.length) ended.set(String(f.grant), why.join('; ') || 'no change holds it');
    }
    return { ended, endsAt: ends.length > 0 && ends.every((e) => e !== undefined) ? Math.max(...(ends as number[])) : undefined };
  }

  async function plan(findings: DriftItem[], row: InventoryItem, orphansOfSystem: number): Promise<RemediationPlan> {
    const system = findings[0]!.system;
    const identity = identityOfRow(row);
    if (findings.some((f) => f.type === 'orphan')) {
      const orphans = findings.filter((f) => f.type === 'orphan');
      // The inventory is the truth at remediation time: a row a change has since accounted for is not an orphan.
      if (row.status !== 'orphan') return { withheld: [] };
      const problems = registry.get(system).grammar.validateIdentity(identity);
      if (problems.length > 0) return { withheld: [{ findings: orphans, reason: `the connector does not manage it: ${problems.map((p) => p.message).join('; ')}` }] };
      const cap = policy?.driftOrphanCap(system) ?? DEFAULT_ORPHAN_CAP;
      if (orphansOfSystem > cap) {
        return { withheld: [{ findings: orphans, reason: `${orphansOfSystem} orphans of ${system} await remediation, more than the cap of ${cap} per scan: none is removed automatically` }] };
      }
      return {
        open: { findings: orphans, action: { kind: 'leaver', system, identity }, what: 'is on the target and no change accounts for it', how: `a leaver under ${system}'s revoke policy (${registry.revokeMode(system)})`, short: 'unknown to every change' },
        withheld: [],
      };
    }
    if (findings.some((f) => f.type === 're-enabled')) {
      return { open: { findings, action: { kind: 'leaver', system, identity }, what: 'enabled again after a leaver disabled it', how: "a leaver under the system's revoke policy", short: 'enabled again' }, withheld: [] };
    }
    const missing = findings.filter((f) => f.type === 'missing-grant');
    const { ended, endsAt } = await holdsOf(system, row, missing);
    const withheld = missing.filter((f) => ended.has(String(f.grant))).map((f) => ({ findings: [f], reason: `not restored: ${ended.get(String(f.grant))}` }));
    const carried = findings.filter((f) => !ended.has(String(f.grant)));
    if (carried.length === 0) return { withheld };
    const restores = carried.some((f) => f.type === 'missing-grant');
    // Back to what changes hold: a mover whose wanted set is the held grants removes the extras, restores a missing
    // grant a change still holds, and leaves grants the connector does not manage alone. What it restores lasts no
    // longer than the longest live hold (or until this change closes, when a hold has no end): the holding change's
    // own expiry then finds the grant held by no one else and takes it back.
    // A grant the target lacks is restored only as this remediation's own missing-grant finding, with its lifetime:
    // one only reported (or withheld earlier) stays out of the mover's wanted set, or the mover would add it back
    // with no lifetime while removing an extra.
    const restoring = new Set(carried.filter((f) => f.type === 'missing-grant').map((f) => String(f.grant)));
    const lacking = await drift.missingGrantsOf(system, row.name, row.host);
    const wanted = row.grants.filter((g) => g.tickets.length > 0 && !ended.has(g.grant) && (!lacking.has(g.grant) || restoring.has(g.grant))).map((g) => g.grant);
    const seconds = endsAt === undefined ? undefined : Math.floor((endsAt - Date.now()) / 1000);
    if (restores && seconds !== undefined && seconds < 1) return { withheld: [...withheld, ...carried.filter((f) => f.type === 'missing-grant').map((f) => ({ findings: [f], reason: 'not restored: its hold ends now' }))] };
    // A ttl counts from the verified grant, which waits for authorization: the change's window ends it at the hold's
    // end however late that is (a source without a window field leaves the ttl alone).
    const lifetime = !restores ? {} : seconds === undefined ? { until: 'ticket-closed' } : { ttl: `PT${seconds}S`, until: 'window-end' };
    const extras = carried.filter((f) => f.type === 'extra-grant').map((f) => f.grant);
    const lacks = carried.filter((f) => f.type === 'missing-grant').map((f) => f.grant);
    const what = [extras.length > 0 ? `holds ${extras.join(', ')}, which no change holds` : '', lacks.length > 0 ? `lacks ${lacks.join(', ')}, which a change still holds` : ''].filter(Boolean).join(', and ');
    return {
      open: {
        findings: carried, action: { kind: 'mover', system, identity, grants: wanted, ...lifetime }, what, how: 'a mover to the grants changes hold',
        short: extras.length > 0 ? 'holds access no change holds' : 'lacks access a change holds',
        ...('ttl' in lifetime && endsAt !== undefined ? { windowEnd: new Date(endsAt).toISOString() } : {}),
      },
      withheld,
    };
  }

  return {
    /** Opens one change per identity with open findings to remediate; returns the changes opened (or found again). */
    async remediateDrift(): Promise<Array<{ findings: string[]; change: string }>> {
      const open = (await drift.toRemediate()).filter((f) => REMEDIABLE.has(f.type));
      const byIdentity = new Map<string, DriftItem[]>();
      // Every orphan awaiting removal counts against the cap, not only those this batch holds.
      const orphans = await drift.orphansToRemediate();
      for (const f of open) {
        const key = `${f.system}\u0000${f.name}\u0000${f.host}`;
        byIdentity.set(key, [...(byIdentity.get(key) ?? []), f]);
      }
      const opened: Array<{ findings: string[]; change: string }> = [];
      for (const group of byIdentity.values()) {
        const first = group[0]!;
        if (!registry.names().includes(first.system)) continue;
        const row = await inventory.find(first.system, first.name, first.host);
        if (!row) continue;
        const identity = identityOfRow(row);
        const { open: change, withheld } = await plan(group, row, orphans.get(first.system) ?? 0);
        for (const w of withheld) {
          await record(w.findings[0]!, w.findings, identity, 'remediation-withheld', null, { reason: w.reason }, drift.withheldProjection(w.findings.map((f) => f.id)));
        }
        if (!change) continue;
        const findings = change.findings;
        const lead = findings[0]!;
        const source = policy?.driftSource(lead.system) ?? 'servicenow';
        const adapter = writeBackFor(source);
        if (!adapter.openChange) continue;
        const ticket = await adapter.openChange({
          correlationId: `changegate-drift-${lead.id}`,
          emergency: false,
          title: `Drift on ${lead.system}: ${lead.name} ${change.short}`,
          description: `Discovery (${lead.lastScan}, first seen ${lead.firstSeenAt}) found ${lead.name} on ${lead.system} ${change.what}. This standard change brings it back: ${change.how}.`,
          actionsText: JSON.stringify([change.action]),
          ...(change.windowEnd ? { windowEnd: change.windowEnd } : {}),
        });
        const changeKey = `${source}:${ticket.key}`;
        await record(lead, findings, identity, 'remediation-opened', change.action, { change: changeKey }, drift.changeProjection(findings.map((f) => f.id), changeKey));
        opened.push({ findings: findings.map((f) => f.id), change: changeKey });
      }
      return opened;
    },
  };
}

export type DriftActivities = ReturnType<typeof createDriftActivities>;
