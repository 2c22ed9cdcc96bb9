/**
 * Emergency exceptions: each step of one (opened, escalated, decided) is an evidence row in the ticket's chain, with
 * the ledger the security reviewers' queue reads written in the same transaction. The escalation's notification and
 * the queue's read-back of the targets are the only calls outside the database.
 */
import { createHash } from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Actor } from '../src/auth/principal';
import type { IdentityRef } from '../src/actions/identity-action';
import type { ConnectorRegistry } from '../src/connectors/registry';
import type { EvidenceStore } from '../src/evidence/evidence-store';
import { EvidenceRefusal } from '../src/evidence/redaction';
import type { ExceptionDecision } from '../src/change';
import type { ExceptionStore } from '../src/exceptions/exception-store';
import { type NotifySettings, sendNotification } from '../src/exceptions/notify';

export interface ExceptionActivityDeps {
  evidence: EvidenceStore;
  exceptions: ExceptionStore;
  /** Where escalations are announced; without it the ledger says none was configured. */
  notify?: NotifySettings;
  registry?: ConnectorRegistry;
  /** The worker's identity, as recorded in evidence. */
  actor: string;
}

export interface OpenExceptionInput {
  ticketKey: string;
  source: string;
  ticket: string;
  stepId: string;
  actionKind: string;
  system: string;
  identity: IdentityRef;
  grants: string[];
  requester?: string;
  implementer?: string;
  grantedAt: string;
  windowMs: number;
  escalateAfterMs: number;
  onDeadline: ExceptionDecision;
  eventReceivedAt: string;
}

export interface ExceptionDecisionInput {
  ticketKey: string;
  id: string;
  stepId: string;
  actionKind: string;
  system: string;
  identity: IdentityRef;
  grants: string[];
  decision: ExceptionDecision;
  justification: string;
  principal: Actor;
  byPolicy: boolean;
  requestedAt: string;
}

/** Identities the queue's read-back inspects at once. */
const READ_BACK_AT_ONCE = 8;

/** Attempts of an escalation notification before the ledger records it as failed (the exception stays escalated). */
const NOTIFY_ATTEMPTS = 5;

/** The exception of one step of one ticket: the same id on every retry. */
export function exceptionIdOf(ticketKey: string, stepId: string): string {
  return `EXC-${createHash('sha256').update(`${ticketKey}\u0000${stepId}`).digest('hex').slice(0, 16).toUpperCase()}`;
}

export function createExceptionActivities({ evidence, exceptions, notify, registry, actor }: ExceptionActivityDeps) {
  const base = (i: { ticketKey: string; actionKind: string; system: string; identity: IdentityRef }) => ({
    ticketKey: i.ticketKey, actionKind: i.actionKind, system: i.system, identity: { ...i.identity }, actor,
  });
  return {
    /** Records the exception (evidence and ledger, together) once the grant made before authorization is verified. */
    async openException(i: OpenExceptionInput): Promise<{ id: string; escalateAt: string; deadline: string; evidenceHash: string }> {
      const id = exceptionIdOf(i.ticketKey, i.stepId);
      const granted = Date.parse(i.grantedAt);
      const escalateAt = new Date(granted + i.escalateAfterMs).toISOString();
      const deadline = new Date(granted + i.windowMs).toISOString();
      const row = await evidence.append(
        {
          ...base(i), stepId: `exception:${id}`, outcome: 'exception-opened',
          desiredState: { review: 'a security reviewer accepts or revokes by the deadline', onDeadline: i.onDeadline },
          observedState: { grants: i.grants, grantedAt: i.grantedAt },
          verified: false,
          verification: { exception: id, step: i.stepId, requester: i.requester ?? null, implementer: i.implementer ?? null, escalateAt, deadline },
          eventReceivedAt: i.eventReceivedAt, startedAt: new Date().toISOString(), verifiedAt: null,
        },
        exceptions.openProjection({
          id, source: i.source, ticket: i.ticket, stepId: i.stepId, actionKind: i.actionKind, system: i.system, identity: { ...i.identity }, grants: i.grants,
          requester: i.requester ?? null, implementer: i.implementer ?? null, grantedAt: i.grantedAt, escalateAt, deadline, onDeadline: i.onDeadline,
        }),
      );
      return { id, escalateAt, deadline, evidenceHash: row.hash };
    },

    async escalateException(i: { ticketKey: string; id: string; stepId: string; actionKind: string; system: string; identity: IdentityRef; deadline: string; eventReceivedAt: string }): Promise<{ escalatedAt: string }> {
      const at = new Date().toISOString();
      const row = await evidence.append(
        {
          ...base(i), stepId: `exception:${i.id}`, outcome: 'exception-escalated',
          desiredState: {}, observedState: {}, verified: false, verification: { exception: i.id, deadline: i.deadline },
          eventReceivedAt: i.eventReceivedAt, startedAt: at, verifiedAt: null,
        },
        exceptions.escalateProjection(i.id, at),
      );
      return { escalatedAt: row.startedAt };
    },

    /**
     * Announces an escalation (or a deadline's default) to the configured receiver, signed; what became of it is on
     * the ledger. Retried by Temporal; after NOTIFY_ATTEMPTS the failure is recorded instead of thrown.
     */
    async notifyException(i: { id: string; event: 'exception.escalated' | 'exception.deadline'; payload: Record<string, unknown> }): Promise<{ notified: string }> {
      if (!notify) {
        const notified = 'no notification URL is configured (CHANGEGATE_NOTIFY_URL)';
        await exceptions.markNotified(i.id, notified);
        return { notified };
      }
      try {
        await sendNotification(notify, i.event, `${i.id}:${i.event}`, { exception: i.id, ...i.payload });
      } catch (err) {
        if (Context.current().info.attempt < NOTIFY_ATTEMPTS) throw err;
        const notified = `${i.event} not delivered after ${NOTIFY_ATTEMPTS} attempts: ${(err as Error).message}`;
        await exceptions.markNotified(i.id, notified);
        return { notified };
      }
      const notified = `${i.event} delivered ${new Date().toISOString()}`;
      await exceptions.markNotified(i.id, notified);
      return { notified };
    },

    /** A decision, a person's or the deadline's, as evidence naming who (or that the policy) took it, before it counts. */
    async recordExceptionDecision(i: ExceptionDecisionInput): Promise<{ evidenceHash: string; recordedAt: string }> {
      const now = new Date().toISOString();
      try {
        const row = await evidence.append(
          {
            ...base(i), stepId: `exception:${i.id}`, outcome: i.decision === 'accept' ? 'exception-accepted' : 'exception-revoked',
            desiredState: {}, observedState: {}, verified: false,
            verification: { exception: i.id, decision: i.decision, justification: i.justification, grants: i.grants, byPolicy: i.byPolicy },
            principal: i.principal,
            eventReceivedAt: i.requestedAt, startedAt: now, verifiedAt: null,
          },
          exceptions.decisionProjection(i.id, { decision: i.decision, by: i.principal, byPolicy: i.byPolicy, at: now, justification: i.justification }),
        );
        return { evidenceHash: row.hash, recordedAt: row.startedAt };
      } catch (err) {
        if (err instanceof EvidenceRefusal) {
          throw ApplicationFailure.create({ message: `justification: ${err.message}`, type: 'BadRequest', nonRetryable: true, cause: err });
        }
        throw err;
      }
    },

    /** What the decision did on the target, for the queue (the take-back itself is its own evidence row). */
    async recordExceptionOutcome(i: { id: string; outcome: string; status: 'accepted' | 'revoked' | 'revoke-failed' }): Promise<void> {
      await exceptions.setOutcome(i.id, i.outcome, i.status);
    },

    /** The identities' state on their targets now, as the queue shows it next to what was granted. */
    async readBackIdentities(items: Array<{ system: string; identity: IdentityRef }>): Promise<Array<{ exists: boolean; locked?: boolean; grants: string[] } | { error: string }>> {
      const read = async ({ system, identity }: { system: string; identity: IdentityRef }) => {
        if (!registry?.names().includes(system)) return { error: `no connector named '${system}' is configured on this worker` };
        try {
          const observed = await registry.get(system).inspect(identity);
          return { exists: observed.exists, ...(observed.locked !== undefined ? { locked: observed.locked } : {}), grants: [...observed.grants].sort() };
        } catch (err) {
          return { error: `could not read ${system}: ${(err as Error).message.slice(0, 200)}` };
        }
      };
      // A few at a time: a page of the queue must not open a connection per item on one target at once.
      const out: Array<Awaited<ReturnType<typeof read>>> = [];
      for (let i = 0; i < items.length; i += READ_BACK_AT_ONCE) out.push(...(await Promise.all(items.slice(i, i + READ_BACK_AT_ONCE).map(read))));
      return out;
    },
  };
}

export type ExceptionActivities = ReturnType<typeof createExceptionActivities>;
