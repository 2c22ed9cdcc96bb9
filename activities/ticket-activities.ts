import { ApplicationFailure } from '@temporalio/activity';
import { ServiceNowError, type ServiceNowClient } from '../src/itsm/servicenow-client';
import { FailureType } from '../src/connectors/connector-errors';

export interface TicketActivityDeps {
  servicenow: ServiceNowClient;
  gateField: string;
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

export function createTicketActivities({ servicenow, gateField }: TicketActivityDeps) {
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

    async setClosureGate({ sysId, value }: { sysId: string; value: 'verified' | '' }): Promise<void> {
      await itsmCall(() => servicenow.updateChange(sysId, { [gateField]: value }));
    },
  };
}

export type TicketActivities = ReturnType<typeof createTicketActivities>;
