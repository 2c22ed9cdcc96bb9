import axios, { type AxiosInstance, type AxiosResponse, type InternalAxiosRequestConfig, type AxiosError } from 'axios';
import type { WriteBackErrorKind } from '../source';
import { type AdfDoc, adfText } from './jira-adf';

/** Basic auth with an Atlassian account's e-mail and API token, against the site URL. */
export interface JiraBasicAuth {
  kind: 'basic';
  /** https://your-site.atlassian.net (no credentials in it). */
  siteUrl: string;
  email: string;
  apiToken: string;
}

/** OAuth 2.0 (3LO): the API is reached through api.atlassian.com/ex/jira/{cloudId} with a bearer token. */
export interface JiraOAuth {
  kind: 'oauth';
  cloudId: string;
  accessToken: string;
  /** Default https://api.atlassian.com; a test points it elsewhere. */
  apiGateway?: string;
}

export type JiraAuth = JiraBasicAuth | JiraOAuth;

const CLOUD_ID = /^[0-9a-fA-F-]{8,64}$/;
const ISSUE_REF = /^(?:\d{1,18}|[A-Z][A-Z0-9_]{1,9}-[1-9]\d{0,11})$/;
const PROPERTY_KEY = /^[A-Za-z0-9._-]{1,255}$/;
const DEFAULT_TIMEOUT_MS = 10_000;
const REDACTED = '[redacted]';
const CONFIGURATION_FAILURE = /CERT|SSL|TLS|ERR_INVALID_URL/;

/** The base URL every REST path hangs off, for either kind of auth. */
export function jiraBaseUrl(auth: JiraAuth): string {
  if (auth.kind === 'oauth') {
    if (!CLOUD_ID.test(auth.cloudId)) throw new Error('Jira cloudId must be the site id from accessible-resources (hex and dashes)');
    return `${(auth.apiGateway ?? 'https://api.atlassian.com').replace(/\/+$/, '')}/ex/jira/${auth.cloudId}`;
  }
  const url = new URL(auth.siteUrl);
  if (url.username || url.password) throw new Error('Jira siteUrl must not carry credentials; pass email and apiToken');
  return url.origin + url.pathname.replace(/\/+$/, '');
}

/** One error type for every Jira failure; `kind` is the write-back kind it maps to. */
export class JiraError extends Error {
  readonly status?: number;
  readonly kind: WriteBackErrorKind;
  readonly retryAfterMs?: number;
  /** Jira's ErrorCollection, as sent: messages and field errors. */
  readonly errorMessages: string[];
  readonly errors: Record<string, string>;

  constructor(message: string, init: { kind: WriteBackErrorKind; status?: number; retryAfterMs?: number; errorMessages?: string[]; errors?: Record<string, string>; cause?: unknown }) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'JiraError';
    this.kind = init.kind;
    this.status = init.status;
    this.retryAfterMs = init.retryAfterMs;
    this.errorMessages = init.errorMessages ?? [];
    this.errors = init.errors ?? {};
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function header(response: AxiosResponse, name: string): string | undefined {
  const value: unknown = (response.headers as Record<string, unknown>)[name];
  return typeof value === 'string' ? value : undefined;
}

/** Retry-After in seconds (or an HTTP date) first; Jira's X-RateLimit-Reset is an ISO-8601 instant. */
export function retryAfterMs(headers: { retryAfter?: string; rateLimitReset?: string }, nowMs: number): number | undefined {
  const retryAfter = headers.retryAfter?.trim();
  if (retryAfter) {
    if (/^\d+$/.test(retryAfter)) return Number(retryAfter) * 1000;
    const at = Date.parse(retryAfter);
    if (!Number.isNaN(at)) return Math.max(0, at - nowMs);
  }
  const reset = headers.rateLimitReset?.trim();
  if (reset && /^\d{4}-\d{2}-\d{2}T/.test(reset)) {
    const at = Date.parse(reset);
    if (!Number.isNaN(at)) return Math.max(0, at - nowMs);
  }
  return undefined;
}

/** Keeps the axios error as the cause without the Authorization header (basic or bearer) it carries. */
function redact(err: AxiosError): AxiosError {
  const scrub = (config: InternalAxiosRequestConfig | undefined) => {
    if (!config) return;
    if (config.auth) config.auth = { username: config.auth.username, password: REDACTED };
    if (config.headers?.has?.('Authorization')) config.headers.set('Authorization', REDACTED);
  };
  scrub(err.config);
  scrub(err.response?.config);
  Object.defineProperty(err, 'request', { value: err.request, enumerable: false, configurable: true, writable: true });
  if (err.response) Object.defineProperty(err.response, 'request', { value: err.response.request, enumerable: false, configurable: true, writable: true });
  return err;
}

function errorCollection(data: unknown): { errorMessages: string[]; errors: Record<string, string> } {
  const messages = isRecord(data) && Array.isArray(data.errorMessages) ? data.errorMessages.filter((m): m is string => typeof m === 'string') : [];
  const errors: Record<string, string> = {};
  if (isRecord(data) && isRecord(data.errors)) for (const [k, v] of Object.entries(data.errors)) if (typeof v === 'string') errors[k] = v;
  return { errorMessages: messages, errors };
}

export function toJiraError(err: unknown, operation: string, nowMs = Date.now()): JiraError {
  if (err instanceof JiraError) return err;
  if (!axios.isAxiosError(err)) return new JiraError(`Jira ${operation} failed unexpectedly`, { kind: 'transient', cause: err });
  const cause = redact(err);
  const response = err.response;
  if (!response) {
    const code = err.code ?? '';
    const timedOut = code === 'ECONNABORTED' || code === 'ETIMEDOUT';
    return new JiraError(timedOut ? `Jira ${operation} timed out` : `Jira ${operation} failed: no response (${code || 'network error'})`, {
      kind: CONFIGURATION_FAILURE.test(code) ? 'refused' : 'transient',
      cause,
    });
  }
  const status = response.status;
  const { errorMessages, errors } = errorCollection(response.data);
  const said = [...errorMessages, ...Object.entries(errors).map(([k, v]) => `${k}: ${v}`)].join('; ');
  const text = said ? `Jira ${operation} failed with HTTP ${status}: ${said}` : `Jira ${operation} failed with HTTP ${status}`;
  const wait = retryAfterMs({ retryAfter: header(response, 'retry-after'), rateLimitReset: header(response, 'x-ratelimit-reset') }, nowMs);
  const base = { status, errorMessages, errors, cause };
  if (status === 429) return new JiraError(text, { ...base, kind: 'rate_limited', retryAfterMs: wait });
  // Some 503s carry Retry-After: wait as told, like a rate limit.
  if (status >= 500) return new JiraError(text, { ...base, kind: wait !== undefined ? 'rate_limited' : 'transient', retryAfterMs: wait });
  if (status === 404) return new JiraError(text, { ...base, kind: 'not_found' });
  if (status === 408 || status === 409 || status === 425) return new JiraError(text, { ...base, kind: 'transient' });
  return new JiraError(text, { ...base, kind: 'refused' });
}

function assertIssue(ref: string): void {
  if (typeof ref !== 'string' || !ISSUE_REF.test(ref)) throw new JiraError(`not a Jira issue id or key: '${String(ref).slice(0, 40)}'`, { kind: 'refused' });
}

export interface JiraStatus {
  id: string;
  name: string;
  /** new | indeterminate | done */
  category: string;
}

export interface JiraTransition {
  id: string;
  name: string;
  to: { id: string; name: string; category?: string };
}

export interface JiraComment {
  id: string;
  text: string;
}

export interface JiraApproval {
  id: string;
  name: string;
  finalDecision: 'pending' | 'approved' | 'declined';
}

/** Jira Cloud REST v3 (and the JSM approval API): one HTTP request per call, errors as JiraError. */
export class JiraClient {
  private readonly http: AxiosInstance;
  readonly baseUrl: string;

  constructor(auth: JiraAuth, opts: { timeoutMs?: number } = {}) {
    this.baseUrl = jiraBaseUrl(auth);
    this.http = axios.create({
      baseURL: this.baseUrl,
      ...(auth.kind === 'basic' ? { auth: { username: auth.email, password: auth.apiToken } } : { headers: { Authorization: `Bearer ${auth.accessToken}` } }),
      timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      maxRedirects: 0,
    });
    this.http.defaults.headers.common.Accept = 'application/json';
  }

  async getIssue(issue: string, fields: string[]): Promise<{ id: string; key: string; fields: Record<string, unknown> }> {
    assertIssue(issue);
    const data = await this.send('GET', `/rest/api/3/issue/${issue}`, { params: { fields: fields.join(',') } });
    if (!isRecord(data) || typeof data.id !== 'string' || typeof data.key !== 'string' || !isRecord(data.fields)) {
      throw new JiraError('Jira GET issue returned no id, key or fields', { kind: 'transient' });
    }
    return { id: data.id, key: data.key, fields: data.fields };
  }

  /** Creates an issue (POST /rest/api/3/issue): 201 with its id and key. */
  async createIssue(fields: Record<string, unknown>): Promise<{ id: string; key: string }> {
    const data = await this.send('POST', '/rest/api/3/issue', { data: { fields } });
    if (!isRecord(data) || typeof data.id !== 'string' || typeof data.key !== 'string') throw new JiraError('Jira POST issue returned no id or key', { kind: 'transient' });
    return { id: data.id, key: data.key };
  }

  /** The first page of a JQL search (GET /rest/api/3/search/jql), ids and keys only. */
  async searchIssues(jql: string, maxResults = 10): Promise<Array<{ id: string; key: string }>> {
    const data = await this.send('GET', '/rest/api/3/search/jql', { params: { jql, fields: 'summary', maxResults: String(maxResults) } });
    if (!isRecord(data) || !Array.isArray(data.issues)) throw new JiraError('Jira JQL search returned no issues list', { kind: 'transient' });
    return data.issues.filter(isRecord).filter((i) => typeof i.id === 'string' && typeof i.key === 'string').map((i) => ({ id: String(i.id), key: String(i.key) }));
  }

  /**
   * One page of a JQL search with each issue's `updated` (GET /rest/api/3/search/jql): the next page is asked for with
   * the `nextPageToken` the last one gave; none means this was the last.
   */
  async searchUpdated(jql: string, opts: { maxResults: number; nextPageToken?: string }): Promise<{ issues: Array<{ id: string; key: string; updated: string }>; nextPageToken?: string }> {
    const params: Record<string, string> = { jql, fields: 'updated', maxResults: String(opts.maxResults) };
    if (opts.nextPageToken) params.nextPageToken = opts.nextPageToken;
    const data = await this.send('GET', '/rest/api/3/search/jql', { params });
    if (!isRecord(data) || !Array.isArray(data.issues)) throw new JiraError('Jira JQL search returned no issues list', { kind: 'transient' });
    const issues = data.issues
      .filter(isRecord)
      .filter((i) => typeof i.id === 'string' && typeof i.key === 'string' && isRecord(i.fields) && typeof i.fields.updated === 'string')
      .map((i) => ({ id: String(i.id), key: String(i.key), updated: String((i.fields as Record<string, unknown>).updated) }));
    const next = typeof data.nextPageToken === 'string' && data.nextPageToken !== '' && data.isLast !== true ? data.nextPageToken : undefined;
    return { issues, ...(next ? { nextPageToken: next } : {}) };
  }

  /** Every status the project's issue types use, with its category. */
  async projectStatuses(projectKey: string): Promise<JiraStatus[]> {
    const data = await this.send('GET', `/rest/api/3/project/${encodeURIComponent(projectKey)}/statuses`);
    if (!Array.isArray(data)) throw new JiraError('Jira GET project statuses returned no list', { kind: 'transient' });
    const byName = new Map<string, JiraStatus>();
    for (const type of data) {
      for (const s of isRecord(type) && Array.isArray(type.statuses) ? type.statuses : []) {
        if (isRecord(s) && typeof s.name === 'string' && typeof s.id === 'string') {
          const category = isRecord(s.statusCategory) && typeof s.statusCategory.key === 'string' ? s.statusCategory.key : '';
          byName.set(s.name, { id: s.id, name: s.name, category });
        }
      }
    }
    return [...byName.values()];
  }

  /** All comments, page by page, as plain text (the marker search reads them). */
  async listComments(issue: string): Promise<JiraComment[]> {
    assertIssue(issue);
    const out: JiraComment[] = [];
    for (let startAt = 0; ; ) {
      const data = await this.send('GET', `/rest/api/3/issue/${issue}/comment`, { params: { startAt: String(startAt), maxResults: '100' } });
      if (!isRecord(data) || !Array.isArray(data.comments)) throw new JiraError('Jira GET comments returned no comments list', { kind: 'transient' });
      for (const c of data.comments) if (isRecord(c) && typeof c.id === 'string') out.push({ id: c.id, text: typeof c.body === 'string' ? c.body : adfText(c.body) });
      const total = typeof data.total === 'number' ? data.total : out.length;
      startAt += data.comments.length;
      if (data.comments.length === 0 || startAt >= total) return out;
    }
  }

  async addComment(issue: string, body: AdfDoc): Promise<{ id: string }> {
    assertIssue(issue);
    const data = await this.send('POST', `/rest/api/3/issue/${issue}/comment`, { data: { body } });
    return { id: isRecord(data) && typeof data.id === 'string' ? data.id : '' };
  }

  async getProperty(issue: string, key: string): Promise<unknown> {
    assertIssue(issue);
    if (!PROPERTY_KEY.test(key)) throw new JiraError(`not an issue property key: '${key.slice(0, 40)}'`, { kind: 'refused' });
    try {
      const data = await this.send('GET', `/rest/api/3/issue/${issue}/properties/${encodeURIComponent(key)}`);
      return isRecord(data) ? data.value : undefined;
    } catch (err) {
      // A missing property is 404 on an issue that exists: say "unset", as the validator's `?.` does.
      if (err instanceof JiraError && err.kind === 'not_found' && err.errorMessages.some((m) => /property/i.test(m))) return undefined;
      throw err;
    }
  }

  async setProperty(issue: string, key: string, value: unknown): Promise<void> {
    assertIssue(issue);
    if (!PROPERTY_KEY.test(key)) throw new JiraError(`not an issue property key: '${key.slice(0, 40)}'`, { kind: 'refused' });
    const json = JSON.stringify(value);
    if (json.length > 32_768) throw new JiraError(`issue property ${key} would be ${json.length} characters; Jira allows 32768`, { kind: 'refused' });
    await this.send('PUT', `/rest/api/3/issue/${issue}/properties/${encodeURIComponent(key)}`, { data: value });
  }

  async transitions(issue: string): Promise<JiraTransition[]> {
    assertIssue(issue);
    const data = await this.send('GET', `/rest/api/3/issue/${issue}/transitions`);
    if (!isRecord(data) || !Array.isArray(data.transitions)) throw new JiraError('Jira GET transitions returned no transitions list', { kind: 'transient' });
    return data.transitions.filter(isRecord).map((t) => {
      const to = isRecord(t.to) ? t.to : {};
      return {
        id: String(t.id),
        name: String(t.name),
        to: { id: String(to.id), name: String(to.name), category: isRecord(to.statusCategory) ? String(to.statusCategory.key) : undefined },
      };
    });
  }

  async transition(issue: string, transitionId: string): Promise<void> {
    assertIssue(issue);
    await this.send('POST', `/rest/api/3/issue/${issue}/transitions`, { data: { transition: { id: transitionId } } });
  }

  /** Looks the transition up on this issue by the status it leads to (ids differ per workflow), then takes it. */
  async transitionTo(issue: string, statusName: string): Promise<void> {
    const available = await this.transitions(issue);
    const match = available.find((t) => t.to.name === statusName) ?? available.find((t) => t.name === statusName);
    if (!match) {
      throw new JiraError(`no transition from the issue's status to '${statusName}' (available: ${available.map((t) => `${t.name} → ${t.to.name}`).join(', ') || 'none'})`, { kind: 'refused' });
    }
    await this.transition(issue, match.id);
  }

  /** The JSM approvals of a request; an issue that is not a service request has none (404). */
  async approvals(issue: string): Promise<JiraApproval[]> {
    assertIssue(issue);
    const out: JiraApproval[] = [];
    for (let start = 0; ; ) {
      let data: unknown;
      try {
        data = await this.send('GET', `/rest/servicedeskapi/request/${issue}/approval`, { params: { start: String(start), limit: '50' } });
      } catch (err) {
        if (err instanceof JiraError && err.kind === 'not_found') return out;
        throw err;
      }
      if (!isRecord(data) || !Array.isArray(data.values)) throw new JiraError('JSM GET approvals returned no values', { kind: 'transient' });
      for (const a of data.values) {
        if (!isRecord(a)) continue;
        const decision = a.finalDecision;
        if (decision !== 'pending' && decision !== 'approved' && decision !== 'declined') {
          throw new JiraError(`JSM approval ${String(a.id)} has finalDecision '${String(decision)}'`, { kind: 'transient' });
        }
        out.push({ id: String(a.id), name: String(a.name ?? ''), finalDecision: decision });
      }
      start += data.values.length;
      if (data.isLastPage !== false || data.values.length === 0) return out;
    }
  }

  private async send(method: 'GET' | 'POST' | 'PUT', path: string, options: { params?: Record<string, string>; data?: unknown } = {}): Promise<unknown> {
    const operation = `${method} ${path.replace(/\/issue\/[^/]+/, '/issue/{issue}').replace(/\/request\/[^/]+/, '/request/{issue}')}`;
    let response: AxiosResponse;
    try {
      response = await this.http.request({ method, url: path, params: options.params, data: options.data, headers: options.data !== undefined ? { 'Content-Type': 'application/json' } : {} });
    } catch (err) {
      throw toJiraError(err, operation);
    }
    if (response.status === 204) return undefined;
    const type = header(response, 'content-type') ?? '';
    // A site behind a login page answers 200 with HTML; that is not a result to trust.
    if (response.data !== '' && response.data !== undefined && !/json/.test(type)) {
      throw new JiraError(`Jira ${operation} answered HTTP ${response.status} without JSON`, { kind: 'transient', status: response.status });
    }
    return response.data;
  }
}
