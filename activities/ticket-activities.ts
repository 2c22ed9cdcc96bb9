import { ApplicationFailure } from '@temporalio/activity';
import { ServiceNowError, type ServiceNowClient } from '../src/itsm/servicenow-client';
import { FailureType } from '../src/connectors/connector-errors';
import { GATE_DIGEST_FIELD, GATE_FIELD } from '../src/itsm/servicenow-gate';
import type { ClosureGateValue } from '../workflows/change-types';

export interface TicketActivityDeps {
  servicenow: ServiceNowClient;
}

/** Maps the ITSM client's errors onto Temporal's retry model: throttling waits as told, refusals are final. */
async function itsmCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ServiceNowError) {
      if (err.kind === 'rate_limited') {
        throw ApplicationFailure.create({ message: err.message, type: 'RateLimited', nextRetryDelay: err.retryAfterMs ?? 1000, cause: err });
      }
      if (err.kind === 'refused' || err.kind === 'not_found') {
        throw ApplicationFailure.create({ message: err.message, type: FailureType.TicketRefused, nonRetryable: true, cause: err });
      }
    }
    throw err;
  }
}

export function createTicketActivities({ servicenow }: TicketActivityDeps) {
  return {
    /**
     * Appends a work note once: the marker makes a retried activity find its own earlier note instead of
     * writing a second one.
     */
    async postWorkNote({ sysId, marker, text }: { sysId: string; marker: string; text: string }): Promise<{ posted: boolean }> {
      const tag = `[changegate ${marker}]`;
      const existing = await itsmCall(() => servicenow.listWorkNotes(sysId));
      if (existing.some((n) => n.value.includes(tag))) return { posted: false };
      await itsmCall(() => servicenow.addWorkNote(sysId, `${tag} ${text}`));
      return { posted: true };
    },

    /**
     * Writes the gate and the digest of the identity-actions text it is about in one save, so the ticket never holds
     * one without the other. Without a digest (a call scheduled before gates carried one) only the value is written.
     */
    async setClosureGate({ sysId, value, digest }: { sysId: string; value: ClosureGateValue | ''; digest?: string }): Promise<void> {
      const fields: Record<string, string> = { [GATE_FIELD]: value };
      if (digest !== undefined) fields[GATE_DIGEST_FIELD] = digest;
      await itsmCall(() => servicenow.updateChange(sysId, fields));
    },
  };
}

export type TicketActivities = ReturnType<typeof createTicketActivities>;
