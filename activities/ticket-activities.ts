import { createHash } from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { ClosureView } from '../src/change/closure';
import { type TicketRef, ticketKey } from '../src/change/ticket';
import { FailureType } from '../src/connectors/connector-errors';
import type { EvidenceStore } from '../src/evidence/evidence-store';
import { type BackoffPolicy, DEFAULT_BACKOFF, nextRetryDelay } from '../src/itsm/retry-timing';
import { type GateWrite, type NoteWrite, type TicketWriteBack, type WriteBackBatch, WriteBackError } from '../src/itsm/source';

export interface TicketActivityDeps {
  /** The write-back adapter of a registered ticket source. */
  writeBackFor: (source: string) => TicketWriteBack;
  /** Publishes a closure view for closure-check; without it, writeBack leaves publishing to the workflow. */
  publishView?: (ticketKey: string, version: number, view: ClosureView) => Promise<void>;
  /** The outbox's back-off between delivery attempts when the source does not say when to come back. */
  backoff?: BackoffPolicy;
  /**
   * The evidence chain a passing gate stands on: checked (links, hashes, seals) before one is written, as closure-check
   * checks it. Without it (tests of the write-back alone) a passing gate is written as the workflow asks.
   */
  evidence?: Pick<EvidenceStore, 'verifyChain'>;
}

/** A gate that lets the ticket close: ServiceNow's business rule and Jira's `passed` accept both. */
const opensClosure = (gate: GateWrite | undefined): boolean => gate?.value === 'verified' || gate?.value === 'not_applicable';

/** Why a passing gate was not written, and the note that says so on the ticket (once per reason: its marker). */
interface Withheld {
  reason: string;
  note: NoteWrite;
}

/**
 * The batch as it may be written: a passing gate only on an intact evidence chain. On a broken one the gate written
 * is the failing one (pending; '' for a call that predates the three-valued gate), the note announcing closure is
 * left out, and a note gives the break, as closure-check does.
 */
async function withheldIfBroken(
  evidence: TicketActivityDeps['evidence'],
  ticket: TicketRef,
  batch: WriteBackBatch,
): Promise<{ batch: WriteBackBatch; withheld?: Withheld }> {
  if (!evidence || !opensClosure(batch.gate) || ticket.key === '') return { batch };
  const chain = await evidence.verifyChain(ticketKey(ticket.source, ticket.key));
  if (chain.valid) return { batch };
  const reason = `evidence chain is broken at row ${chain.brokenAt?.seq}: ${chain.brokenAt?.reason}`;
  const marker = `chain-broken:${createHash('sha256').update(reason, 'utf8').digest('hex').slice(0, 12)}`;
  const note = { marker, text: `Identity cleanup is not shown as verified: the ${reason}. Closure stays blocked until the evidence is investigated.` };
  const gate: GateWrite = batch.gate?.digest === undefined ? { value: '' } : { value: 'pending', digest: batch.gate.digest };
  // The workflow's `gate:<version>` note announces the passing gate: it does not go with the failing one.
  const notes = [...batch.notes.filter((n) => !n.marker.startsWith('gate:')), note];
  return { batch: { ...batch, gate, notes }, withheld: { reason, note } };
}

/**
 * What one delivery attempt of an outbox batch came to. A transient failure is an answer, not a thrown error: the
 * workflow records its reason (closure-check shows it) and waits `retryInMs` — the source's Retry-After or
 * X-RateLimit-Reset when it gave one, else exponential back-off with jitter — before the next attempt.
 */
export type DeliveryOutcome =
  | { outcome: 'delivered'; published: boolean }
  | { outcome: 'retry'; reason: string; retryInMs: number }
  | { outcome: 'refused'; reason: string };

type PublishRequest = { ticketKey: string; version: number; view: ClosureView };

/**
 * Which ticket a write-back is for. Calls scheduled before tickets were normalised name only a ServiceNow sys_id;
 * a retry of one of those may still arrive.
 */
type Addressed = { ticket: TicketRef } | { sysId: string };

function ticketOf(input: Addressed): TicketRef {
  return 'ticket' in input ? input.ticket : { source: 'servicenow', key: '', recordId: input.sysId };
}

/** Maps a source's write-back errors onto Temporal's retry model: throttling waits as told, refusals are final. */
export async function itsmCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof WriteBackError) {
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

export function createTicketActivities({ writeBackFor, publishView, backoff = DEFAULT_BACKOFF, evidence }: TicketActivityDeps) {
  /**
   * Writes a batch: its other updates, then one save where the source can (notes and gate together), else the notes
   * and then the gate.
   */
  const write = async (ticket: TicketRef, { updates = [], ...batch }: WriteBackBatch, retry: boolean): Promise<void> => {
    const adapter = writeBackFor(ticket.source);
    // Other updates first: the gate, which closes the save, is never shown ahead of anything recorded with it.
    for (const update of updates) {
      if (!adapter.applyUpdate) throw new WriteBackError(`ticket source '${ticket.source}' cannot apply a '${update.kind}' update`, { kind: 'refused' });
      await adapter.applyUpdate(ticket, update, { retry });
    }
    const together = adapter.writeTogether?.bind(adapter);
    if (together) {
      await together(ticket, batch, { retry });
      return;
    }
    for (const note of batch.notes) await adapter.postNote(ticket, note.marker, note.text);
    if (batch.gate) await adapter.setGate(ticket, batch.gate);
  };
  const publishAfter = async (publish: PublishRequest | undefined): Promise<boolean> => {
    if (!publish || !publishView) return false;
    try {
      await publishView(publish.ticketKey, publish.version, publish.view);
      return true;
    } catch (err) {
      Context.current().log.warn('closure view not published with the write-back; the workflow publishes it', { error: (err as Error).message });
      return false;
    }
  };

  return {
    /**
     * One delivery attempt of an outbox batch (ticket-outbox). `attempt` counts the workflow's attempts of this
     * batch: from the second on, an earlier one may have landed without the answer reaching us, so the notes'
     * markers are looked up first and a note lands once however often the batch is sent.
     */
    async deliverToTicket(input: { ticket: TicketRef; attempt: number; publish?: PublishRequest } & WriteBackBatch): Promise<DeliveryOutcome> {
      const { ticket, notes, attempt } = input;
      const gate: GateWrite | undefined = input.gate && (input.gate.digest === undefined ? { value: input.gate.value } : { value: input.gate.value, digest: input.gate.digest });
      const retry = attempt > 1 || Context.current().info.attempt > 1;
      let withheld: Withheld | undefined;
      try {
        // Inside the try: a chain that cannot be read now is a transient failure, and nothing is written meanwhile.
        let batch: WriteBackBatch;
        ({ batch, withheld } = await withheldIfBroken(evidence, ticket, { ...(gate ? { gate } : {}), notes, ...(input.updates?.length ? { updates: input.updates } : {}) }));
        await write(ticket, batch, retry);
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        if (err instanceof WriteBackError && (err.kind === 'refused' || err.kind === 'not_found')) return { outcome: 'refused', reason };
        const retryInMs = nextRetryDelay(attempt, err instanceof WriteBackError ? err.retryAfterMs : undefined, backoff);
        Context.current().log.warn('ticket update not delivered; retrying', { source: ticket.source, attempt, retryInMs, reason });
        return { outcome: 'retry', reason, retryInMs };
      }
      // The failing gate and the note landed; the workflow hears the passing one was refused, which blocks closure with
      // the reason and has it record the gate again only once the ticket changes.
      if (withheld) return { outcome: 'refused', reason: withheld.reason };
      return { outcome: 'delivered', published: await publishAfter(input.publish) };
    },

    /** Appends a note to the ticket once (the source's adapter finds a retried attempt's earlier note by its marker). */
    async postWorkNote(input: Addressed & { marker: string; text: string }): Promise<{ posted: boolean }> {
      const ticket = ticketOf(input);
      return itsmCall(() => writeBackFor(ticket.source).postNote(ticket, input.marker, input.text));
    },

    /** Writes the closure gate and the digest of the identity-actions text it is about. */
    async setClosureGate(input: Addressed & GateWrite): Promise<void> {
      const ticket = ticketOf(input);
      const gate: GateWrite = input.digest === undefined ? { value: input.value } : { value: input.value, digest: input.digest };
      const { batch, withheld } = await withheldIfBroken(evidence, ticket, { gate, notes: [] });
      const adapter = writeBackFor(ticket.source);
      if (withheld) await itsmCall(() => adapter.postNote(ticket, withheld.note.marker, withheld.note.text));
      await itsmCall(() => adapter.setGate(ticket, batch.gate ?? gate));
      if (withheld) throw ApplicationFailure.create({ message: withheld.reason, type: FailureType.TicketRefused, nonRetryable: true });
    },

    /**
     * Writes a loop turn's gate and notes in one call (ServiceNow: one save). Only a retry looks for the notes'
     * markers first: the first attempt cannot have been preceded by one that landed. A source without a combined
     * write gets the notes first and then the gate, so that a gate is never shown without the notes about it.
     * Once the ticket has them, the turn's closure view is published (`published`); if that cannot be done here, the
     * workflow publishes it itself, so a projection fault never counts as a failed write-back.
     */
    async writeBack(input: { ticket: TicketRef; publish?: { ticketKey: string; version: number; view: ClosureView } } & WriteBackBatch): Promise<{ published: boolean }> {
      const { ticket, publish } = input;
      const asked: GateWrite | undefined = input.gate && (input.gate.digest === undefined ? { value: input.gate.value } : { value: input.gate.value, digest: input.gate.digest });
      const { batch: { gate, notes }, withheld } = await withheldIfBroken(evidence, ticket, { ...(asked ? { gate: asked } : {}), notes: input.notes });
      const adapter = writeBackFor(ticket.source);
      const together = adapter.writeTogether?.bind(adapter);
      if (together) {
        const retry = Context.current().info.attempt > 1;
        await itsmCall(() => together(ticket, gate ? { gate, notes } : { notes }, { retry }));
      } else {
        for (const note of notes) await itsmCall(() => adapter.postNote(ticket, note.marker, note.text));
        if (gate) await itsmCall(() => adapter.setGate(ticket, gate));
      }
      // Refused like a write the source refused: the workflow blocks closure with the reason and keeps the gate pending.
      if (withheld) throw ApplicationFailure.create({ message: withheld.reason, type: FailureType.TicketRefused, nonRetryable: true });
      if (!publish || !publishView) return { published: false };
      try {
        await publishView(publish.ticketKey, publish.version, publish.view);
        return { published: true };
      } catch (err) {
        Context.current().log.warn('closure view not published with the write-back; the workflow publishes it', { error: (err as Error).message });
        return { published: false };
      }
    },
  };
}

export type TicketActivities = ReturnType<typeof createTicketActivities>;
