import type { EvidenceView } from '../evidence/evidence-store';
import { type StepEnd, rate, ticketOf } from './step-ends';
import type { DriftCounts, TargetHealth } from './shapes';

/** Leak reports nobody's credential matched have no system: they are listed under this name. */
export const UNMATCHED = '*';

/**
 * Per target system: how its steps ended (verified, failed, retried), what discovery finds drifted on it now, and
 * the leaked-secret reports that named one of its credentials. A system with nothing in the window is left out.
 */
export function targetHealth(ends: readonly StepEnd[], leakRows: readonly EvidenceView[], drift: ReadonlyMap<string, DriftCounts>): TargetHealth[] {
  const systems = new Map<string, TargetHealth>();
  const of = (system: string): TargetHealth => {
    let t = systems.get(system);
    if (!t) {
      t = { system, steps: 0, verified: 0, failed: 0, failureRate: null, retries: 0, reReads: 0, drift: { open: 0, byType: {} }, leaks: { reports: 0, byOutcome: {} }, recentFailures: [] };
      systems.set(system, t);
    }
    return t;
  };
  for (const end of ends) {
    const t = of(end.system);
    t.steps++;
    if (end.verified) t.verified++;
    else {
      t.failed++;
      t.recentFailures.push({ ...ticketOf(end.ticketKey), stepId: end.stepId, kind: end.kind, at: end.recordedAt, detail: end.detail ?? 'failed' });
    }
    t.retries += end.retries;
    t.reReads += end.reReads;
  }
  for (const row of leakRows) {
    const t = of(row.system || UNMATCHED);
    t.leaks.reports++;
    t.leaks.byOutcome[row.outcome] = (t.leaks.byOutcome[row.outcome] ?? 0) + 1;
  }
  for (const [system, byType] of drift) {
    const t = of(system);
    t.drift = { open: Object.values(byType).reduce((a, b) => a + b, 0), byType: { ...byType } };
  }
  for (const t of systems.values()) {
    t.failureRate = rate(t.failed, t.steps);
    t.recentFailures = t.recentFailures.sort((a, b) => b.at.localeCompare(a.at)).slice(0, 5);
  }
  return [...systems.values()].sort((a, b) => b.failed - a.failed || b.drift.open + b.leaks.reports - (a.drift.open + a.leaks.reports) || a.system.localeCompare(b.system));
}
