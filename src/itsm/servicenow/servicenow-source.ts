import { z } from 'zod';
import type { TicketRef } from '../../change/ticket';
import { type GateWrite, type NoteWrite, type OpenChange, type TicketSource, type TicketUpdate, type TicketWriteBack, type WriteBackBatch, WriteBackError, headerValue, parseJsonBody } from '../source';
import { parseReviewTask } from '../../exceptions/review-task';
import { CHANGE_NUMBER, parseChangeRecord } from './servicenow-change';
import { DEFAULT_STATE_PHASES, SERVICENOW_STATE, type ServiceNowStatePhases } from './servicenow-phase';
import { ServiceNowClient, ServiceNowError } from './servicenow-client';
import { GATE_DIGEST_FIELD, GATE_FIELD } from './servicenow-gate';
import { EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyWebhookSignature } from './webhook-signature';

const EVENT_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** ServiceNow's errors as every source's: throttling waits as told, refusals and missing records are final. */
async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ServiceNowError) {
      throw new WriteBackError(err.message, { kind: err.kind, retryAfterMs: err.retryAfterMs, cause: err });
    }
    throw err;
  }
}

/** The marker in a note's text: how a retry finds what an earlier attempt wrote. */
const tagOf = (marker: string) => `[changegate ${marker}]`;

function gateFields({ value, digest }: GateWrite): Record<string, string> {
  const fields: Record<string, string> = { [GATE_FIELD]: value };
  if (digest !== undefined) fields[GATE_DIGEST_FIELD] = digest;
  return fields;
}

/** ServiceNow's settings as a process is configured (SERVICENOW_STATE_PHASES, SERVICENOW_REOPEN_STATE). */
export interface ServiceNowSettings {
  statePhases?: ServiceNowStatePhases;
  /** The state a change closed without proven cleanup is moved back to; default Review (0). */
  reopenState?: string;
  /** change_task states (instance-specific numbers): a review task opens in `open` (default 1) and closes in `closed` (default 3). */
  taskStates?: { open: string; closed: string };
}


const GATE_READ_BACK = [GATE_FIELD, GATE_DIGEST_FIELD];

/**
 * A field-level write ACL makes the Table API drop the field and still answer 200: the saved record is the only
 * proof the gate landed. A mismatch is a refusal (retrying cannot grant the ACL), shown on closure-check.
 */
function expectGate(saved: Record<string, unknown>, gate: GateWrite): void {
  for (const [field, wanted] of Object.entries(gateFields(gate))) {
    const got = saved[field];
    if (got !== wanted) {
      throw new WriteBackError(
        `ServiceNow accepted the write but ${field} reads back as ${JSON.stringify(typeof got === 'string' ? got : null)} instead of ` +
          `${JSON.stringify(wanted)}: the integration user may not write it (field ACL, INSTALL.md step 2)`,
        { kind: 'refused' },
      );
    }
  }
}

export function servicenowWriteBack(client: ServiceNowClient, settings: ServiceNowSettings = {}): TicketWriteBack {
  const reopenState = settings.reopenState ?? SERVICENOW_STATE.review;
  const taskStates = settings.taskStates ?? { open: '1', closed: '3' };
  return {
    async postNote(ticket: TicketRef, marker: string, text: string) {
      const tag = tagOf(marker);
      const existing = await call(() => client.listWorkNotes(ticket.recordId));
      if (existing.some((n) => n.value.includes(tag))) return { posted: false };
      await call(() => client.addWorkNote(ticket.recordId, `${tag} ${text}`));
      return { posted: true };
    },

    // One save, so the ticket never holds a gate without the digest it is about.
    async setGate(ticket: TicketRef, gate: GateWrite) {
      const saved = await call(() => client.updateChange(ticket.recordId, gateFields(gate)));
      expectGate(saved, gate);
    },

    // One PATCH: the gate fields and one journal entry carrying every note (each with its marker) land together.
    async writeTogether(ticket: TicketRef, { gate, notes }: WriteBackBatch, { retry }) {
      let unwritten = notes;
      if (retry && notes.length > 0) {
        const existing = await call(() => client.listWorkNotes(ticket.recordId));
        unwritten = notes.filter((n) => !existing.some((e) => e.value.includes(tagOf(n.marker))));
        // The notes were in the same save as the gate: finding them means that save landed, gate and all.
        if (unwritten.length === 0) return;
      }
      const text = unwritten.length > 0 ? unwritten.map((n) => `${tagOf(n.marker)} ${n.text}`).join('\n\n') : undefined;
      const fields = gate ? gateFields(gate) : {};
      if (text === undefined && Object.keys(fields).length === 0) return;
      if (!gate) {
        await call(() => client.updateChangeWithWorkNote(ticket.recordId, fields, text));
        return;
      }
      const saved = await call(() => client.updateChangeReadBack(ticket.recordId, fields, text, GATE_READ_BACK));
      expectGate(saved, gate);
    },

    // One save: the state and the note saying why land together (the webhook then reports the reopened change).
    async reopen(ticket: TicketRef, { marker, text }: NoteWrite) {
      const tag = tagOf(marker);
      const existing = await call(() => client.listWorkNotes(ticket.recordId));
      if (existing.some((n) => n.value.includes(tag))) return { reopened: false };
      const saved = await call(() => client.updateChangeReadBack(ticket.recordId, { state: reopenState }, `${tag} ${text}`, ['state']));
      if (saved.state !== reopenState) {
        throw new WriteBackError(`ServiceNow accepted the reopen but state reads back as ${JSON.stringify(saved.state ?? null)} instead of ${reopenState}`, { kind: 'refused' });
      }
      return { reopened: true };
    },

    async attachFile(ticket: TicketRef, file: { name: string; contentType: string; content: Buffer }) {
      const existing = await call(() => client.findAttachments(ticket.recordId, file.name));
      if (existing.length > 0) return { attached: false };
      await call(() => client.uploadAttachment(ticket.recordId, file.name, file.contentType, file.content));
      return { attached: true };
    },

    async checkAccess() {
      try {
        await client.probeJournalRead();
      } catch (err) {
        if (err instanceof ServiceNowError && err.retryable) {
          throw new Error(`ServiceNow did not answer the sys_journal_field read check: ${err.message}`, { cause: err });
        }
        const status = err instanceof ServiceNowError && err.status !== undefined ? `HTTP ${err.status}: ` : '';
        throw new Error(
          `the integration user cannot read sys_journal_field (${status}${(err as Error).message}); install the read ACL of INSTALL.md step 5`,
          { cause: err },
        );
      }
    },

    /**
     * An emergency exception's Post Implementation Review: a change_task of type review for the configured group,
     * opened once (its correlation_id is the exception's) and closed with the decision's close code and notes.
     */
    async applyUpdate(ticket: TicketRef, update: TicketUpdate) {
      if (update.kind !== 'review-task') throw new WriteBackError(`ServiceNow cannot apply a '${update.kind}' update`, { kind: 'refused' });
      const parsed = parseReviewTask(update.body);
      if (!parsed.ok) throw new WriteBackError(parsed.problem, { kind: 'refused' });
      const body = parsed.value;
      const correlation = `changegate-${body.exceptionId}`;
      const existing = await call(() => client.findTaskByCorrelation(ticket.recordId, correlation));
      if (body.action === 'open') {
        if (existing) return;
        await call(() => client.createTask({
          change_request: ticket.recordId, change_task_type: 'review', short_description: body.shortDescription, description: body.description,
          assignment_group: body.assignmentGroup, correlation_id: correlation, state: taskStates.open,
        }));
        return;
      }
      if (!existing) throw new WriteBackError(`${ticket.key} has no review task ${correlation} to close (was it deleted?)`, { kind: 'refused' });
      if (existing.state === taskStates.closed) return;
      const saved = await call(() => client.updateTask(String(existing.sys_id), { state: taskStates.closed, close_code: body.closeCode, close_notes: body.closeNotes }));
      if (saved.state !== taskStates.closed) {
        throw new WriteBackError(`ServiceNow accepted closing review task ${String(existing.number ?? '')} but its state reads back as ${JSON.stringify(saved.state ?? null)}`, { kind: 'refused' });
      }
    },

    // correlation_id is ServiceNow's field for an integration's own id of a task: a retry finds the change it opened.
    async openChange(change: OpenChange) {
      const existing = await call(() => client.findChangeByCorrelation(change.correlationId));
      const record = existing ?? (await call(() => client.createChange({
        type: change.emergency ? 'emergency' : 'standard',
        short_description: change.title.slice(0, 160),
        description: change.description,
        correlation_id: change.correlationId,
        u_identity_actions: change.actionsText,
        // glide_date_time, UTC
        ...(change.windowEnd ? { end_date: change.windowEnd.slice(0, 19).replace('T', ' ') } : {}),
      })));
      const number = String(record.number ?? '');
      const sysId = String(record.sys_id ?? '');
      if (!number || !sysId) throw new WriteBackError('ServiceNow answered a change without number or sys_id', { kind: 'transient' });
      return { key: number, recordId: sysId, created: existing === null };
    },
  };
}

/** Enough of a refused record to address its ticket: the requester is told there what was wrong. */
const addressable = z.object({
  sys_id: z.string().regex(/^[0-9a-f]{32}$/),
  number: z.string().regex(CHANGE_NUMBER),
  sys_mod_count: z.string().regex(/^\d{1,9}$/),
});

function settingsOf(settings: Readonly<Record<string, unknown>> | undefined): ServiceNowSettings {
  return (settings ?? {}) as ServiceNowSettings;
}

/** change_request deliveries from the business rule in integrations/servicenow, and work notes plus the gate field back. */
export const servicenow: TicketSource = {
  name: 'servicenow',
  keyPattern: CHANGE_NUMBER,
  keyExample: 'CHG0030001',

  verifyDelivery({ raw, headers, receivedAt, secret }) {
    if (!secret) return { ok: false, reason: 'no-secret-configured' };
    return verifyWebhookSignature({
      secret,
      rawBody: raw,
      signature: headerValue(headers, SIGNATURE_HEADER),
      timestamp: headerValue(headers, TIMESTAMP_HEADER),
      nowSeconds: Math.floor(receivedAt.getTime() / 1000),
    });
  },

  parseDelivery({ raw, headers, receivedAt }, grammars, settings) {
    const eventId = headerValue(headers, EVENT_ID_HEADER);
    if (!eventId || !EVENT_ID.test(eventId)) {
      return {
        ok: false,
        code: 'VALIDATION_FAILED',
        message: 'invalid delivery',
        issues: [{ path: `header ${EVENT_ID_HEADER}`, message: 'is required: 1-128 characters of letters, digits, . _ : -' }],
      };
    }
    const json = parseJsonBody(raw);
    if (!json.ok) return json;
    const parsed = parseChangeRecord(json.body, grammars, settingsOf(settings).statePhases ?? DEFAULT_STATE_PHASES);
    if (!parsed.ok) {
      const ids = addressable.safeParse(json.body);
      return {
        ok: false,
        code: 'VALIDATION_FAILED',
        message: 'invalid change_request delivery',
        issues: parsed.issues,
        ...(ids.success ? { ticket: { source: 'servicenow', key: ids.data.number, recordId: ids.data.sys_id, version: Number(ids.data.sys_mod_count) } } : {}),
      };
    }
    const { ticket } = parsed.value;
    return {
      ok: true,
      snapshot: { ...ticket, eventId, receivedAt: receivedAt.toISOString() },
      dedup: { eventId, recordId: ticket.recordId, version: ticket.version },
    };
  },

  writeBack(clients) {
    const client = clients.servicenow;
    if (!(client instanceof ServiceNowClient)) throw new Error('the worker was started without a ServiceNow client');
    return servicenowWriteBack(client, settingsOf(clients.servicenowSettings as Readonly<Record<string, unknown>> | undefined));
  },
};
