import { createHash } from 'node:crypto';
import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { DataSource } from 'typeorm';
import { z } from 'zod';
import { workflowIdFor } from '../change/ticket';
import { handOffFailed, unavailable } from './unavailable';
import { AppError, formatPath } from '../errors';
import { ticketSource, ticketSourceNames } from '../itsm/registry';
import { EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyWebhookSignature } from '../itsm/servicenow/webhook-signature';
import { type DeliveryHeaders, headerValue, parseJsonBody } from '../itsm/source';
import { DeployRefusal, type DeployRunReply, type DeployRunRequest, RUN_ID } from '../kinds/deploy/run';
import type { Logger } from '../logger';
import { WebhookDelivery } from '../persistence/entities/webhook-delivery.entity';
import type { ChangeWorkflows } from '../temporal/temporal-client';

/** De-duplication rows of deploy events share webhook_deliveries with ticket sources, under this source name. */
export const DEPLOY_DELIVERY_SOURCE = 'deploy';

export const EVENT_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export const deployEventSchema = z
  .object({
    ticket: z
      .object({
        source: z.string().refine((s) => ticketSource(s) !== undefined, { message: `must be a registered ticket source (${ticketSourceNames().join(', ')})` }),
        key: z.string().min(1).max(40),
      })
      .strict()
      .superRefine((t, ctx) => {
        const source = ticketSource(t.source);
        if (source && !source.keyPattern.test(t.key)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['key'], message: `must look like ${source.keyExample}` });
      }),
    runId: z.string().regex(RUN_ID, 'must be 1-64 characters of letters, digits, dot, underscore or hyphen, starting with a letter or digit'),
    event: z.enum(['started', 'finished']),
    outcome: z.enum(['success', 'failure', 'cancelled']).optional(),
  })
  .strict()
  .superRefine((b, ctx) => {
    if (b.event === 'started' && b.outcome !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['outcome'], message: "only a 'finished' event has an outcome" });
  });

export interface DeployWebhookDeps {
  ds: DataSource;
  workflows: ChangeWorkflows;
  /** DEPLOY_WEBHOOK_SECRET; without it every deploy event is refused. */
  secret: string | undefined;
  log: Logger;
  now?: () => number;
}

export type DeployEventResult = { status: number; body: (DeployRunReply & { duplicate: false }) | { runId: string; event: string; duplicate: true } };

class Duplicate extends Error {}

/** How the workflow's refusals become statuses: the decision is the workflow's validator's, the status the edge's. */
function refusalToAppError(err: WorkflowUpdateFailedError): AppError {
  const cause = err.cause instanceof ApplicationFailure ? err.cause : undefined;
  const message = cause?.message ?? err.message;
  switch (cause?.type) {
    case DeployRefusal.UnknownRun:
      return new AppError(404, 'NOT_FOUND', message, [], { cause: err });
    case DeployRefusal.NotAuthorized:
    case DeployRefusal.NoDeployAction:
    case DeployRefusal.RunEnded:
    case DeployRefusal.IdentityTaken:
      return new AppError(409, 'CONFLICT', message, [], { cause: err });
    case DeployRefusal.MintFailed:
      return new AppError(502, 'DEPLOY_FAILED', message, [], { cause: err });
    default:
      return unavailable('the ticket workflow could not take the deploy event; retry later', err);
  }
}

/**
 * A pipeline's run event: the signature over the raw bytes first, then the body, then at most once per event id,
 * then a workflow update on the ticket whose validator decides. The de-duplication row commits only with an accepted
 * update, so a refused or failed event can be sent again.
 */
export async function receiveDeployEvent(deps: DeployWebhookDeps, raw: Buffer, headers: DeliveryHeaders): Promise<DeployEventResult> {
  const receivedAt = new Date((deps.now ?? Date.now)());
  const check = deps.secret
    ? verifyWebhookSignature({
        secret: deps.secret, rawBody: raw, signature: headerValue(headers, SIGNATURE_HEADER), timestamp: headerValue(headers, TIMESTAMP_HEADER),
        nowSeconds: Math.floor(receivedAt.getTime() / 1000),
      })
    : ({ ok: false, reason: 'no-secret-configured' } as const);
  if (!check.ok) {
    deps.log.warn('deploy webhook refused', { reason: check.reason });
    throw new AppError(401, 'UNAUTHORIZED', `webhook signature check failed: ${check.reason}`);
  }
  const eventId = headerValue(headers, EVENT_ID_HEADER);
  if (!eventId || !EVENT_ID.test(eventId)) {
    throw new AppError(400, 'VALIDATION_FAILED', 'invalid deploy event', [{ path: `header ${EVENT_ID_HEADER}`, message: 'is required: 1-128 characters of letters, digits, . _ : -' }]);
  }
  const json = parseJsonBody(raw);
  if (!json.ok) throw new AppError(400, json.code, json.message, json.issues);
  const parsed = deployEventSchema.safeParse(json.body);
  if (!parsed.success) {
    throw new AppError(400, 'VALIDATION_FAILED', 'invalid deploy event', parsed.error.issues.map((i) => ({ path: formatPath(i.path) || '(body)', message: i.message })));
  }
  const body = parsed.data;
  const workflowId = workflowIdFor(body.ticket.source, body.ticket.key);
  const request: DeployRunRequest = { runId: body.runId, event: body.event, ...(body.outcome ? { outcome: body.outcome } : {}), eventId, receivedAt: receivedAt.toISOString() };
  const facts = { ticket: body.ticket.key, runId: body.runId, event: body.event, eventId };
  let reply: DeployRunReply | undefined;
  try {
    await deps.ds.transaction(async (m) => {
      const repo = m.getRepository(WebhookDelivery);
      if (await repo.findOne({ where: { source: DEPLOY_DELIVERY_SOURCE, eventId } })) throw new Duplicate();
      try {
        await repo.insert({
          source: DEPLOY_DELIVERY_SOURCE, eventId,
          // Deploy events have no record version; the event id alone de-duplicates, so this key just mirrors it.
          recordId: createHash('sha256').update(eventId).digest('hex'), recordVersion: 0,
          ticketNumber: body.ticket.key, workflowId, receivedAt,
        });
      } catch (err) {
        if ((err as { code?: string }).code === 'ER_DUP_ENTRY') throw new Duplicate();
        throw err;
      }
      reply = await deps.workflows.deployRun(`${body.ticket.source}:${body.ticket.key}`, request);
    });
  } catch (err) {
    if (err instanceof Duplicate) {
      deps.log.info('duplicate deploy event acknowledged', facts);
      return { status: 200, body: { runId: body.runId, event: body.event, duplicate: true } };
    }
    if (err instanceof WorkflowUpdateFailedError) {
      const appErr = refusalToAppError(err);
      deps.log.info('deploy event refused', { ...facts, status: appErr.status, reason: appErr.message });
      throw appErr;
    }
    if (err instanceof WorkflowNotFoundError) {
      const finished = await deps.workflows.client.workflow.getHandle(workflowId).describe().then(() => true, () => false);
      if (finished) throw new AppError(409, 'TICKET_FINALIZED', `the workflow for ${body.ticket.key} has already finished`, [], { cause: err });
      throw new AppError(404, 'NOT_FOUND', `changegate has not received change ${body.ticket.key}`, [], { cause: err });
    }
    throw handOffFailed('could not hand the deploy event to the workflow engine; retry later', err);
  }
  const result = reply as DeployRunReply;
  deps.log.info('deploy event accepted', { ...facts, result: result.result });
  return { status: result.result === 'started' ? 201 : 200, body: { ...result, duplicate: false } };
}
