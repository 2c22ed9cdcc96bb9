import type { DataSource } from 'typeorm';
import type { GrammarRegistry } from '../connectors/registry';
import { workflowIdFor } from '../change/ticket';
import { handOffFailed, unavailable } from './unavailable';
import { AppError } from '../errors';
import type { DeliveryHeaders, DeliveryParse, RawDelivery, SourceClients, SourceSettings, TicketSource, TicketWriteBack } from '../itsm/source';
import type { Logger } from '../logger';
import { WebhookDelivery } from '../persistence/entities/webhook-delivery.entity';
import { type ChangeWorkflows, TicketFinalizedError } from '../temporal/temporal-client';

export interface DeliveryDeps {
  ds: DataSource;
  workflows: ChangeWorkflows;
  grammars: GrammarRegistry;
  /** The shared secret of the source the delivery names, if one is configured. */
  secret: string | undefined;
  /** The API process's clients of ticket sources, by source name (sources that ask their system at the edge). */
  sourceClients?: SourceClients;
  log: Logger;
  now?: () => number;
  /** Each source's own settings (ServiceNow: its state mapping), by source name. */
  sourceSettings?: Readonly<Record<string, SourceSettings>>;
  /** Write-backs the edge may make (the note telling a requester why a delivery was refused); none without it. */
  writeBackFor?: (source: string) => TicketWriteBack | undefined;
}

export interface DeliveryResult {
  workflowId: string;
  duplicate: boolean;
  /** Why an authentic delivery had no effect (an event the source does not read, a finished ticket). */
  ignored?: string;
}

class Duplicate extends Error {}

/**
 * One delivery from any ticket source: authenticate the raw bytes, validate, de-duplicate, then signal-with-start
 * the ticket's workflow. The delivery row and the signal commit together: if Temporal refuses, the row is rolled
 * back so a retry is not mistaken for a duplicate.
 */
export async function receiveDelivery(deps: DeliveryDeps, source: TicketSource, raw: Buffer, headers: DeliveryHeaders): Promise<DeliveryResult> {
  const delivery = { raw, headers, receivedAt: new Date((deps.now ?? Date.now)()), secret: deps.secret };
  const check = source.verifyDelivery(delivery);
  if (!check.ok) {
    deps.log.warn('webhook refused', { source: source.name, reason: check.reason });
    throw new AppError(401, 'UNAUTHORIZED', `webhook signature check failed: ${check.reason}`);
  }
  return acceptDelivery(deps, source, delivery);
}

/**
 * An authenticated delivery — from the webhook, or a record reconciliation read through the source's API — validated,
 * de-duplicated and signalled: the one path both take.
 */
export async function acceptDelivery(deps: DeliveryDeps, source: TicketSource, delivery: RawDelivery): Promise<DeliveryResult> {
  let parsed: DeliveryParse;
  try {
    parsed = await source.parseDelivery(delivery, deps.grammars, deps.sourceSettings?.[source.name], deps.sourceClients ?? {});
  } catch (err) {
    throw unavailable(`could not check the delivery with ${source.name}; retry later`, err);
  }
  if (parsed.ok === 'ignored') {
    deps.log.info('delivery ignored', { source: source.name, reason: parsed.reason });
    return { workflowId: '', duplicate: false, ignored: parsed.reason };
  }
  if (!parsed.ok) {
    await tellRequester(deps, source, parsed);
    throw new AppError(400, parsed.code, parsed.message, parsed.issues);
  }

  const { snapshot, dedup } = parsed;
  if (snapshot.source !== source.name) throw new Error(`${source.name} parsed a delivery into a ticket of source '${snapshot.source}'`);
  const workflowId = workflowIdFor(source.name, snapshot.key);
  const facts = { source: source.name, ticket: snapshot.key, eventId: dedup.eventId, version: dedup.version };
  try {
    await deps.ds.transaction(async (m) => {
      // Both dedup keys are unique indexes: the insert itself finds a repeat, without a read before it.
      try {
        await m.getRepository(WebhookDelivery).insert({
          source: source.name,
          eventId: dedup.eventId,
          recordId: dedup.recordId,
          recordVersion: dedup.version,
          ticketNumber: snapshot.key,
          workflowId,
          receivedAt: delivery.receivedAt,
        });
      } catch (err) {
        // A delivery seen before, or a concurrent copy of it, holds one of the unique keys.
        if ((err as { code?: string }).code === 'ER_DUP_ENTRY') throw new Duplicate();
        throw err;
      }
      await deps.workflows.deliver({ source: source.name, key: snapshot.key, recordId: snapshot.recordId }, snapshot);
    });
  } catch (err) {
    if (err instanceof Duplicate) {
      deps.log.info('duplicate delivery acknowledged', facts);
      return { workflowId, duplicate: true };
    }
    if (err instanceof TicketFinalizedError) {
      if (source.acknowledgeFinalized) {
        deps.log.info('delivery for a finished ticket acknowledged', facts);
        return { workflowId, duplicate: false, ignored: 'the ticket\'s workflow has finished' };
      }
      throw new AppError(409, 'TICKET_FINALIZED', err.message, [], { cause: err });
    }
    throw handOffFailed('could not hand the delivery to the workflow engine; retry later', err);
  }
  deps.log.info('delivery accepted', { ...facts, actions: snapshot.actions.length });
  return { workflowId, duplicate: false };
}

/**
 * The sender never reads a 400 (ServiceNow does not even retry): the requester learns on the ticket what to fix, each
 * problem with its path. Once per (ticket, version), whatever the number of copies of the delivery. A note that
 * cannot be written is logged; the refusal stands either way.
 */
async function tellRequester(deps: DeliveryDeps, source: TicketSource, parsed: Extract<DeliveryParse, { ok: false }>): Promise<void> {
  const ticket = parsed.ticket;
  const adapter = ticket ? deps.writeBackFor?.(source.name) : undefined;
  if (!ticket || !adapter || parsed.issues.length === 0) return;
  const lines = parsed.issues.map((i) => `- ${i.path}: ${i.message}`);
  const text = `changegate cannot act on this change (version ${ticket.version}): its identity actions were refused. Fix these and save again:\n${lines.join('\n')}`;
  try {
    await adapter.postNote(ticket, `invalid:${ticket.version}`, text);
  } catch (err) {
    deps.log.warn('could not tell the requester why the delivery was refused', { source: source.name, ticket: ticket.key, error: (err as Error).message });
  }
}
