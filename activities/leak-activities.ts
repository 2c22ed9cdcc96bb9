/**
 * What the worker does with a leaked-secret report (only its fingerprint ever gets here): find the credential the
 * gateway delivered with that fingerprint, open an emergency change that rotates it in the ITSM that holds the
 * original rotation, and record the report and what was done as evidence in the leak's own chain.
 */
import { ApplicationFailure } from '@temporalio/activity';
import type { IdentityRef } from '../src/actions/identity-action';
import { FailureType } from '../src/connectors/connector-errors';
import type { EvidenceStore } from '../src/evidence/evidence-store';
import type { OpenedChange, TicketWriteBack } from '../src/itsm/source';
import type { DeployRunReply, DeployRunRequest } from '../src/kinds/deploy/run';
import type { LeakReport } from '../src/leaks/leak-report';
import { leakKey } from '../src/leaks/leak-report';
import { refusalsAreFinal } from './connector-activities';

export interface LeakActivityDeps {
  evidence: EvidenceStore;
  writeBackFor: (source: string) => TicketWriteBack;
  actor: string;
  /** Ends a pipeline run whose credential leaked, as its own `finished` event would (the ticket's workflow decides). */
  endRun?: (ticketKey: string, request: DeployRunRequest) => Promise<DeployRunReply>;
}

/** The credential a fingerprint belongs to: the rotation (or the pipeline run) that delivered it. */
export interface LeakMatch {
  /** A rotated credential is rotated again; a pipeline run's credential ends with its run. */
  delivery: 'rotation' | 'deploy-run';
  /** The deploy run, for a run's credential. */
  runId?: string;
  /** The evidence key of the change that delivered it (`servicenow:CHG…`). */
  ticketKey: string;
  system: string;
  identity: IdentityRef;
  owner?: string;
  workload?: string;
  deliverTo: { system: string; path: string };
  /** The member of a structured credential the report carried alone (e.g. `secretAccessKey`); absent for the whole value. */
  part?: string;
}

export function createLeakActivities({ evidence, writeBackFor, actor, endRun }: LeakActivityDeps) {
  return {
    async matchLeak({ fingerprint }: { fingerprint: string }): Promise<LeakMatch | null> {
      const row = await evidence.deliveryByFingerprint(fingerprint);
      if (!row) return null;
      const id = row.identity as { type?: unknown; name?: unknown; host?: unknown; owner?: unknown; workload?: unknown };
      const desired = row.desiredState as { deliveredTo?: { system?: unknown; path?: unknown }; run?: unknown };
      const to = desired.deliveredTo;
      if ((id.type !== 'person' && id.type !== 'service_account') || typeof id.name !== 'string' || typeof to?.system !== 'string' || typeof to.path !== 'string') return null;
      const run = row.outcome === 'minted' && typeof desired.run === 'string' ? desired.run : undefined;
      const observed = row.observedState as { fingerprint?: unknown; partFingerprints?: Record<string, unknown> };
      const part = observed.fingerprint === fingerprint ? undefined : Object.entries(observed.partFingerprints ?? {}).find(([, fp]) => fp === fingerprint)?.[0];
      return {
        delivery: run === undefined ? 'rotation' : 'deploy-run',
        ...(run !== undefined ? { runId: run } : {}),
        ticketKey: row.ticketKey,
        system: row.system,
        identity: { type: id.type, name: id.name, ...(typeof id.host === 'string' ? { host: id.host } : {}) },
        ...(typeof id.owner === 'string' ? { owner: id.owner } : {}),
        ...(typeof id.workload === 'string' ? { workload: id.workload } : {}),
        deliverTo: { system: to.system, path: to.path },
        ...(part !== undefined ? { part } : {}),
      };
    },

    /** Opens the emergency rotation in the ITSM the original rotation came from; a retry finds the change it opened. */
    async openLeakChange({ report, match }: { report: LeakReport; match: LeakMatch }): Promise<OpenedChange & { source: string }> {
      const source = match.ticketKey.split(':')[0] ?? '';
      const adapter = writeBackFor(source);
      if (!adapter.openChange) {
        throw ApplicationFailure.create({ message: `ticket source '${source}' cannot open changes`, type: FailureType.TicketRefused, nonRetryable: true });
      }
      const action = {
        kind: 'rotate', system: match.system, identity: match.identity, deliverTo: match.deliverTo,
        ...(match.owner ? { owner: match.owner } : {}), ...(match.workload ? { workload: match.workload } : {}),
      };
      const opened = await adapter.openChange({
        correlationId: `changegate-${leakKey(report.fingerprint)}`,
        emergency: true,
        title: `Leaked credential of ${match.identity.name} on ${match.system}: rotate now`,
        description: [
          `A secret scanner (${report.reporter}) reported a ${report.secretType} at ${report.location} on ${report.reportedAt}.`,
          `It is ${match.part !== undefined ? `the ${match.part} part of ` : ''}the credential changegate delivered to ${match.deliverTo.system}:${match.deliverTo.path} in ${match.ticketKey} (fingerprint ${report.fingerprint}).`,
          'This emergency change rotates it: a new credential is set on the target, delivered and verified, and the leaked one stops working.',
        ].join('\n'),
        actionsText: JSON.stringify([action]),
      });
      return { ...opened, source };
    },

    /**
     * Ends the pipeline run whose credential leaked, as its `finished` event would (outcome `cancelled`): the run's
     * credential is revoked and verified by the ticket's workflow. A run already ended answers `already-revoked`.
     */
    async endLeakedRun({ report, match }: { report: LeakReport; match: LeakMatch }): Promise<{ result: DeployRunReply['result'] }> {
      if (!endRun || match.runId === undefined) {
        throw ApplicationFailure.create({ message: 'this worker cannot end pipeline runs', type: FailureType.TicketRefused, nonRetryable: true });
      }
      const reply = await endRun(match.ticketKey, { runId: match.runId, event: 'finished', outcome: 'cancelled', eventId: leakKey(report.fingerprint), receivedAt: report.reportedAt });
      return { result: reply.result };
    },

    /** The report and what was done about it, in the leak's own evidence chain (`leak:<fingerprint>`). */
    async recordLeak({ report, outcome, match, change, run }: {
      report: LeakReport;
      outcome: 'unmatched' | 'rotation-opened' | 'run-ended';
      match?: LeakMatch;
      change?: { source: string; key: string };
      run?: { runId: string; result: string };
    }) {
      const now = new Date().toISOString();
      // A refused row is refused every time: final, not retried.
      const row = await refusalsAreFinal(() => evidence.append({
        ticketKey: `leak:${report.fingerprint.replace(/^sha256:/, '')}`,
        stepId: 'report',
        outcome,
        actionKind: 'leak-report',
        system: match?.system ?? '*',
        identity: match ? { ...match.identity } : {},
        desiredState: {},
        observedState: {
          // Named so the evidence store's secret check reads it as what it is: the scanner's label, not a value.
          fingerprint: report.fingerprint, reportedAs: report.secretType, location: report.location, reporter: report.reporter,
          ...(match ? { deliveredBy: match.ticketKey, deliveredTo: match.deliverTo, ...(match.part !== undefined ? { matchedPart: match.part } : {}) } : { matched: false }),
          ...(change ? { change } : {}),
          ...(run ? { run } : {}),
        },
        // A report observes; it verifies nothing on a target (the rotation's own change does).
        verified: false,
        verification: {},
        actor,
        eventReceivedAt: report.reportedAt,
        startedAt: now,
        verifiedAt: null,
      }));
      return { evidenceHash: row.hash };
    },
  };
}

export type LeakActivities = ReturnType<typeof createLeakActivities>;
