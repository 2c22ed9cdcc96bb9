import type { ClosureGateValue } from '../change/closure';
import type { TicketRef, TicketSnapshot } from '../change/ticket';
import type { GrammarRegistry } from '../connectors/registry';
import type { FieldIssue } from '../errors';

/**
 * A ticket source: one ITSM system the gateway takes changes from and writes evidence back to. The edge half
 * (verify, parse) runs in the API; the write-back half runs in the worker's activities. Each lives in its own
 * folder under src/itsm/ and is named by one line in src/itsm/registry.ts.
 */
export interface TicketSource {
  /** Lower-case path segment and workflow-id part: `/webhooks/<name>`, `change-<name>-<key>`. */
  readonly name: string;
  /** Anchored pattern every ticket key of this source matches; `/api/changes/<name>/<key>/…` checks it. */
  readonly keyPattern: RegExp;
  /** Shown when a key does not match, e.g. `CHG0030001`. */
  readonly keyExample: string;
  /** Authenticates the raw bytes as received, before anything parses them. */
  verifyDelivery(delivery: RawDelivery): DeliveryCheck;
  /**
   * Validates an authenticated delivery into the normalised ticket and the keys that make a repeat a no-op.
   * `settings` are this source's own (e.g. ServiceNow's state mapping), as the process was configured. A source that
   * must ask its system what the payload cannot say (approvals, say) answers with a promise; `clients` are the API
   * process's clients by source name. Throwing means the source could not be asked: the sender should retry.
   */
  parseDelivery(delivery: RawDelivery, grammars: GrammarRegistry, settings?: SourceSettings, clients?: SourceClients): DeliveryParse | Promise<DeliveryParse>;
  /** Optional: whether the source is usable as configured (/readyz); undefined when it is not configured here. */
  ready?(clients: SourceClients): Promise<DeliveryCheck | undefined>;
  /** A delivery for a ticket whose workflow has finished is acknowledged (202) instead of 409: for senders that retry a 409. */
  readonly acknowledgeFinalized?: boolean;
  /** The worker's write-back adapter, built from the clients the worker process was wired with. */
  writeBack(clients: SourceClients): TicketWriteBack;
}

export type DeliveryHeaders = Readonly<Record<string, string | string[] | undefined>>;

export interface RawDelivery {
  raw: Buffer;
  headers: DeliveryHeaders;
  receivedAt: Date;
  /** The shared secret configured for this source, if any. */
  secret: string | undefined;
}

export type DeliveryCheck = { ok: true } | { ok: false; reason: string };

/**
 * A delivery is a repeat when either key was seen before for the same source: the sender's event id (stable across
 * its retries), or the record id with the version it carries (the same change of the same ticket sent twice).
 */
export interface DedupKeys {
  eventId: string;
  recordId: string;
  version: number;
}

export type DeliveryParse =
  | { ok: true; snapshot: TicketSnapshot; dedup: DedupKeys }
  /** Authentic and understood, but nothing for a workflow (an event the source does not read): 202, no effect. */
  | { ok: 'ignored'; reason: string }
  | {
      ok: false;
      code: 'MALFORMED_JSON' | 'VALIDATION_FAILED';
      message: string;
      issues: FieldIssue[];
      /** The ticket the refused delivery was about, when it could be told: its requester is told on the ticket. */
      ticket?: TicketRef & { version: number };
    };

/** A source's own settings by source name, as the process was configured (each source reads its own keys). */
export type SourceSettings = Readonly<Record<string, unknown>>;

/** Clients by source name, as the worker process was wired (ServiceNow: its Table API client). */
export type SourceClients = Readonly<Record<string, unknown>>;

export interface GateWrite {
  /** '' only for calls scheduled by workflows that predate the three-valued gate. */
  value: ClosureGateValue | '';
  /** Absent only for calls scheduled before gates carried a digest. */
  digest?: string;
}

/** A work note and the marker that makes it land once. */
export interface NoteWrite {
  marker: string;
  text: string;
}

/**
 * A ticket update beyond a note and the gate — an issue property, a transition, an attachment — delivered through the
 * same outbox. `marker` makes it land once: on a retry (`retry: true`) the adapter first looks for it (in the
 * attachment's name, the property's value, the comment of a transition) and does not apply it again if it is there.
 */
export interface TicketUpdate {
  marker: string;
  /** What the adapter is to do (e.g. `attachment`, `transition`, `property`); a kind it does not know is refused. */
  kind: string;
  /** JSON the kind defines. */
  body: Record<string, unknown>;
}

/** What one loop turn of a change workflow writes back: the gate (when it changed) and the notes since the last turn. */
export interface WriteBackBatch {
  gate?: GateWrite;
  notes: NoteWrite[];
  /** Other updates, applied before the notes and the gate (so a gate is never shown ahead of what it is about). */
  updates?: TicketUpdate[];
}

/** Write-backs to the ticket. All are idempotent: a retried activity must not leave a second note. */
export interface TicketWriteBack {
  /** Appends a note once: a note already carrying `marker` means an earlier attempt wrote it. */
  postNote(ticket: TicketRef, marker: string, text: string): Promise<{ posted: boolean }>;
  /** Writes the closure gate and the digest of the identity-actions text it is about, together. */
  setGate(ticket: TicketRef, gate: GateWrite): Promise<void>;
  /**
   * Optional: writes the batch in one save, all of it or nothing, so that the ticket never shows a gate without the
   * notes written with it. `retry` says an earlier attempt of the same batch may have landed: only then does the
   * adapter look for the notes' markers first. Without it, the batch is written as the notes (postNote) and then
   * the gate (setGate).
   */
  writeTogether?(ticket: TicketRef, batch: WriteBackBatch, opts: { retry: boolean }): Promise<void>;
  /** Optional: opens a change in the source, once per correlation id. */
  openChange?(change: OpenChange): Promise<OpenedChange>;
  /**
   * Optional: moves a ticket that reached a closed state without proven cleanup back to the state the source is
   * configured to reopen into, with a note carrying `marker` and the reasons, in one save; once (a note already
   * carrying `marker` means an earlier attempt did it).
   */
  reopen?(ticket: TicketRef, note: NoteWrite): Promise<{ reopened: boolean }>;
  /** Optional: attaches a file to the ticket once: a file of that name already there means an earlier attempt did it. */
  attachFile?(ticket: TicketRef, file: { name: string; contentType: string; content: Buffer }): Promise<{ attached: boolean }>;
  /** Optional: proves the integration user has the rights write-backs need; throws saying which one it lacks. */
  checkAccess?(): Promise<void>;
  /**
   * Optional: applies one update of a kind this source knows, once (see TicketUpdate). Throws WriteBackError like the
   * rest: `refused` for a kind it does not know or a body it cannot use.
   */
  applyUpdate?(ticket: TicketRef, update: TicketUpdate, opts: { retry: boolean }): Promise<void>;
}

/** A change the gateway itself opens in a ticket source (a leaked credential's rotation, a remediation). */
export interface OpenChange {
  /** Names the change across retries: a second open with the same id finds the first instead of opening another. */
  correlationId: string;
  emergency: boolean;
  title: string;
  description: string;
  /** The identity-actions text the change carries (spec v1). */
  actionsText: string;
  /** Optional: the end of the change's window (ISO-8601), where the source has a field for it. */
  windowEnd?: string;
}

export interface OpenedChange {
  key: string;
  recordId: string;
  /** False when an earlier attempt had already opened it. */
  created: boolean;
}

export type WriteBackErrorKind = 'rate_limited' | 'refused' | 'not_found' | 'transient';

/** What a write-back adapter throws, so the activity decides retries the same way for every source. */
export class WriteBackError extends Error {
  readonly kind: WriteBackErrorKind;
  readonly retryAfterMs?: number;

  constructor(message: string, init: { kind: WriteBackErrorKind; retryAfterMs?: number; cause?: unknown }) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'WriteBackError';
    this.kind = init.kind;
    this.retryAfterMs = init.retryAfterMs;
  }
}

/** First value of a header that may repeat. */
export function headerValue(headers: DeliveryHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** JSON bodies are common to every source; the parser's complaint is the message, as the edge has always said it. */
export function parseJsonBody(raw: Buffer): { ok: true; body: unknown } | { ok: false; code: 'MALFORMED_JSON'; message: string; issues: FieldIssue[] } {
  try {
    return { ok: true, body: JSON.parse(raw.toString('utf8')) };
  } catch (err) {
    return { ok: false, code: 'MALFORMED_JSON', message: `request body is not valid JSON: ${(err as Error).message}`, issues: [] };
  }
}
