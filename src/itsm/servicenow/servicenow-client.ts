import axios, { AxiosError, type AxiosInstance, type AxiosResponse, type InternalAxiosRequestConfig } from 'axios';
import { serverRetryDelay } from '../retry-timing';
import { OAuthTokenError, ServiceNowTokens } from './servicenow-oauth';

export interface ServiceNowClientOptions {
  /** Instance URL, e.g. https://acme.service-now.com (no credentials in it). */
  baseUrl: string;
  /** The integration user: basic auth, or the resource owner of the OAuth password grant. */
  username: string;
  password: string;
  timeoutMs?: number;
  /**
   * OAuth instead of basic auth (the default): tokens from `/oauth_token.do` (an Application Registry entry's client
   * id and secret), refreshed before they expire. `password` (default) uses the integration user above;
   * `client_credentials` needs the instance to enable that grant (Washington DC on, off by default).
   */
  oauth?: { clientId: string; clientSecret: string; grant?: 'password' | 'client_credentials' };
}

export type ServiceNowErrorKind = 'rate_limited' | 'transient' | 'refused' | 'not_found';

export interface JournalNote {
  sys_id: string;
  value: string;
  sys_created_on: string;
}

/** One error type for every ServiceNow failure; `kind` tells the caller whether trying again can help. */
export class ServiceNowError extends Error {
  readonly status?: number;
  readonly kind: ServiceNowErrorKind;
  readonly retryAfterMs?: number;
  readonly detail?: string;
  /** True when a before business rule aborted the write (HTTP 403 "Operation Failed"), e.g. the closure gate. */
  readonly businessRuleAbort: boolean;

  constructor(
    message: string,
    init: {
      kind: ServiceNowErrorKind;
      status?: number;
      retryAfterMs?: number;
      detail?: string;
      businessRuleAbort?: boolean;
      cause?: unknown;
    },
  ) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'ServiceNowError';
    this.kind = init.kind;
    this.status = init.status;
    this.retryAfterMs = init.retryAfterMs;
    this.detail = init.detail;
    this.businessRuleAbort = init.businessRuleAbort ?? false;
  }

  get retryable(): boolean {
    return this.kind === 'rate_limited' || this.kind === 'transient';
  }
}

const SYS_ID = /^[0-9a-f]{32}$/;
// Anchored and caret-free: a number is spliced into an encoded query, where `^` would start a new term.
const TASK_NUMBER = /^[A-Z]{2,8}\d{4,12}$/;
const CHANGE_PATH = '/api/now/table/change_request';
const TOKEN_PATH = '/oauth_token.do';
const JOURNAL_PATH = '/api/now/table/sys_journal_field';
const TASK_PATH = '/api/now/table/change_task';
const ATTACHMENT_PATH = '/api/now/attachment';
const GLIDE_DATE_TIME = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/;
// Spliced into an encoded query: no `^`, `=` or spaces.
const ATTACHMENT_NAME = /^[A-Za-z0-9._-]{1,100}$/;
const DEFAULT_TIMEOUT_MS = 10_000;
const REDACTED = '[redacted]';

/** Network failures that retrying cannot fix: the TLS setup or the URL itself is wrong. */
const CONFIGURATION_FAILURE = /CERT|SSL|TLS|ERR_INVALID_URL/;

function refuseInput(message: string): ServiceNowError {
  return new ServiceNowError(message, { kind: 'refused' });
}

function assertSysId(sysId: string): void {
  if (typeof sysId !== 'string' || !SYS_ID.test(sysId)) {
    throw refuseInput(`not a ServiceNow sys_id (32 lowercase hex characters): '${String(sysId).slice(0, 40)}'`);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function header(response: AxiosResponse, name: string): string | undefined {
  const value: unknown = (response.headers as Record<string, unknown>)[name];
  return typeof value === 'string' ? value : undefined;
}

/** Retry-After (seconds or HTTP-date) first; X-RateLimit-Reset (ServiceNow: UNIX epoch seconds) as the fallback. */
function retryAfterMs(response: AxiosResponse, nowMs: number): number | undefined {
  return serverRetryDelay((name) => header(response, name), nowMs);
}

/**
 * The axios error stays the `cause`, but it carries the request config (basic auth, a Bearer token, the token
 * request's form) and the raw Node request (whose header block holds the Authorization line): scrub the one and drop
 * the other, so logging or inspecting the chain cannot print the integration user's password or a token.
 */
function redact(err: AxiosError): AxiosError {
  const scrub = (config: InternalAxiosRequestConfig | undefined) => {
    if (!config) return;
    if (config.auth) config.auth = { username: config.auth.username, password: REDACTED };
    if (config.headers?.has?.('Authorization')) config.headers.set('Authorization', REDACTED);
    // The token request's form body holds the client secret, the password or the refresh token.
    if (config.url?.includes(TOKEN_PATH)) config.data = REDACTED;
  };
  scrub(err.config);
  scrub(err.response?.config);
  // A token endpoint's answer may hold tokens; the status and the error code are all a caller needs.
  if (err.response && err.config?.url?.includes(TOKEN_PATH)) err.response.data = REDACTED;
  // Dropped, not hidden: even a hidden property is printed by util.inspect with showHidden, and its header block holds
  // the Authorization line (basic credentials or a Bearer token).
  Object.defineProperty(err, 'request', { value: undefined, enumerable: false, configurable: true, writable: true });
  if (err.response) {
    Object.defineProperty(err.response, 'request', { value: undefined, enumerable: false, configurable: true, writable: true });
  }
  return err;
}

function envelope(data: unknown): { message?: string; detail?: string } {
  const error = isRecord(data) && isRecord(data.error) ? data.error : undefined;
  return {
    message: typeof error?.message === 'string' ? error.message : undefined,
    detail: typeof error?.detail === 'string' ? error.detail : undefined,
  };
}

function toServiceNowError(err: unknown, operation: string): ServiceNowError {
  if (!axios.isAxiosError(err)) {
    return new ServiceNowError(`ServiceNow ${operation} failed unexpectedly`, { kind: 'transient', cause: err });
  }
  const cause = redact(err);
  const response = err.response;
  if (!response) {
    const code = err.code ?? '';
    const timedOut = code === 'ECONNABORTED' || code === 'ETIMEDOUT';
    return new ServiceNowError(
      timedOut ? `ServiceNow ${operation} timed out` : `ServiceNow ${operation} failed: no response (${code || 'network error'})`,
      // Timeouts, ECONNREFUSED, ECONNRESET, DNS hiccups: the instance may well answer on the next attempt.
      { kind: CONFIGURATION_FAILURE.test(code) ? 'refused' : 'transient', cause },
    );
  }
  const status = response.status;
  const { message, detail } = envelope(response.data);
  const text = message ? (detail ? `${message}: ${detail}` : message) : `ServiceNow ${operation} failed with HTTP ${status}`;
  const base = { status, detail, cause };
  if (status === 429) return new ServiceNowError(text, { ...base, kind: 'rate_limited', retryAfterMs: retryAfterMs(response, Date.now()) });
  // A 503 (maintenance, an instance waking up) may say when to come back; other 5xx back off on the caller's terms.
  if (status >= 500) return new ServiceNowError(text, { ...base, kind: 'transient', retryAfterMs: retryAfterMs(response, Date.now()) });
  if (status === 404) return new ServiceNowError(text, { ...base, kind: 'not_found' });
  const businessRuleAbort = status === 403 && message === 'Operation Failed' && /aborted by Business Rule/.test(detail ?? '');
  return new ServiceNowError(text, { ...base, kind: 'refused', businessRuleAbort });
}

/** Outbound Table API client for change_request and its work notes. Every call is one HTTP request. */
/** One save's body: string fields and, on its own, a work note; refused before anything is sent when it is neither. */
function saveData(fields: Record<string, string>, note: string | undefined): Record<string, string> {
  if (!isRecord(fields) || Object.values(fields).some((v) => typeof v !== 'string') || 'work_notes' in fields) {
    throw refuseInput('change fields must be an object of strings, the work note passed on its own');
  }
  if (note !== undefined && (typeof note !== 'string' || note.trim() === '')) throw refuseInput('work note text must not be empty');
  const data = note === undefined ? fields : { ...fields, work_notes: note };
  if (Object.keys(data).length === 0) throw refuseInput('nothing to write: no fields and no work note');
  return data;
}

/** Spliced into an encoded query: no `^`, `=` or anything else a query could be built from. */
const CORRELATION_ID = /^[A-Za-z0-9._:-]{1,100}$/;

export class ServiceNowClient {
  private readonly http: AxiosInstance;
  /** Set with OAuth: the Table API gets a Bearer token instead of basic auth. */
  private readonly tokens?: ServiceNowTokens;

  constructor(opts: ServiceNowClientOptions) {
    const base = new URL(opts.baseUrl);
    if (base.username || base.password) throw new Error('ServiceNow baseUrl must not carry credentials; pass username/password');
    this.http = axios.create({
      baseURL: base.origin + base.pathname.replace(/\/+$/, ''),
      ...(opts.oauth ? {} : { auth: { username: opts.username, password: opts.password } }),
      timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      headers: { Accept: 'application/json' },
      maxRedirects: 0,
    });
    if (opts.oauth) {
      const { clientId, clientSecret, grant = 'password' } = opts.oauth;
      this.tokens = new ServiceNowTokens(this.http, { clientId, clientSecret, grant, username: opts.username, password: opts.password });
    }
  }

  async getChange(sysId: string): Promise<Record<string, unknown>> {
    assertSysId(sysId);
    return this.expectObject(await this.send('GET', `${CHANGE_PATH}/${sysId}`), 'GET change_request');
  }

  async findChangeByNumber(number: string): Promise<Record<string, unknown> | null> {
    if (typeof number !== 'string' || !TASK_NUMBER.test(number)) {
      throw refuseInput(`not a ServiceNow task number (e.g. CHG0030001): '${String(number).slice(0, 40)}'`);
    }
    const result = await this.send('GET', CHANGE_PATH, { params: { sysparm_query: `number=${number}`, sysparm_limit: '1' } });
    const rows = this.expectArray(result, 'GET change_request');
    return rows.length > 0 ? this.expectObject(rows[0], 'GET change_request') : null;
  }

  /** Creates a change_request (the business rules run as for a person's save); answers with the saved record. */
  async createChange(fields: Record<string, string>): Promise<Record<string, unknown>> {
    if (!isRecord(fields) || Object.values(fields).some((v) => typeof v !== 'string')) {
      throw refuseInput('change fields must be an object of strings');
    }
    return this.expectObject(await this.send('POST', CHANGE_PATH, { data: fields }), 'POST change_request');
  }

  /** The change an integration opened under `correlationId` (task.correlation_id), if any. */
  async findChangeByCorrelation(correlationId: string): Promise<Record<string, unknown> | null> {
    if (typeof correlationId !== 'string' || !CORRELATION_ID.test(correlationId)) {
      throw refuseInput(`not a correlation id (1-100 of letters, digits, '.', ':', '_', '-'): '${String(correlationId).slice(0, 40)}'`);
    }
    const result = await this.send('GET', CHANGE_PATH, { params: { sysparm_query: `correlation_id=${correlationId}`, sysparm_limit: '1' } });
    const rows = this.expectArray(result, 'GET change_request');
    return rows.length > 0 ? this.expectObject(rows[0], 'GET change_request') : null;
  }

  async updateChange(sysId: string, fields: Record<string, string>): Promise<Record<string, unknown>> {
    assertSysId(sysId);
    if (!isRecord(fields) || Object.values(fields).some((v) => typeof v !== 'string')) {
      throw refuseInput('change fields must be an object of strings');
    }
    return this.expectObject(await this.send('PATCH', `${CHANGE_PATH}/${sysId}`, { data: fields }), 'PATCH change_request');
  }

  // ---- change tasks (an emergency exception's Post Implementation Review) ----

  /** The change_task of a change that an integration opened under `correlationId`, if any. */
  async findTaskByCorrelation(changeSysId: string, correlationId: string): Promise<Record<string, unknown> | null> {
    assertSysId(changeSysId);
    if (typeof correlationId !== 'string' || !CORRELATION_ID.test(correlationId)) {
      throw refuseInput(`not a correlation id (1-100 of letters, digits, '.', ':', '_', '-'): '${String(correlationId).slice(0, 40)}'`);
    }
    const result = await this.send('GET', TASK_PATH, {
      params: { sysparm_query: `change_request=${changeSysId}^correlation_id=${correlationId}`, sysparm_limit: '1', sysparm_fields: 'sys_id,number,state,close_code' },
    });
    const rows = this.expectArray(result, 'GET change_task');
    return rows.length > 0 ? this.expectObject(rows[0], 'GET change_task') : null;
  }

  async createTask(fields: Record<string, string>): Promise<Record<string, unknown>> {
    if (!isRecord(fields) || Object.values(fields).some((v) => typeof v !== 'string')) throw refuseInput('task fields must be an object of strings');
    assertSysId(fields.change_request ?? '');
    return this.expectObject(await this.send('POST', TASK_PATH, { data: fields }), 'POST change_task');
  }

  /** Saves `fields` on a change_task, answered with the fields as saved (a dropped field shows there). */
  async updateTask(sysId: string, fields: Record<string, string>): Promise<Record<string, unknown>> {
    assertSysId(sysId);
    if (!isRecord(fields) || Object.values(fields).some((v) => typeof v !== 'string')) throw refuseInput('task fields must be an object of strings');
    return this.expectObject(await this.send('PATCH', `${TASK_PATH}/${sysId}`, { data: fields, params: { sysparm_fields: ['sys_id', ...Object.keys(fields)].join(',') } }), 'PATCH change_task');
  }

  async addWorkNote(sysId: string, text: string): Promise<void> {
    assertSysId(sysId);
    // ServiceNow silently drops an empty journal entry; refusing makes the caller's bug visible.
    if (typeof text !== 'string' || text.trim() === '') throw refuseInput('work note text must not be empty');
    await this.send('PATCH', `${CHANGE_PATH}/${sysId}`, { data: { work_notes: text }, params: { sysparm_fields: 'sys_id' } });
  }

  /**
   * One save of `fields` and, when given, a work note: ServiceNow applies both and runs its business rules once, so
   * either both land or neither does. Answers with the sys_id only, as addWorkNote does.
   */
  async updateChangeWithWorkNote(sysId: string, fields: Record<string, string>, note?: string): Promise<void> {
    assertSysId(sysId);
    const data = saveData(fields, note);
    await this.send('PATCH', `${CHANGE_PATH}/${sysId}`, { data, params: { sysparm_fields: 'sys_id' } });
  }

  async listWorkNotes(sysId: string): Promise<JournalNote[]> {
    assertSysId(sysId);
    const result = await this.send('GET', JOURNAL_PATH, {
      params: {
        sysparm_query: `element_id=${sysId}^element=work_notes^ORDERBYsys_created_on`,
        sysparm_fields: 'sys_id,value,sys_created_on',
      },
    });
    return this.expectArray(result, 'GET sys_journal_field').map((row) => {
      const entry = this.expectObject(row, 'GET sys_journal_field');
      const { sys_id, value, sys_created_on } = entry;
      if (typeof sys_id !== 'string' || typeof value !== 'string' || typeof sys_created_on !== 'string') {
        throw new ServiceNowError('ServiceNow returned a journal entry without sys_id, value or sys_created_on', { kind: 'transient' });
      }
      return { sys_id, value, sys_created_on };
    });
  }

  // ---- reconciliation, read-back, readiness and attachments ----

  /**
   * One page of change_requests updated at or after `since` (a UTC glide_date_time, `2025-06-02 22:00:00`), in the
   * stable order (sys_updated_on, sys_id), as the Table API returns them (display values off): the shape the webhook
   * rule sends.
   */
  async listChangesUpdatedSince(since: string, page: { limit: number; offset: number }): Promise<Array<Record<string, unknown>>> {
    if (!GLIDE_DATE_TIME.test(since)) throw refuseInput(`not a glide_date_time (YYYY-MM-DD HH:MM:SS): '${String(since).slice(0, 40)}'`);
    const result = await this.send('GET', CHANGE_PATH, {
      params: {
        sysparm_query: `sys_updated_on>=${since}^ORDERBYsys_updated_on^ORDERBYsys_id`,
        sysparm_display_value: 'false',
        sysparm_limit: String(page.limit),
        sysparm_offset: String(page.offset),
      },
    });
    return this.expectArray(result, 'GET change_request').map((row) => this.expectObject(row, 'GET change_request'));
  }

  /**
   * One save of `fields` and, when given, a work note, answered with the record as saved (the fields named in
   * `readBack`): a field the integration user may not write is dropped by a field ACL with HTTP 200, so only the
   * answer shows whether the value landed.
   */
  async updateChangeReadBack(sysId: string, fields: Record<string, string>, note: string | undefined, readBack: string[]): Promise<Record<string, unknown>> {
    assertSysId(sysId);
    const data = saveData(fields, note);
    const result = await this.send('PATCH', `${CHANGE_PATH}/${sysId}`, { data, params: { sysparm_fields: ['sys_id', ...readBack].join(',') } });
    return this.expectObject(result, 'PATCH change_request');
  }

  /** Reads one work-note journal entry: fails with the Table API's refusal when the user may not read sys_journal_field. */
  async probeJournalRead(): Promise<void> {
    const result = await this.send('GET', JOURNAL_PATH, {
      params: { sysparm_query: 'name=change_request^element=work_notes', sysparm_fields: 'sys_id', sysparm_limit: '1', sysparm_no_count: 'true' },
    });
    this.expectArray(result, 'GET sys_journal_field');
  }

  /** The attachments of a change with this file name (Attachment API). */
  async findAttachments(sysId: string, fileName: string): Promise<Array<Record<string, unknown>>> {
    assertSysId(sysId);
    if (!ATTACHMENT_NAME.test(fileName)) throw refuseInput(`not an attachment file name the gateway writes: '${String(fileName).slice(0, 80)}'`);
    const result = await this.send('GET', ATTACHMENT_PATH, {
      params: { sysparm_query: `table_name=change_request^table_sys_id=${sysId}^file_name=${fileName}`, sysparm_limit: '10' },
    });
    return this.expectArray(result, 'GET attachment').map((row) => this.expectObject(row, 'GET attachment'));
  }

  /** Uploads a file to a change: `POST /api/now/attachment/file`, raw bytes, Content-Type mandatory. */
  async uploadAttachment(sysId: string, fileName: string, contentType: string, content: Buffer): Promise<Record<string, unknown>> {
    assertSysId(sysId);
    if (!ATTACHMENT_NAME.test(fileName)) throw refuseInput(`not an attachment file name the gateway writes: '${String(fileName).slice(0, 80)}'`);
    const result = await this.send('POST', `${ATTACHMENT_PATH}/file`, {
      params: { table_name: 'change_request', table_sys_id: sysId, file_name: fileName },
      data: content,
      headers: { 'Content-Type': contentType },
    });
    return this.expectObject(result, 'POST attachment');
  }

  private async send(
    method: 'GET' | 'PATCH' | 'POST',
    path: string,
    options: { params?: Record<string, string>; data?: unknown; headers?: Record<string, string> } = {},
  ): Promise<unknown> {
    const operation = `${method} ${path}`;
    let response: AxiosResponse;
    try {
      response = await this.authorized((headers) => this.http.request({ method, url: path, params: options.params, data: options.data, headers: { ...options.headers, ...headers } }));
    } catch (err) {
      if (err instanceof OAuthTokenError) throw new ServiceNowError(err.message, { kind: err.kind, status: err.status, retryAfterMs: err.retryAfterMs });
      throw toServiceNowError(err, operation);
    }
    // A hibernating or misrouted instance answers 200 with an HTML page; that is not a result to trust.
    if (!isRecord(response.data) || !('result' in response.data)) {
      throw new ServiceNowError(`ServiceNow ${operation} answered HTTP ${response.status} without a result envelope`, {
        kind: 'transient',
        status: response.status,
      });
    }
    return response.data.result;
  }

  /**
   * Runs `request` with the credentials: basic auth as configured, or a Bearer token. A token the instance no longer
   * accepts (401: revoked, or expired before its announced lifetime) is replaced once and the request sent again.
   */
  private async authorized(request: (headers: Record<string, string>) => Promise<AxiosResponse>): Promise<AxiosResponse> {
    const tokens = this.tokens;
    if (!tokens) return request({});
    const access = await tokens.accessToken();
    try {
      return await request({ Authorization: `Bearer ${access}` });
    } catch (err) {
      if (!axios.isAxiosError(err) || err.response?.status !== 401) throw err;
      redact(err);
      tokens.invalidate(access);
      return request({ Authorization: `Bearer ${await tokens.accessToken()}` });
    }
  }

  private expectObject(value: unknown, operation: string): Record<string, unknown> {
    if (!isRecord(value)) throw new ServiceNowError(`ServiceNow ${operation} returned a result that is not a record`, { kind: 'transient' });
    return value;
  }

  private expectArray(value: unknown, operation: string): unknown[] {
    if (!Array.isArray(value)) throw new ServiceNowError(`ServiceNow ${operation} returned a result that is not a list`, { kind: 'transient' });
    return value;
  }
}
