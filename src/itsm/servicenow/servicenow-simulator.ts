import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import axios from 'axios';
import express, { type NextFunction, type Request, type Response } from 'express';
import { holdAnswerIf } from '../answer-hold';
import { EVENT_ID_HEADER } from './webhook-signature';
import {
  type OutboundRequest,
  REFERENCE_TABLES,
  STATE_LABELS,
  type SystemLogEntry,
  createRuleEngine,
  defaultInstallKitDir,
  loadInstallKit,
} from './servicenow-business-rules';

/**
 * An in-memory ServiceNow instance for tests and local demos: the Table API on `change_request` and
 * `sys_journal_field`, basic auth, hourly rate limits, and the business rules of integrations/servicenow — the
 * shipped scripts themselves, run on every insert and update as ServiceNow runs them (before rules may change
 * the record or abort the write with 403; after rules see the saved record and send the signed webhook).
 * It follows reference/itsm-contracts.md; it is not a general ServiceNow emulator.
 */

export interface SimulatorOptions {
  username: string;
  password: string;
  /** Requests per hour for the basic-auth user; undefined means unlimited. */
  rateLimitPerHour?: number;
  /** Sets the system properties the webhook rule reads; without it the rule logs that it is not configured. */
  webhook?: { url: string; secret: string };
  /** Where the business rules are loaded from; default the repository's integrations/servicenow. */
  installKitDir?: string;
  /**
   * The number the first change created without one gets (CHG + at least 7 digits); default 30001. The simulator
   * keeps no records across restarts: `npm start` passes a base that never repeats, so a restarted simulator never
   * hands out a number whose workflow already finished.
   */
  numberBase?: number;
  /**
   * OAuth (an Application Registry entry): `/oauth_token.do` issues Bearer tokens for the integration user, which
   * the Table API accepts beside basic auth. `clientCredentials` enables that grant (off by default, as on an instance).
   */
  oauth?: { clientId: string; clientSecret: string; tokenLifetimeSeconds?: number; clientCredentials?: boolean };
}

/** A numbering base that grows with the clock: milliseconds since 2026, well past any earlier run's last number. */
export function freshNumberBase(nowMs = Date.now()): number {
  return Math.max(30001, nowMs - Date.UTC(2026, 0, 1));
}

/**
 * Faults a test switches on and off, each answering as a real instance does when it happens: all off by default,
 * all off again after `restore()`. They apply to every HTTP request (Table API and token endpoint), never to the
 * helpers below, which act as a person in the UI would.
 *
 * Windows opened while others are still open compose, each answering its own `count` of requests: the newest open
 * window answers first, and an older one resumes once the newer is used up (an unbounded newer window hides the
 * older ones until restored). Ending the refused connections leaves the other windows as they are.
 */
export interface SimulatorFaults {
  /** The next `count` requests (default: every one until restored) get 429 with Retry-After and X-RateLimit-*. */
  rateLimit(opts?: { count?: number; retryAfterSeconds?: number }): void;
  /** The next `count` requests (default: every one until restored) get this 5xx, with Retry-After when given. */
  serverError(opts?: { status?: 500 | 502 | 503; count?: number; retryAfterSeconds?: number }): void;
  /** Every write (POST, PATCH, PUT, DELETE) is refused by an ACL with 403, until restored: a person has to act. */
  refuseWrites(): void;
  /** Every listening port refuses new connections and cuts the open ones, until restored or connections are accepted again. */
  refuseConnections(): Promise<void>;
  /** Refused ports listen again on the same port; every other fault stays as it is. */
  acceptConnections(): Promise<void>;
  /**
   * The next `count` requests (default 1) that `match` picks, asked once each request has been carried out (`body`:
   * its JSON, or its text), have their answers held until `until` settles: a client that goes away meanwhile never
   * learns that its write landed.
   */
  holdAnswers(opts: { match: (req: { method: string; path: string; body: unknown; status: number }) => boolean; until: () => Promise<void>; count?: number }): void;
  /** Every answer waits this long before it is sent (0: off). */
  slowReplies(delayMs: number): void;
  /** All faults off; refused ports listen again on the same port. */
  restore(): Promise<void>;
  /** Requests answered by a fault (429/5xx/403) so far; refused connections never reach the simulator. */
  readonly injected: number;
}

/** A stored change_request row: every value is a string, references hold the bare sys_id. */
export type ChangeRecord = Readonly<Record<string, string>>;

export type JournalElement = 'work_notes' | 'comments';

export interface JournalEntry {
  sys_id: string;
  element_id: string;
  element: JournalElement;
  name: 'change_request';
  value: string;
  sys_created_on: string;
  sys_created_by: string;
}

export interface WebhookDelivery {
  eventId: string;
  sysId: string;
  modCount: string;
  status: number | 'error';
  error?: string;
}

export interface ListeningSimulator {
  url: string;
  close(): Promise<void>;
}

export interface ServiceNowSimulator {
  app: express.Express;
  listen(port?: number, host?: string): Promise<ListeningSimulator>;
  createChange(fields: Record<string, string>): ChangeRecord;
  updateChange(sysId: string, fields: Record<string, string>): ChangeRecord;
  getChange(sysId: string): ChangeRecord | undefined;
  findByNumber(number: string): ChangeRecord | undefined;
  journal(sysId: string, element?: JournalElement): JournalEntry[];
  deliveries: WebhookDelivery[];
  /** What the business rules wrote with gs.info/warn/error (System Logs). */
  systemLog: SystemLogEntry[];
  waitForDeliveries(): Promise<void>;
  /** Sets (or, with undefined, removes) a system property the rules read, over the ones `webhook` configured. */
  setProperty(name: string, value: string | undefined): void;
  /** Deactivates (false) or reactivates a business rule of the kit, by its name: a rule not installed, or bypassed. */
  setRuleActive(name: string, active: boolean): void;
  /** Moves the instance's clock (what GlideDateTime reads) by this many milliseconds, e.g. to send a delivery late. */
  setClockOffset(ms: number): void;
  /**
   * Field ACLs the Table API user lacks for writing: such a field in a PATCH/PUT is dropped without an error, and
   * the answer is still 200 (ServiceNow's behaviour for a field-level write ACL).
   */
  denyFieldWrite(fields: string[]): void;
  /** Whether the Table API user may read sys_journal_field (a table-level read ACL): denied reads answer 403. */
  denyJournalRead(deny: boolean): void;
  /** The Attachment API's records on a change, oldest first, with their bytes. */
  attachments(sysId: string): Array<AttachmentRecord & { content: Buffer }>;
  /** The change_tasks of a change, oldest first. */
  tasks(changeSysId: string): Array<Record<string, string>>;
  faults: SimulatorFaults;
  oauth: SimulatorOAuth;
}

export interface AttachmentRecord {
  sys_id: string;
  file_name: string;
  content_type: string;
  size_bytes: string;
  table_name: string;
  table_sys_id: string;
  download_link: string;
  hash: string;
  sys_created_on: string;
  sys_created_by: string;
  sys_updated_on: string;
  sys_mod_count: string;
}

/** What `/oauth_token.do` did, for tests (tokens included, so a test can look for them where they must not be). */
export interface SimulatorOAuth {
  issued: Array<{ grant: string; accessToken: string; refreshToken?: string }>;
  /** Table API requests refused because their Bearer token was unknown or expired. */
  readonly refusedBearer: number;
  /** Every access token issued so far expires now (refresh tokens stay valid), as if their lifetime had run out. */
  expireAccessTokens(): void;
  /** Every refresh token issued so far is revoked (as an admin does in the token table). */
  revokeRefreshTokens(): void;
}

/** A Table API failure: the HTTP status and the two fields of the `{"error": {message, detail}}` envelope. */
export class SimulatedApiError extends Error {
  constructor(
    readonly status: number,
    readonly envelopeMessage: string,
    readonly detail: string,
  ) {
    super(detail ? `${envelopeMessage}: ${detail}` : envelopeMessage);
    this.name = 'SimulatedApiError';
  }
}

/** What `setAbortAction(true)` in a before business rule turns a write into. */
export class BusinessRuleAbortError extends SimulatedApiError {
  constructor(
    readonly businessRule: string,
    detail: string,
  ) {
    super(403, 'Operation Failed', detail);
    this.name = 'BusinessRuleAbortError';
  }
}

export const BLOCK_CLOSE_RULE_NAME = 'changegate: block close without identity cleanup';

const CHANGE_TABLE = 'change_request';
const JOURNAL_TABLE = 'sys_journal_field';
const TASK_TABLE = 'change_task';
const TABLE_PATH = '/api/now/table';
const CLOSED = '3';
const CANCELED = '4';
const DEFAULT_LIMIT = 10_000;
const WEBHOOK_TIMEOUT_MS = 5_000;
const HOUR_MS = 3_600_000;
const SYSTEM_LOG_LIMIT = 1_000;

const JOURNAL_ELEMENTS: ReadonlySet<string> = new Set<JournalElement>(['work_notes', 'comments']);

const JOURNAL_FIELDS = ['sys_id', 'element_id', 'element', 'name', 'value', 'sys_created_on', 'sys_created_by'];

/** Columns a fresh change_request carries, so that GET returns them (empty) as the real table does. */
const CHANGE_COLUMNS = [
  'number', 'short_description', 'description', 'state', 'type', 'approval', 'risk', 'impact', 'priority',
  'category', 'assignment_group', 'assigned_to', 'cmdb_ci', 'requested_by', 'start_date', 'end_date', 'close_code',
  'close_notes', 'correlation_id', 'on_hold', 'active', 'chg_model', 'work_notes', 'comments',
  'u_identity_actions', 'u_identity_cleanup', 'u_identity_cleanup_digest', 'sys_id', 'sys_created_on',
  'sys_created_by', 'sys_updated_on', 'sys_updated_by', 'sys_mod_count',
];

/** Columns of a change_task (an emergency exception's Post Implementation Review is one). */
const TASK_COLUMNS = [
  'sys_id', 'number', 'change_request', 'change_task_type', 'short_description', 'description', 'assignment_group', 'state',
  'close_code', 'close_notes', 'correlation_id', 'active', 'sys_created_on', 'sys_created_by', 'sys_updated_on', 'sys_updated_by', 'sys_mod_count',
];
/** change_task states (UNCONFIRMED numbers, configurable in the gateway): Pending -5, Open 1, In progress 2, Closed 3, Canceled 4. */
const TASK_CLOSED = '3';
const TASK_CANCELED = '4';
const TASK_CLOSE_CODES = new Set(['successful', 'successful_issues', 'unsuccessful']);

/** `gs.generateGUID()` and sys_id shape: 32 lowercase hex characters. */
function guid(): string {
  return randomBytes(16).toString('hex');
}

/** ServiceNow's internal date-time format, always UTC: `2025-06-02 22:00:00`. */
function glideDateTime(date: Date): string {
  return date.toISOString().slice(0, 19).replace('T', ' ');
}

function fail(status: number, message: string, detail: string): never {
  throw new SimulatedApiError(status, message, detail);
}

function notFound(): never {
  fail(404, 'No Record found', "Record doesn't exist or ACL restricts the record retrieval");
}

type Row = Record<string, string>;

type DisplayMode = 'false' | 'true' | 'all';

interface RenderOptions {
  baseUrl: string;
  display: DisplayMode;
  excludeReferenceLink: boolean;
  fields?: string[];
}

type Rendered = string | { display_value?: string; value?: string; link?: string };

function renderChange(row: Row, opts: RenderOptions): Record<string, Rendered> {
  const out: Record<string, Rendered> = {};
  const names = opts.fields ?? Object.keys(row);
  for (const name of names) {
    if (!(name in row)) continue;
    const value = JOURNAL_ELEMENTS.has(name) ? '' : row[name];
    const display = name === 'state' ? (STATE_LABELS[value] ?? value) : value;
    const refTable = REFERENCE_TABLES[name];
    const link = refTable && value && !opts.excludeReferenceLink ? `${opts.baseUrl}${TABLE_PATH}/${refTable}/${value}` : undefined;
    if (opts.display === 'all') out[name] = link ? { display_value: display, link, value } : { display_value: display, value };
    else if (opts.display === 'true') out[name] = link ? { display_value: display, link } : display;
    else out[name] = link ? { link, value } : value;
  }
  return out;
}

function renderPlain(row: Row, opts: RenderOptions): Record<string, Rendered> {
  const out: Record<string, Rendered> = {};
  for (const name of opts.fields ?? Object.keys(row)) {
    if (!(name in row)) continue;
    out[name] = opts.display === 'all' ? { display_value: row[name], value: row[name] } : row[name];
  }
  return out;
}

type Condition = (row: Row) => boolean;

interface ParsedQuery {
  /** Disjunctions of conjunctions is more than we need: terms are ANDed, `^OR` joins a term to the previous one. */
  groups: Condition[][];
  orders: Array<{ field: string; desc: boolean }>;
}

const TERM = /^([a-z0-9_]+)(ISNOTEMPTY|ISEMPTY|!=|>=|<=|=|>|<|STARTSWITH|ENDSWITH|NOT LIKE|LIKE|NOT IN|IN)(.*)$/s;

function compareValues(a: string, b: string): number {
  const numeric = /^-?\d+(\.\d+)?$/;
  if (numeric.test(a) && numeric.test(b)) return Number(a) - Number(b);
  return a < b ? -1 : a > b ? 1 : 0;
}

function condition(field: string, op: string, operand: string): Condition {
  const get = (row: Row) => row[field] ?? '';
  switch (op) {
    case '=': return (r) => get(r) === operand;
    case '!=': return (r) => get(r) !== operand;
    case '>': return (r) => compareValues(get(r), operand) > 0;
    case '>=': return (r) => compareValues(get(r), operand) >= 0;
    case '<': return (r) => compareValues(get(r), operand) < 0;
    case '<=': return (r) => compareValues(get(r), operand) <= 0;
    case 'ISEMPTY': return (r) => get(r) === '';
    case 'ISNOTEMPTY': return (r) => get(r) !== '';
    case 'STARTSWITH': return (r) => get(r).toLowerCase().startsWith(operand.toLowerCase());
    case 'ENDSWITH': return (r) => get(r).toLowerCase().endsWith(operand.toLowerCase());
    case 'LIKE': return (r) => get(r).toLowerCase().includes(operand.toLowerCase());
    case 'NOT LIKE': return (r) => !get(r).toLowerCase().includes(operand.toLowerCase());
    case 'IN': return (r) => operand.split(',').includes(get(r));
    default: return (r) => !operand.split(',').includes(get(r));
  }
}

/**
 * Encoded query subset. Terms naming an unknown field, or that do not parse, are dropped silently: that is
 * ServiceNow's default (glide.invalid_query.returns_no_rows = false), and why clients must never splice
 * unchecked input into a query.
 */
function parseQuery(query: string, known: ReadonlySet<string>): ParsedQuery {
  const parsed: ParsedQuery = { groups: [], orders: [] };
  for (const raw of query.split('^')) {
    if (raw.startsWith('ORDERBYDESC') || raw.startsWith('ORDERBY')) {
      const desc = raw.startsWith('ORDERBYDESC');
      const field = raw.slice(desc ? 'ORDERBYDESC'.length : 'ORDERBY'.length);
      if (known.has(field)) parsed.orders.push({ field, desc });
      continue;
    }
    const isOr = raw.startsWith('OR') && parsed.groups.length > 0;
    const match = TERM.exec(isOr ? raw.slice(2) : raw);
    if (!match || !known.has(match[1])) continue;
    const cond = condition(match[1], match[2], match[3]);
    if (isOr) parsed.groups[parsed.groups.length - 1].push(cond);
    else parsed.groups.push([cond]);
  }
  return parsed;
}

function applyQuery<T extends Row>(rows: T[], query: ParsedQuery): T[] {
  const matching = rows.filter((row) => query.groups.every((group) => group.some((cond) => cond(row))));
  if (query.orders.length === 0) return matching;
  // Array.prototype.sort is stable, so equal keys keep insertion order (journal entries within one second).
  return matching.sort((a, b) => {
    for (const { field, desc } of query.orders) {
      const diff = compareValues(a[field] ?? '', b[field] ?? '');
      if (diff !== 0) return desc ? -diff : diff;
    }
    return 0;
  });
}

/** JSON values become strings as the Table API coerces them; a `{value}` object (as GET returns references) unwraps. */
function normaliseFields(body: unknown): Row {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    fail(400, 'Exception while reading request', 'The payload is not a JSON object.');
  }
  const out: Row = {};
  for (const [name, value] of Object.entries(body as Record<string, unknown>)) {
    if (typeof value === 'string') out[name] = value;
    else if (typeof value === 'number' || typeof value === 'boolean') out[name] = String(value);
    else if (value === null) out[name] = '';
    else if (typeof value === 'object' && typeof (value as { value?: unknown }).value === 'string') {
      out[name] = (value as { value: string }).value;
    } else fail(400, 'Exception while reading request', `Invalid value for field '${name}'.`);
  }
  return out;
}

function queryString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function nonNegativeInt(value: unknown): number | undefined {
  const text = queryString(value);
  return text !== undefined && /^\d{1,9}$/.test(text) ? Number(text) : undefined;
}

export function createServiceNowSimulator(opts: SimulatorOptions): ServiceNowSimulator {
  const rateLimitRuleSysId = guid();

  const changes = new Map<string, Row>();
  const journalRows: Array<JournalEntry & Row> = [];
  const changeColumns = new Set<string>(CHANGE_COLUMNS);
  const journalColumns: ReadonlySet<string> = new Set(JOURNAL_FIELDS);
  const tasks = new Map<string, Row>();
  const taskRuleSysId = guid();
  const taskColumns: ReadonlySet<string> = new Set(TASK_COLUMNS);
  let nextTaskNumber = (opts.numberBase ?? 30001) * 10;
  let nextNumber = opts.numberBase ?? 30001;
  let instanceUrl: string | undefined;

  const deliveries: WebhookDelivery[] = [];
  const inFlight = new Set<Promise<void>>();
  const systemLog: SystemLogEntry[] = [];

  const propertyOverrides = new Map<string, string | undefined>();
  const inactiveRules = new Set<string>();
  let clockOffsetMs = 0;
  const writeDenied = new Set<string>();
  let journalReadDenied = false;
  const attachmentRows: Array<AttachmentRecord & { content: Buffer }> = [];

  const rules = createRuleEngine({
    rules: loadInstallKit(opts.installKitDir ?? defaultInstallKitDir()),
    properties: () => ({
      'glide.servlet.uri': `${linkBase()}/`,
      'x_changegate.webhook_url': opts.webhook?.url,
      'x_changegate.webhook_secret': opts.webhook?.secret,
      ...Object.fromEntries(propertyOverrides),
    }),
    isActive: (rule) => !inactiveRules.has(rule.name),
    now: () => Date.now() + clockOffsetMs,
    log: (entry) => {
      systemLog.push(entry);
      if (systemLog.length > SYSTEM_LOG_LIMIT) systemLog.shift();
    },
    newGuid: guid,
  });

  let rateWindowStart = -1;
  let rateCount = 0;

  // ---- OAuth ----
  const accessTokens = new Map<string, { user: string; expiresAt: number }>();
  const refreshTokens = new Map<string, { user: string; expiresAt: number }>();
  const issued: SimulatorOAuth['issued'] = [];
  let refusedBearer = 0;
  const REFRESH_LIFETIME_MS = 100 * 24 * HOUR_MS;

  // ---- faults ----
  /** Open 429/5xx windows, oldest first; the newest with requests left answers. */
  let answerWindows: Array<{ remaining: number; send(res: Response): void }> = [];
  let answerHolds: Array<{ remaining: number; match: Parameters<SimulatorFaults['holdAnswers']>[0]['match']; until(): Promise<void> }> = [];
  let replyDelayMs = 0;
  let writesRefused = false;
  let injected = 0;
  /** Every port listen() opened, so that connections can be refused and accepted again on the same port. */
  const ports: Array<{ server?: http.Server; port: number; host: string }> = [];

  function openPort(entry: { server?: http.Server; port: number; host: string }): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = http.createServer(app);
      server.once('error', reject);
      server.listen(entry.port, entry.host, () => {
        entry.port = (server.address() as AddressInfo).port;
        entry.server = server;
        resolve();
      });
    });
  }

  /** What a held answer's `match` is shown of a request's body (read raw, as the Table API reads it): its JSON, or its text. */
  function bodyOf(raw: unknown): unknown {
    if (!Buffer.isBuffer(raw)) return raw;
    const text = raw.toString('utf8');
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  }

  function openWindow(count: number, send: (res: Response) => void): void {
    if (count > 0) answerWindows.push({ remaining: count, send });
  }

  async function acceptConnections(): Promise<void> {
    for (const entry of ports) if (!entry.server) await openPort(entry);
  }

  function closePort(entry: { server?: http.Server }): Promise<void> {
    const server = entry.server;
    entry.server = undefined;
    if (!server) return Promise.resolve();
    return new Promise<void>((done, failed) => {
      server.close((err) => (err ? failed(err) : done()));
      server.closeAllConnections();
    });
  }

  function linkBase(): string {
    return instanceUrl ?? 'http://127.0.0.1';
  }

  function appendJournal(sysId: string, element: JournalElement, value: string, user: string, at: string): void {
    journalRows.push({
      sys_id: guid(),
      element_id: sysId,
      element,
      name: CHANGE_TABLE,
      value,
      sys_created_on: at,
      sys_created_by: user,
    });
  }

  function splitJournal(input: Row): { fields: Row; notes: Array<[JournalElement, string]> } {
    const fields: Row = {};
    const notes: Array<[JournalElement, string]> = [];
    for (const [name, value] of Object.entries(input)) {
      // sys_* columns are maintained by the platform; the Table API ignores writes to them.
      if (name.startsWith('sys_')) continue;
      if (JOURNAL_ELEMENTS.has(name)) {
        if (value.trim() !== '') notes.push([name as JournalElement, value]);
      } else fields[name] = value;
    }
    return { fields, notes };
  }

  /** Before business rules: they may change `row`; `setAbortAction(true)` cancels the write with a 403. */
  function runBeforeRules(operation: 'insert' | 'update', row: Row, previous: Row | undefined): void {
    const { abortedBy } = rules.runBefore(operation, row, previous);
    if (!abortedBy) return;
    throw new BusinessRuleAbortError(
      abortedBy.name,
      `Operation against file '${CHANGE_TABLE}' was aborted by Business Rule '${abortedBy.name}^${abortedBy.sysId}'. ` +
        `Business Rule Stack:${abortedBy.name}`,
    );
  }

  function applyStateSideEffects(row: Row): void {
    // The baseline "mark closed" rules keep `active` in step with terminal states.
    row.active = row.state === CLOSED || row.state === CANCELED ? 'false' : 'true';
  }

  function insertChange(input: Row, user: string): Row {
    const { fields, notes } = splitJournal(input);
    const now = glideDateTime(new Date());
    const row: Row = {
      number: `CHG${String(nextNumber).padStart(7, '0')}`,
      short_description: '',
      description: '',
      state: '-5',
      type: 'normal',
      approval: 'not requested',
      risk: '3',
      impact: '3',
      priority: '4',
      category: '',
      assignment_group: '',
      cmdb_ci: '',
      requested_by: '',
      start_date: '',
      end_date: '',
      close_code: '',
      close_notes: '',
      correlation_id: '',
      on_hold: 'false',
      active: 'true',
      chg_model: '',
      work_notes: '',
      comments: '',
      u_identity_actions: '',
      u_identity_cleanup: '',
      u_identity_cleanup_digest: '',
      ...fields,
      sys_id: guid(),
      sys_created_on: now,
      sys_created_by: user,
      sys_updated_on: now,
      sys_updated_by: user,
      sys_mod_count: '0',
    };
    applyStateSideEffects(row);
    // The kit's before rules run on insert as well: a change created directly as Closed must not slip past the gate.
    runBeforeRules('insert', row, undefined);
    nextNumber += 1;
    changes.set(row.sys_id, row);
    for (const name of Object.keys(row)) changeColumns.add(name);
    for (const [element, value] of notes) appendJournal(row.sys_id, element, value, user, now);
    send(rules.runAfter('insert', row, undefined));
    return row;
  }

  function updateChangeRow(sysId: string, input: Row, user: string): Row {
    const existing = changes.get(sysId);
    if (!existing) notFound();
    const { fields, notes } = splitJournal(input);
    const merged: Row = { ...existing, ...fields };
    if (fields.state !== undefined) applyStateSideEffects(merged);
    runBeforeRules('update', merged, existing);
    const changed = notes.length > 0 || Object.keys(merged).some((name) => merged[name] !== existing[name]);
    // GlideRecord.update() without a changed field writes nothing: no mod count bump, no after rules.
    if (!changed) return existing;
    const now = glideDateTime(new Date());
    merged.sys_mod_count = String(Number(existing.sys_mod_count) + 1);
    merged.sys_updated_on = now;
    merged.sys_updated_by = user;
    changes.set(sysId, merged);
    for (const name of Object.keys(merged)) changeColumns.add(name);
    for (const [element, value] of notes) appendJournal(sysId, element, value, user, now);
    send(rules.runAfter('update', merged, existing));
    return merged;
  }

  /**
   * change_task as an instance with the out-of-box data policy and rules behaves: a task names its change; closing
   * one needs a close code and close notes (data policy: 403); a closed or canceled task cannot change state again.
   */
  function insertTask(input: Row, user: string): Row {
    const unknown = Object.keys(input).filter((name) => !taskColumns.has(name));
    if (unknown.length > 0) fail(400, 'Exception while reading request', `Invalid field(s) for change_task: ${unknown.join(', ')}`);
    if (!input.change_request || !changes.has(input.change_request)) fail(400, 'Invalid reference', 'change_request must reference an existing change_request');
    const now = glideDateTime(new Date());
    const row: Row = {
      number: `CTASK${String(nextTaskNumber).padStart(7, '0')}`,
      change_task_type: 'implementation', short_description: '', description: '', assignment_group: '', state: '1',
      close_code: '', close_notes: '', correlation_id: '', active: 'true',
      ...input,
      sys_id: guid(), sys_created_on: now, sys_created_by: user, sys_updated_on: now, sys_updated_by: user, sys_mod_count: '0',
    };
    checkTaskClose(row, undefined);
    nextTaskNumber += 1;
    tasks.set(row.sys_id, row);
    return row;
  }

  function updateTaskRow(sysId: string, input: Row, user: string): Row {
    const existing = tasks.get(sysId);
    if (!existing) notFound();
    const unknown = Object.keys(input).filter((name) => !taskColumns.has(name));
    if (unknown.length > 0) fail(400, 'Exception while reading request', `Invalid field(s) for change_task: ${unknown.join(', ')}`);
    const merged: Row = { ...existing, ...input };
    checkTaskClose(merged, existing);
    if (Object.keys(merged).every((name) => merged[name] === existing[name])) return existing;
    merged.sys_mod_count = String(Number(existing.sys_mod_count) + 1);
    merged.sys_updated_on = glideDateTime(new Date());
    merged.sys_updated_by = user;
    tasks.set(sysId, merged);
    return merged;
  }

  function checkTaskClose(row: Row, previous: Row | undefined): void {
    if (previous && (previous.state === TASK_CLOSED || previous.state === TASK_CANCELED) && row.state !== previous.state) {
      fail(403, 'Operation Failed', `Operation against file 'change_task' was aborted by Business Rule 'Close Tasks Not Reopenable^${taskRuleSysId}'. Business Rule Stack:Close Tasks Not Reopenable`);
    }
    if (row.state === TASK_CLOSED) {
      const missing = [!TASK_CLOSE_CODES.has(row.close_code ?? '') ? 'Close code' : '', !(row.close_notes ?? '').trim() ? 'Close notes' : ''].filter(Boolean);
      if (missing.length > 0) fail(403, 'Operation Failed', `Data Policy Exception: The following fields are mandatory: ${missing.join(', ')}`);
      row.active = 'false';
    }
  }

  /** What after rules queued with RESTMessageV2.executeAsync(), sent once the write has committed. */
  function send(requests: OutboundRequest[]): void {
    for (const request of requests) {
      let record: { sys_id?: unknown; sys_mod_count?: unknown } = {};
      try {
        record = JSON.parse(request.body) as typeof record;
      } catch {
        // not a change record: still sent, recorded without ids
      }
      const delivery = {
        eventId: Object.entries(request.headers).find(([name]) => name.toLowerCase() === EVENT_ID_HEADER)?.[1] ?? '',
        sysId: String(record.sys_id ?? ''),
        modCount: String(record.sys_mod_count ?? ''),
      };
      const sent = axios
        .request({
          method: request.method,
          url: request.endpoint,
          data: request.body,
          headers: request.headers,
          timeout: request.timeoutMs ?? WEBHOOK_TIMEOUT_MS,
          maxRedirects: 0,
          proxy: false,
          responseType: 'text',
          transformRequest: [(data: unknown) => data],
          validateStatus: () => true,
        })
        .then(
          (res) => {
            deliveries.push({ ...delivery, status: res.status });
          },
          (err: unknown) => {
            deliveries.push({ ...delivery, status: 'error', error: err instanceof Error ? err.message : String(err) });
          },
        );
      const tracked: Promise<void> = sent.finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
    }
  }

  // ---- HTTP ----

  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');

  function sendError(res: Response, status: number, message: string, detail: string): void {
    res.status(status).json({ error: { message, detail }, status: 'failure' });
  }

  function requestBaseUrl(req: Request): string {
    return `${req.protocol}://${req.get('host') ?? '127.0.0.1'}`;
  }

  function currentWindow(nowMs: number): { start: number; resetSeconds: number } {
    const start = Math.floor(nowMs / HOUR_MS) * HOUR_MS;
    return { start, resetSeconds: (start + HOUR_MS) / 1000 };
  }

  // Faults come first: an instance that is down or throttling answers before it looks at credentials.
  app.use((req, res, next) => {
    const answer = () => {
      if (writesRefused && req.method !== 'GET' && req.method !== 'HEAD' && req.path.startsWith(TABLE_PATH)) {
        injected += 1;
        sendError(res, 403, 'User Not Authorized', 'ACL Exception Update Failed due to security constraints');
        return;
      }
      const open = answerWindows.at(-1);
      if (open) {
        open.remaining -= 1;
        answerWindows = answerWindows.filter((w) => w.remaining > 0);
        injected += 1;
        open.send(res);
        return;
      }
      if (answerHolds.length > 0) {
        holdAnswerIf(res, () => {
          const hold = answerHolds.find((h) => h.match({ method: req.method, path: req.originalUrl.split('?')[0] ?? '', body: bodyOf(req.body), status: res.statusCode }));
          if (!hold) return undefined;
          hold.remaining -= 1;
          answerHolds = answerHolds.filter((h) => h.remaining > 0);
          return hold.until();
        });
      }
      next();
    };
    if (replyDelayMs > 0) setTimeout(answer, replyDelayMs);
    else answer();
  });

  app.post('/oauth_token.do', express.urlencoded({ extended: false, limit: '16kb' }), (req, res) => {
    const deny = (status: number, error: string, description: string) => {
      res.status(status).json({ error_description: description, error });
    };
    if (!opts.oauth) return deny(401, 'server_error', 'access_denied');
    if (!req.is('application/x-www-form-urlencoded')) return deny(400, 'invalid_request', 'form-urlencoded body required');
    const form = req.body as Record<string, unknown>;
    const field = (name: string) => (typeof form[name] === 'string' ? form[name] : '');
    if (field('client_id') !== opts.oauth.clientId || field('client_secret') !== opts.oauth.clientSecret) return deny(401, 'server_error', 'access_denied');
    const grant = field('grant_type');
    let user: string;
    if (grant === 'password') {
      if (field('username') !== opts.username || field('password') !== opts.password) return deny(401, 'server_error', 'access_denied');
      user = opts.username;
    } else if (grant === 'refresh_token') {
      const held = refreshTokens.get(field('refresh_token'));
      if (!held || held.expiresAt <= Date.now()) return deny(401, 'server_error', 'access_denied');
      user = held.user;
    } else if (grant === 'client_credentials' && opts.oauth.clientCredentials) {
      user = opts.username;
    } else {
      return deny(400, 'unsupported_grant_type', `grant_type '${grant.slice(0, 40)}' is not supported`);
    }
    const lifetime = opts.oauth.tokenLifetimeSeconds ?? 1800;
    const access = randomBytes(32).toString('base64url');
    accessTokens.set(access, { user, expiresAt: Date.now() + lifetime * 1000 });
    const body: Record<string, unknown> = { access_token: access, scope: 'useraccount', token_type: 'Bearer', expires_in: lifetime };
    let refresh: string | undefined;
    if (grant !== 'client_credentials') {
      refresh = grant === 'refresh_token' ? field('refresh_token') : randomBytes(32).toString('base64url');
      refreshTokens.set(refresh, { user, expiresAt: Date.now() + REFRESH_LIFETIME_MS });
      body.refresh_token = refresh;
    }
    issued.push({ grant, accessToken: access, ...(refresh ? { refreshToken: refresh } : {}) });
    res.json(body);
  });

  app.use((_req, res, next) => {
    if (opts.rateLimitPerHour !== undefined) {
      const { resetSeconds } = currentWindow(Date.now());
      res.setHeader('X-RateLimit-Limit', String(opts.rateLimitPerHour));
      res.setHeader('X-RateLimit-Reset', String(resetSeconds));
      res.setHeader('X-RateLimit-Rule', rateLimitRuleSysId);
    }
    next();
  });

  app.use((req, res, next) => {
    const header = req.get('authorization') ?? '';
    const bearer = /^Bearer\s+(\S+)$/i.exec(header);
    if (bearer && opts.oauth) {
      const held = accessTokens.get(bearer[1]);
      if (!held || held.expiresAt <= Date.now()) {
        refusedBearer += 1;
        sendError(res, 401, 'User Not Authenticated', 'Required to provide Auth information');
        return;
      }
      res.locals.user = held.user;
      next();
      return;
    }
    const match = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header);
    const decoded = match ? Buffer.from(match[1], 'base64').toString('utf8') : '';
    const colon = decoded.indexOf(':');
    const user = colon >= 0 ? decoded.slice(0, colon) : '';
    const password = colon >= 0 ? decoded.slice(colon + 1) : '';
    if (!match || user !== opts.username || password !== opts.password) {
      res.setHeader('WWW-Authenticate', 'Basic realm="Service-now"');
      sendError(res, 401, 'User Not Authenticated', 'Required to provide Auth information');
      return;
    }
    res.locals.user = user;
    next();
  });

  app.use((_req, res, next) => {
    if (opts.rateLimitPerHour === undefined) return next();
    const nowMs = Date.now();
    const { start, resetSeconds } = currentWindow(nowMs);
    if (start !== rateWindowStart) {
      rateWindowStart = start;
      rateCount = 0;
    }
    rateCount += 1;
    if (rateCount <= opts.rateLimitPerHour) return next();
    res.setHeader('Retry-After', String(Math.max(1, resetSeconds - Math.floor(nowMs / 1000))));
    sendError(
      res,
      429,
      'Rate limit exceeded',
      `Rate limit of ${opts.rateLimitPerHour} requests per hour exceeded for user '${String(res.locals.user)}'`,
    );
  });

  app.use((req, res, next) => {
    if (req.get('accept') && !req.accepts('application/json')) {
      sendError(res, 406, 'Not Acceptable', `The requested response format '${req.get('accept')}' is not supported`);
      return;
    }
    next();
  });

  app.use(express.raw({ type: () => true, limit: '10mb' }));

  function readJsonBody(req: Request): Row {
    const raw: unknown = req.body;
    const bytes = Buffer.isBuffer(raw) ? raw : Buffer.alloc(0);
    if (bytes.length === 0) fail(400, 'Exception while reading request', 'Request body is empty.');
    let parsed: unknown;
    try {
      parsed = JSON.parse(bytes.toString('utf8'));
    } catch {
      fail(400, 'Exception while reading request', 'The payload is not valid JSON.');
    }
    return normaliseFields(parsed);
  }

  function rejectNonJsonBody(req: Request): void {
    const raw: unknown = req.body;
    if (Buffer.isBuffer(raw) && raw.length > 0 && !req.is('application/json')) {
      fail(415, 'Unsupported Media Type', `Content-Type '${req.get('content-type') ?? ''}' is not supported; use application/json`);
    }
  }

  function methodNotSupported(req: Request): never {
    fail(405, 'Method not Supported', `Method ${req.method} is not supported for this resource`);
  }

  function renderOptions(req: Request): RenderOptions {
    const display = queryString(req.query.sysparm_display_value);
    const fields = queryString(req.query.sysparm_fields);
    return {
      baseUrl: requestBaseUrl(req),
      display: display === 'true' || display === 'all' ? display : 'false',
      excludeReferenceLink: queryString(req.query.sysparm_exclude_reference_link) === 'true',
      fields: fields ? fields.split(',').map((f) => f.trim()).filter(Boolean) : undefined,
    };
  }

  function tableOf(req: Request): typeof CHANGE_TABLE | typeof JOURNAL_TABLE | typeof TASK_TABLE {
    const table = String(req.params.table);
    if (table === CHANGE_TABLE || table === JOURNAL_TABLE || table === TASK_TABLE) return table;
    fail(400, `Invalid table ${table}`, '');
  }

  function render(table: string, row: Row, options: RenderOptions): Record<string, Rendered> {
    return table === CHANGE_TABLE ? renderChange(row, options) : renderPlain(row, options);
  }

  function setPaginationHeaders(req: Request, res: Response, total: number, limit: number, offset: number): void {
    if (queryString(req.query.sysparm_no_count) !== 'true') res.setHeader('X-Total-Count', String(total));
    if (total <= limit && offset === 0) return;
    const link = (at: number, rel: string) => {
      const params = new URLSearchParams();
      for (const [key, value] of Object.entries(req.query)) {
        if (typeof value === 'string' && key !== 'sysparm_offset' && key !== 'sysparm_limit') params.set(key, value);
      }
      params.set('sysparm_limit', String(limit));
      params.set('sysparm_offset', String(at));
      return `<${requestBaseUrl(req)}${req.path}?${params.toString()}>;rel="${rel}"`;
    };
    const last = total === 0 ? 0 : Math.floor((total - 1) / limit) * limit;
    const links = [link(0, 'first')];
    if (offset > 0) links.push(link(Math.max(0, offset - limit), 'prev'));
    if (offset + limit < total) links.push(link(offset + limit, 'next'));
    links.push(link(last, 'last'));
    res.setHeader('Link', links.join(','));
  }

  app.all(`${TABLE_PATH}/:table`, (req, res) => {
    const table = tableOf(req);
    rejectNonJsonBody(req);
    const options = renderOptions(req);
    if (req.method === 'GET' || req.method === 'HEAD') {
      if (table === JOURNAL_TABLE && journalReadDenied) denyRead();
      const rows: Row[] = table === CHANGE_TABLE ? [...changes.values()] : table === TASK_TABLE ? [...tasks.values()] : journalRows;
      const known = table === CHANGE_TABLE ? changeColumns : table === TASK_TABLE ? taskColumns : journalColumns;
      const matched = applyQuery(rows, parseQuery(queryString(req.query.sysparm_query) ?? '', known));
      const limit = nonNegativeInt(req.query.sysparm_limit) || DEFAULT_LIMIT;
      const offset = nonNegativeInt(req.query.sysparm_offset) ?? 0;
      setPaginationHeaders(req, res, matched.length, limit, offset);
      res.json({ result: matched.slice(offset, offset + limit).map((row) => render(table, row, options)) });
      return;
    }
    if (req.method !== 'POST') methodNotSupported(req);
    if (table === JOURNAL_TABLE) fail(403, 'User Not Authorized', 'ACL Exception Insert Failed due to security constraints');
    if (table === TASK_TABLE) {
      const task = insertTask(readJsonBody(req), String(res.locals.user));
      res.setHeader('Location', `${requestBaseUrl(req)}${TABLE_PATH}/${table}/${task.sys_id}`);
      res.status(201).json({ result: renderPlain(task, options) });
      return;
    }
    const row = insertChange(readJsonBody(req), String(res.locals.user));
    res.setHeader('Location', `${requestBaseUrl(req)}${TABLE_PATH}/${table}/${row.sys_id}`);
    res.status(201).json({ result: renderChange(row, options) });
  });

  app.all(`${TABLE_PATH}/:table/:sysId`, (req, res) => {
    const table = tableOf(req);
    rejectNonJsonBody(req);
    const options = renderOptions(req);
    const sysId = String(req.params.sysId);
    if (req.method === 'GET' || req.method === 'HEAD') {
      if (table === JOURNAL_TABLE && journalReadDenied) denyRead();
      const row = table === CHANGE_TABLE ? changes.get(sysId) : table === TASK_TABLE ? tasks.get(sysId) : journalRows.find((entry) => entry.sys_id === sysId);
      if (!row) notFound();
      res.json({ result: render(table, row, options) });
      return;
    }
    if (!['PATCH', 'PUT', 'DELETE'].includes(req.method)) methodNotSupported(req);
    if (table === JOURNAL_TABLE) fail(403, 'User Not Authorized', 'ACL Exception Update Failed due to security constraints');
    if (table === TASK_TABLE) {
      if (req.method === 'DELETE') fail(403, 'User Not Authorized', 'ACL Exception Delete Failed due to security constraints');
      res.json({ result: renderPlain(updateTaskRow(sysId, readJsonBody(req), String(res.locals.user)), options) });
      return;
    }
    if (req.method === 'DELETE') {
      if (!changes.delete(sysId)) notFound();
      res.status(204).end();
      return;
    }
    // PUT on the Table API is a partial update too, exactly like PATCH.
    if (!changes.has(sysId)) notFound();
    const row = updateChangeRow(sysId, withoutDeniedFields(readJsonBody(req)), String(res.locals.user));
    res.json({ result: renderChange(row, options) });
  });

  function denyRead(): never {
    fail(403, 'User Not Authorized', `ACL Exception Read Failed due to security constraints: no read access to table ${JOURNAL_TABLE}`);
  }

  /** A field the user may not write is left out of the save, silently: the answer is 200 with the unchanged value. */
  function withoutDeniedFields(fields: Row): Row {
    return Object.fromEntries(Object.entries(fields).filter(([name]) => !writeDenied.has(name)));
  }

  // ---- Attachment API (reference/itsm-contracts.md) ----

  const ATTACHMENT_PATH = '/api/now/attachment';
  const ATTACHMENT_COLUMNS: ReadonlySet<string> = new Set(['sys_id', 'file_name', 'content_type', 'size_bytes', 'table_name', 'table_sys_id', 'hash', 'sys_created_on', 'sys_updated_on']);

  function renderAttachment(row: AttachmentRecord, req: Request): Record<string, string> {
    const meta: Record<string, string> = {};
    for (const [name, value] of Object.entries(row)) if (typeof value === 'string') meta[name] = value;
    return { ...meta, download_link: `${requestBaseUrl(req)}${ATTACHMENT_PATH}/${row.sys_id}/file` };
  }

  app.post(`${ATTACHMENT_PATH}/file`, (req, res) => {
    const tableName = queryString(req.query.table_name) ?? '';
    const tableSysId = queryString(req.query.table_sys_id) ?? '';
    const fileName = queryString(req.query.file_name) ?? '';
    const contentType = req.get('content-type') ?? '';
    if (!contentType) fail(400, 'Content-Type header is required', 'POST /attachment/file needs the Content-Type of the file');
    if (!tableName || !tableSysId || !fileName) fail(400, 'Missing parameters', 'table_name, table_sys_id and file_name are required');
    if (tableName !== CHANGE_TABLE) fail(400, `Invalid table ${tableName}`, '');
    if (!changes.has(tableSysId)) notFound();
    const raw: unknown = req.body;
    const content = Buffer.isBuffer(raw) ? raw : Buffer.alloc(0);
    const now = glideDateTime(new Date());
    const row: AttachmentRecord & { content: Buffer } = {
      sys_id: guid(),
      file_name: fileName,
      content_type: contentType,
      size_bytes: String(content.length),
      table_name: tableName,
      table_sys_id: tableSysId,
      download_link: '',
      hash: createHash('sha256').update(content).digest('hex'),
      sys_created_on: now,
      sys_created_by: String(res.locals.user),
      sys_updated_on: now,
      sys_mod_count: '0',
      content,
    };
    attachmentRows.push(row);
    res.setHeader('Location', `${requestBaseUrl(req)}${ATTACHMENT_PATH}/${row.sys_id}`);
    res.status(201).json({ result: renderAttachment(row, req) });
  });

  app.get(ATTACHMENT_PATH, (req, res) => {
    const matched = applyQuery(attachmentRows as unknown as Row[], parseQuery(queryString(req.query.sysparm_query) ?? '', ATTACHMENT_COLUMNS));
    const limit = nonNegativeInt(req.query.sysparm_limit) || DEFAULT_LIMIT;
    const offset = nonNegativeInt(req.query.sysparm_offset) ?? 0;
    setPaginationHeaders(req, res, matched.length, limit, offset);
    res.json({ result: matched.slice(offset, offset + limit).map((row) => renderAttachment(row as unknown as AttachmentRecord, req)) });
  });

  app.get(`${ATTACHMENT_PATH}/:sysId`, (req, res) => {
    const row = attachmentRows.find((a) => a.sys_id === String(req.params.sysId));
    if (!row) notFound();
    res.json({ result: renderAttachment(row, req) });
  });

  app.get(`${ATTACHMENT_PATH}/:sysId/file`, (req, res) => {
    const row = attachmentRows.find((a) => a.sys_id === String(req.params.sysId));
    if (!row) notFound();
    res.setHeader('Content-Type', row.content_type);
    res.send(row.content);
  });

  app.use((req, _res, next) => {
    next(new SimulatedApiError(400, 'Requested URI does not represent any resource', req.path));
  });

  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof SimulatedApiError) return sendError(res, err.status, err.envelopeMessage, err.detail);
    const status = (err as { status?: unknown }).status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      return sendError(res, status, 'Exception while reading request', (err as Error).message);
    }
    sendError(res, 500, 'Internal Server Error', err instanceof Error ? err.message : 'unexpected error');
  });

  // ---- test helpers (same code paths as the HTTP handlers, acting as the UI user "admin") ----

  const HELPER_USER = 'admin';

  return {
    app,
    deliveries,
    systemLog,
    async listen(port = 0, host = '127.0.0.1') {
      const entry: { server?: http.Server; port: number; host: string } = { port, host };
      await openPort(entry);
      ports.push(entry);
      const url = `http://${host.includes(':') ? `[${host}]` : host}:${entry.port}`;
      instanceUrl = url;
      return {
        url,
        close: async () => {
          ports.splice(ports.indexOf(entry), 1);
          await closePort(entry);
        },
      };
    },
    faults: {
      rateLimit({ count = Number.POSITIVE_INFINITY, retryAfterSeconds = 1 } = {}) {
        openWindow(count, (res) => {
          res.setHeader('Retry-After', String(retryAfterSeconds));
          res.setHeader('X-RateLimit-Limit', String(opts.rateLimitPerHour ?? 1000));
          res.setHeader('X-RateLimit-Reset', String(Math.floor(Date.now() / 1000) + retryAfterSeconds));
          res.setHeader('X-RateLimit-Rule', rateLimitRuleSysId);
          sendError(res, 429, 'Rate limit exceeded', 'Rate limit of requests per hour exceeded for this user (fault injected)');
        });
      },
      serverError({ status = 503, count = Number.POSITIVE_INFINITY, retryAfterSeconds } = {}) {
        openWindow(count, (res) => {
          if (retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(retryAfterSeconds));
          sendError(res, status, status === 503 ? 'Service Unavailable' : 'Internal Server Error', 'The instance is unavailable (fault injected)');
        });
      },
      refuseWrites() {
        writesRefused = true;
      },
      async refuseConnections() {
        await Promise.all(ports.map(closePort));
      },
      acceptConnections,
      holdAnswers({ match, until, count = 1 }) {
        if (count > 0) answerHolds.push({ remaining: count, match, until });
      },
      slowReplies(delayMs) {
        replyDelayMs = Math.max(0, delayMs);
      },
      async restore() {
        answerWindows = [];
        answerHolds = [];
        replyDelayMs = 0;
        writesRefused = false;
        await acceptConnections();
      },
      get injected() {
        return injected;
      },
    },
    oauth: {
      issued,
      get refusedBearer() {
        return refusedBearer;
      },
      expireAccessTokens() {
        for (const token of accessTokens.values()) token.expiresAt = 0;
      },
      revokeRefreshTokens() {
        refreshTokens.clear();
      },
    },
    createChange(fields) {
      return { ...insertChange(normaliseFields(fields), HELPER_USER) };
    },
    updateChange(sysId, fields) {
      return { ...updateChangeRow(sysId, normaliseFields(fields), HELPER_USER) };
    },
    getChange(sysId) {
      const row = changes.get(sysId);
      return row ? { ...row } : undefined;
    },
    findByNumber(number) {
      const row = [...changes.values()].find((r) => r.number === number);
      return row ? { ...row } : undefined;
    },
    journal(sysId, element) {
      return journalRows
        .filter((entry) => entry.element_id === sysId && (element === undefined || entry.element === element))
        .map((entry) => ({ ...entry }));
    },
    async waitForDeliveries() {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
    setProperty(name, value) {
      propertyOverrides.set(name, value);
    },
    setRuleActive(name, active) {
      if (active) inactiveRules.delete(name);
      else inactiveRules.add(name);
    },
    setClockOffset(ms) {
      clockOffsetMs = ms;
    },
    denyFieldWrite(fields) {
      writeDenied.clear();
      for (const f of fields) writeDenied.add(f);
    },
    denyJournalRead(deny) {
      journalReadDenied = deny;
    },
    tasks(changeSysId) {
      return [...tasks.values()].filter((t) => t.change_request === changeSysId).map((t) => ({ ...t }));
    },
    attachments(sysId) {
      return attachmentRows.filter((a) => a.table_sys_id === sysId).map((a) => ({ ...a, content: Buffer.from(a.content) }));
    },
  };
}
