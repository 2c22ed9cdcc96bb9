import type { DataSource } from 'typeorm';
import type { GrammarRegistry } from '../connectors/registry';
import { AppError } from '../errors';
import { parseChangeRecord } from '../itsm/servicenow-change';
import { identityActionsDigest } from '../itsm/servicenow-gate';
import type { Logger } from '../logger';
import { WebhookDelivery } from '../persistence/entities/webhook-delivery.entity';
import { type ChangeWorkflows, TicketFinalizedError } from '../temporal/temporal-client';
import type { TicketSnapshot } from '../../workflows/change-types';
import { workflowIdFor } from '../../workflows/change-types';
import { EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyWebhookSignature } from './webhook-signature';

export interface WebhookDeps {
  ds: DataSource;
  workflows: ChangeWorkflows;
  grammars: GrammarRegistry;
  secret: string;
  log: Logger;
  now?: () => number;
}

export interface WebhookResult {
  workflowId: string;
  duplicate: boolean;
}

const EVENT_ID = /^[A-Za-z0-9._:-]{1,128}$/;

class Duplicate extends Error {}

/**
 * One ServiceNow delivery: authenticate the raw bytes, validate, de-duplicate, then signal-with-start the ticket's
 * workflow. The delivery row and the signal commit together: if Temporal refuses, the row is rolled back so a
 * retry is not mistaken for a duplicate.
 */
export async function receiveServiceNowDelivery(
  deps: WebhookDeps,
  raw: Buffer,
  headers: Record<string, string | string[] | undefined>,
): Promise<WebhookResult> {
  const receivedAt = new Date((deps.now ?? Date.now)());
  const header = (name: string) => {
    const v = headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const check = verifyWebhookSignature({
    secret: deps.secret,
    rawBody: raw,
    signature: header(SIGNATURE_HEADER),
    timestamp: header(TIMESTAMP_HEADER),
    nowSeconds: Math.floor(receivedAt.getTime() / 1000),
  });
  if (!check.ok) {
    deps.log.warn('webhook refused', { reason: check.reason });
    throw new AppError(401, 'UNAUTHORIZED', `webhook signature check failed: ${check.reason}`);
  }
  const eventId = header(EVENT_ID_HEADER);
  if (!eventId || !EVENT_ID.test(eventId)) {
    throw new AppError(400, 'VALIDATION_FAILED', 'invalid delivery', [
      { path: `header ${EVENT_ID_HEADER}`, message: 'is required: 1-128 characters of letters, digits, . _ : -' },
    ]);
  }
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new AppError(400, 'MALFORMED_JSON', `request body is not valid JSON: ${(err as Error).message}`, [], { cause: err });
  }
  const parsed = parseChangeRecord(body, deps.grammars);
  if (!parsed.ok) throw new AppError(400, 'VALIDATION_FAILED', 'invalid change_request delivery', parsed.issues);

  const { record, actions } = parsed.value;
  const workflowId = workflowIdFor('servicenow', record.number);
  const snapshot: TicketSnapshot = {
    eventId,
    modCount: Number(record.sys_mod_count),
    receivedAt: receivedAt.toISOString(),
    state: record.state,
    approval: record.approval,
    type: record.type,
    actions,
    actionsDigest: identityActionsDigest(record.u_identity_actions),
  };
  try {
    await deps.ds.transaction(async (m) => {
      const prior = await m.getRepository(WebhookDelivery).findOne({
        where: [
          { source: 'servicenow', eventId },
          { source: 'servicenow', recordId: record.sys_id, recordVersion: snapshot.modCount },
        ],
      });
      if (prior) throw new Duplicate();
      try {
        await m.getRepository(WebhookDelivery).insert({
          source: 'servicenow',
          eventId,
          recordId: record.sys_id,
          recordVersion: snapshot.modCount,
          ticketNumber: record.number,
          workflowId,
          receivedAt,
        });
      } catch (err) {
        // A concurrent copy of this delivery won the unique key.
        if ((err as { code?: string }).code === 'ER_DUP_ENTRY') throw new Duplicate();
        throw err;
      }
      await deps.workflows.deliver({ source: 'servicenow', ticketNumber: record.number, sysId: record.sys_id }, snapshot);
    });
  } catch (err) {
    if (err instanceof Duplicate) {
      deps.log.info('duplicate delivery acknowledged', { ticket: record.number, eventId, modCount: snapshot.modCount });
      return { workflowId, duplicate: true };
    }
    if (err instanceof TicketFinalizedError) throw new AppError(409, 'TICKET_FINALIZED', err.message, [], { cause: err });
    throw new AppError(503, 'UNAVAILABLE', 'could not hand the delivery to the workflow engine; retry later', [], { cause: err });
  }
  deps.log.info('delivery accepted', { ticket: record.number, eventId, modCount: snapshot.modCount, actions: actions.length });
  return { workflowId, duplicate: false };
}
