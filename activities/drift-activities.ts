/**
 * Remediation of drift the policy says to remediate: a standard change in the configured ticket system carrying the
 * actions that bring the target back — a mover back to the grants changes hold (an extra grant), a leaver of an
 * identity a leaver had disabled and someone enabled again. The change runs like any other; opening it is recorded
 * as evidence in the finding's own chain, with the change named on the finding in the same transaction.
 */
import type { ConnectorRegistry } from '../src/connectors/registry';
import type { DriftItem, DriftStore } from '../src/drift/drift-store';
import type { EvidenceStore } from '../src/evidence/evidence-store';
import { identityOfRow, type InventoryStore } from '../src/inventory/inventory-store';
import type { TicketWriteBack } from '../src/itsm/source';
import type { Policy } from '../src/policy/policy';
import { refusalsAreFinal } from './connector-activities';

export interface DriftActivityDeps {
  registry: ConnectorRegistry;
  evidence: EvidenceStore;
  inventory: InventoryStore;
  drift: DriftStore;
  policy?: Policy;
  writeBackFor: (source: string) => TicketWriteBack;
  actor: string;
}

export function createDriftActivities({ registry, evidence, inventory, drift, policy, writeBackFor, actor }: DriftActivityDeps) {
  return {
    /** Opens one change per identity with open findings to remediate; returns the changes opened (or found again). */
    async remediateDrift(): Promise<Array<{ findings: string[]; change: string }>> {
      const open = (await drift.toRemediate()).filter((f) => f.type === 'extra-grant' || f.type === 're-enabled');
      const byIdentity = new Map<string, DriftItem[]>();
      for (const f of open) byIdentity.set(`${f.system}\u0000${f.name}\u0000${f.host}`, [...(byIdentity.get(`${f.system}\u0000${f.name}\u0000${f.host}`) ?? []), f]);
      const opened: Array<{ findings: string[]; change: string }> = [];
      for (const findings of byIdentity.values()) {
        const first = findings[0]!;
        if (!registry.names().includes(first.system)) continue;
        const row = await inventory.find(first.system, first.name, first.host);
        if (!row) continue;
        const identity = identityOfRow(row);
        const reEnabled = findings.some((f) => f.type === 're-enabled');
        // Back to what changes hold: a mover whose wanted set is exactly the held grants removes the extras and
        // leaves grants the connector does not manage alone.
        const action = reEnabled
          ? { kind: 'leaver', system: first.system, identity }
          : { kind: 'mover', system: first.system, identity, grants: row.grants.filter((g) => g.tickets.length > 0).map((g) => g.grant) };
        const source = policy?.driftSource(first.system) ?? 'servicenow';
        const adapter = writeBackFor(source);
        if (!adapter.openChange) continue;
        const what = reEnabled ? 'enabled again after a leaver disabled it' : `holds ${findings.map((f) => f.grant).join(', ')}, which no change holds`;
        const change = await adapter.openChange({
          correlationId: `changegate-drift-${first.id}`,
          emergency: false,
          title: `Drift on ${first.system}: ${first.name} ${reEnabled ? 'enabled again' : 'holds access no change holds'}`,
          description: `Discovery (${first.lastScan}, first seen ${first.firstSeenAt}) found ${first.name} on ${first.system} ${what}. This standard change brings it back: ${reEnabled ? 'a leaver under the system\'s revoke policy' : 'a mover to the grants changes hold'}.`,
          actionsText: JSON.stringify([action]),
        });
        const changeKey = `${source}:${change.key}`;
        const now = new Date().toISOString();
        await refusalsAreFinal(() => evidence.append({
          ticketKey: `drift:${first.id}`,
          stepId: 'remediation',
          outcome: 'remediation-opened',
          actionKind: 'drift-remediation',
          system: first.system,
          identity: { ...identity },
          desiredState: { action },
          observedState: { findings: findings.map((f) => ({ id: f.id, type: f.type, ...(f.grant ? { grant: f.grant } : {}) })), change: changeKey },
          // Opening a change proves nothing on the target: the change's own steps are read back and evidenced.
          verified: false,
          verification: {},
          actor,
          eventReceivedAt: first.lastSeenAt,
          startedAt: now,
          verifiedAt: null,
        }, drift.changeProjection(findings.map((f) => f.id), changeKey)));
        opened.push({ findings: findings.map((f) => f.id), change: changeKey });
      }
      return opened;
    },
  };
}

export type DriftActivities = ReturnType<typeof createDriftActivities>;
