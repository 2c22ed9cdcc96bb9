import { randomInt, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import axios from 'axios';
import express, { type NextFunction, type Request, type Response } from 'express';
import { holdAnswerIf } from '../answer-hold';
import { adfProblems, adfText } from './jira-adf';
import { GATE_PROPERTY } from './jira-settings';
import { HUB_SIGNATURE_HEADER, WEBHOOK_ID_HEADER, WEBHOOK_RETRY_HEADER, signJiraWebhook } from './jira-signature';
import { formatJiraDateTime } from './jira-version';

/**
 * An in-memory Jira Cloud site with one Jira Service Management change project, for tests and local demos: REST v3
 * issues, comments (ADF), issue properties, transitions through a configurable workflow whose guarded transitions run
 * the changegate validator's expression, JSM approvals, ErrorCollection errors, rate limits, and admin webhooks signed
 * with X-Hub-Signature and retried with the same X-Atlassian-Webhook-Identifier. It follows
 * reference/itsm-contracts.md; it is not a general Jira emulator.
 */

export type StatusCategory = 'new' | 'indeterminate' | 'done';

export interface SimStatus {
  id: string;
  name: string;
  category: StatusCategory;
}

export interface SimTransition {
  id: string;
  name: string;
  /** Status names it is offered from; 'any' for a global transition. */
  from: string[] | 'any';
  to: string;
  /** Runs the workflow validator `issue.properties['changegate.gate']?.passed == true`. */
  validated?: boolean;
}

export interface SimWorkflow {
  statuses: Array<{ name: string; category: StatusCategory }>;
  /** The status a new issue starts in. */
  initial: string;
  transitions: SimTransition[];
}

export const CHANGE_TYPE_FIELD = 'customfield_10005';
export const ACTIONS_FIELD = 'customfield_10050';
export const PLANNED_END_FIELD = 'customfield_10061';
export const CHANGE_ISSUE_TYPE = '[System] Change';
export const INTEGRATION_ACCOUNT_ID = '557058:changegate-integration';
/** What the validator says when it refuses (a Jira expression's string result is shown to the user). */
export const VALIDATOR_MESSAGE = 'changegate: identity cleanup is not proven yet (issue property changegate.gate is not passed); see the changegate comments on this issue.';

export const DEFAULT_WORKFLOW: SimWorkflow = {
  statuses: [
    { name: 'Planning', category: 'new' },
    { name: 'Authorize', category: 'indeterminate' },
    { name: 'Awaiting implementation', category: 'indeterminate' },
    { name: 'Implementing', category: 'indeterminate' },
    { name: 'Review', category: 'indeterminate' },
    { name: 'Completed', category: 'done' },
    { name: 'Canceled', category: 'done' },
    { name: 'Declined', category: 'done' },
  ],
  initial: 'Planning',
  transitions: [
    { id: '11', name: 'Request authorization', from: ['Planning'], to: 'Authorize' },
    { id: '21', name: 'Authorize', from: ['Authorize'], to: 'Awaiting implementation' },
    { id: '31', name: 'Start implementation', from: ['Awaiting implementation'], to: 'Implementing' },
    { id: '41', name: 'Review', from: ['Implementing'], to: 'Review' },
    { id: '51', name: 'Complete', from: ['Implementing', 'Review'], to: 'Completed', validated: true },
    { id: '61', name: 'Cancel', from: ['Planning', 'Authorize', 'Awaiting implementation', 'Implementing', 'Review'], to: 'Canceled' },
    { id: '71', name: 'Decline', from: ['Authorize'], to: 'Declined' },
    { id: '81', name: 'Back to implementation', from: ['Completed'], to: 'Implementing' },
  ],
};

export interface JiraSimulatorOptions {
  email: string;
  apiToken: string;
  /** OAuth 2.0 (3LO): served under /ex/jira/{cloudId} with this bearer token. */
  oauth?: { cloudId: string; accessToken: string };
  projectKey?: string;
  workflow?: SimWorkflow;
  /** Where signed webhooks go; settable later (the gateway's URL is known after the simulator starts). */
  webhook?: { url: string; secret: string };
  /** Keeps the next issue number here, so that a restarted simulator never hands out a key it gave before. */
  stateFile?: string;
  /** Webhook attempts per event (Jira retries 408, 409, 425, 429, 5xx and connection failures) and the pause between. */
  webhookAttempts?: number;
  webhookRetryDelayMs?: number;
}

export interface SimApproval {
  id: string;
  name: string;
  finalDecision: 'pending' | 'approved' | 'declined';
  approvers: Array<{ accountId: string; decision: 'pending' | 'approved' | 'declined' }>;
}

export interface SimIssue {
  id: string;
  key: string;
  status: string;
  fields: Record<string, unknown>;
  created: number;
  updated: number;
  comments: Array<{ id: string; body: unknown; author: string; created: number }>;
  properties: Map<string, unknown>;
  approvals: SimApproval[];
}

export interface SimDelivery {
  identifier: string;
  event: string;
  key: string;
  attempts: number;
  status: number | 'error';
  raw: Buffer;
}

/**
 * A fault of the site's HTTP API, for the requests whose path `path` matches (every one without it), `times` of them
 * (every one until removed without it). `hold-answer` carries out the requests and holds the answer of each that
 * `match` picks, asked once the request has been carried out, until `until` settles: a client that goes away
 * meanwhile never learns that its write landed.
 */
export type SimFault =
  | { kind: 'rate-limit'; retryAfterSeconds?: number; times?: number; path?: RegExp }
  | { kind: 'server-error'; status?: number; times?: number; path?: RegExp }
  | { kind: 'outage'; times?: number; path?: RegExp }
  | { kind: 'slow'; delayMs: number; times?: number; path?: RegExp }
  | { kind: 'hold-answer'; until: () => Promise<void>; match?: (req: { method: string; path: string; body: unknown; status: number }) => boolean; times?: number; path?: RegExp };

export interface JiraSimulator {
  app: express.Express;
  listen(port?: number, host?: string): Promise<{ url: string; close(): Promise<void> }>;
  setWebhook(webhook: { url: string; secret: string } | undefined): void;
  /** Creates a change as a person would (POST /rest/api/3/issue), firing jira:issue_created. */
  createIssue(fields: Record<string, unknown>, opts?: { reporter?: string }): SimIssue;
  updateFields(ref: string, fields: Record<string, unknown>): SimIssue;
  /** Takes a transition by name as a person would; `force` is an administrator bypassing the validator. */
  transition(ref: string, name: string, opts?: { force?: boolean }): { ok: true } | { ok: false; status: number; errorMessages: string[] };
  addApproval(ref: string, name: string, approvers: string[]): SimApproval;
  /** An approver's answer (as in the portal); the last one decides and moves the change on. */
  decide(ref: string, approvalId: string, accountId: string, decision: 'approve' | 'decline'): void;
  addChangeTypeOption(value: string): void;
  issue(ref: string): SimIssue | undefined;
  commentTexts(ref: string): string[];
  property(ref: string, key: string): unknown;
  deliveries: SimDelivery[];
  /** Sends a recorded delivery again, byte for byte and with its identifier, as Jira's retry does. */
  redeliver(identifier: string): Promise<number | 'error'>;
  /** While off, events are recorded (deliveries, status 0) but not sent: a test sends them late or out of order. */
  sendWebhooks: boolean;
  /** The site's clock (Date.now): a test holds it still so that several saves of an issue share one millisecond. */
  now: () => number;
  /** The id the next changelog entry gets (ids rise by one per entry, across the site). */
  nextChangelogId(id: number): void;
  /**
   * The faults in force, oldest first. Windows opened while others are open compose: the newest fault that matches
   * a request answers it (a slow one or a held answer delays it and lets the next older one have its say), and a
   * fault with `times` leaves the list once used up. Remove one from the list to end it early.
   */
  faults: SimFault[];
  /** The newest fault in force; setting it replaces every fault with this one (or none). */
  fault: SimFault | undefined;
  waitForDeliveries(): Promise<void>;
}

class SimError extends Error {
  constructor(
    readonly status: number,
    readonly errorMessages: string[],
    readonly errors: Record<string, string> = {},
  ) {
    super(errorMessages.join('; ') || Object.values(errors).join('; '));
  }
}

const PROPERTY_LIMIT = 32_768;

export function createJiraSimulator(opts: JiraSimulatorOptions): JiraSimulator {
  const projectKey = opts.projectKey ?? 'CHG';
  const workflow = opts.workflow ?? DEFAULT_WORKFLOW;
  const statuses: SimStatus[] = workflow.statuses.map((s, i) => ({ id: String(10_000 + i), name: s.name, category: s.category }));
  const statusByName = new Map(statuses.map((s) => [s.name, s]));
  const changeTypeOptions = ['Standard', 'Normal', 'Emergency'];
  const issues = new Map<string, SimIssue>();
  const byKey = new Map<string, SimIssue>();
  let webhook = opts.webhook;
  const attempts = opts.webhookAttempts ?? 5;
  const retryDelayMs = opts.webhookRetryDelayMs ?? 100;
  let changelogSeq = 10_000 + randomInt(0, 1_000_000);
  let commentSeq = 20_000;
  let approvalSeq = 1;
  let lastTick = 0;

  // Issue numbers: from the state file (never reused across restarts), else from a random base of this run.
  let nextNumber = randomInt(1, 2 ** 30);
  if (opts.stateFile && existsSync(opts.stateFile)) {
    const saved = JSON.parse(readFileSync(opts.stateFile, 'utf8')) as { nextNumber?: unknown };
    if (typeof saved.nextNumber === 'number' && Number.isSafeInteger(saved.nextNumber) && saved.nextNumber > 0) nextNumber = saved.nextNumber;
  } else if (opts.stateFile) {
    nextNumber = 1;
  }
  const takeNumber = (): number => {
    const n = nextNumber++;
    if (opts.stateFile) {
      mkdirSync(dirname(opts.stateFile), { recursive: true });
      writeFileSync(`${opts.stateFile}.tmp`, JSON.stringify({ nextNumber }));
      renameSync(`${opts.stateFile}.tmp`, opts.stateFile);
    }
    return n;
  };
  /** Jira's `updated`: milliseconds, never behind the last change the site saved. */
  const tick = (): number => {
    lastTick = Math.max(sim.now(), lastTick);
    return lastTick;
  };

  const find = (ref: string): SimIssue => {
    const issue = /^\d+$/.test(ref) ? issues.get(ref) : byKey.get(ref);
    if (!issue) throw new SimError(404, ['Issue does not exist or you do not have permission to see it.']);
    return issue;
  };

  const issueJson = (issue: SimIssue, fields?: string[]) => {
    const status = statusByName.get(issue.status) as SimStatus;
    const all: Record<string, unknown> = {
      ...issue.fields,
      status: { id: status.id, name: status.name, statusCategory: { key: status.category } },
      project: { key: projectKey },
      issuetype: { name: CHANGE_ISSUE_TYPE },
      created: formatJiraDateTime(issue.created),
      updated: formatJiraDateTime(issue.updated),
    };
    const wanted = fields && fields.length > 0 && !fields.includes('*all') ? Object.fromEntries(Object.entries(all).filter(([k]) => fields.includes(k))) : all;
    return { id: issue.id, key: issue.key, self: `/rest/api/3/issue/${issue.id}`, fields: wanted };
  };

  // ---- webhooks -------------------------------------------------------------------------------------------------
  const deliveries: SimDelivery[] = [];
  const inFlight = new Set<Promise<unknown>>();
  let queue: Promise<unknown> = Promise.resolve();

  const post = async (d: SimDelivery, retry: number): Promise<number | 'error'> => {
    if (!webhook) return 'error';
    try {
      const res = await axios.post(webhook.url, d.raw, {
        headers: {
          'content-type': 'application/json',
          [HUB_SIGNATURE_HEADER]: signJiraWebhook(webhook.secret, d.raw),
          [WEBHOOK_ID_HEADER]: d.identifier,
          ...(retry > 0 ? { [WEBHOOK_RETRY_HEADER]: String(retry) } : {}),
        },
        timeout: 10_000,
        validateStatus: () => true,
      });
      return res.status;
    } catch {
      return 'error';
    }
  };
  const RETRIED = (s: number | 'error') => s === 'error' || s === 408 || s === 409 || s === 425 || s === 429 || s >= 500;

  const send = (d: SimDelivery) => {
    // One at a time, in the order the site saved the changes; each retried with the same identifier.
    const p = (queue = queue.then(async () => {
      for (let i = 0; i < attempts; i++) {
        // No webhook (any more): the event stays recorded, unsent.
        if (!webhook) return;
        d.attempts++;
        d.status = await post(d, i);
        if (!RETRIED(d.status)) return;
        await new Promise((r) => setTimeout(r, retryDelayMs * (i + 1)));
      }
    }));
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };

  const fire = (event: string, issue: SimIssue, extra: Record<string, unknown> = {}) => {
    const body = {
      timestamp: Date.now(),
      webhookEvent: event,
      user: { accountId: INTEGRATION_ACCOUNT_ID },
      issue: issueJson(issue),
      ...extra,
    };
    const d: SimDelivery = { identifier: randomUUID(), event, key: issue.key, attempts: 0, status: 0, raw: Buffer.from(JSON.stringify(body)) };
    deliveries.push(d);
    if (sim.sendWebhooks) send(d);
  };

  const changelog = (items: Array<{ field: string; from: string | null; to: string | null; fromString?: string | null; toString?: string | null }>) => ({
    id: String(++changelogSeq),
    items: items.map((i) => ({ field: i.field, fieldtype: i.field.startsWith('customfield_') ? 'custom' : 'jira', fieldId: i.field, from: i.from, fromString: i.fromString ?? i.from, to: i.to, toString: i.toString ?? i.to })),
  });

  // ---- domain -----------------------------------------------------------------------------------------------------
  const checkFields = (fields: Record<string, unknown>) => {
    const errors: Record<string, string> = {};
    const type = fields[CHANGE_TYPE_FIELD];
    if (type !== undefined && type !== null) {
      const value = typeof type === 'object' ? (type as { value?: unknown }).value : undefined;
      if (typeof value !== 'string' || !changeTypeOptions.includes(value)) errors[CHANGE_TYPE_FIELD] = `Option value '${String(value)}' is not valid`;
    }
    const actions = fields[ACTIONS_FIELD];
    if (actions !== undefined && actions !== null && typeof actions !== 'string') errors[ACTIONS_FIELD] = 'Operation value must be a string';
    const labels = fields.labels;
    if (labels !== undefined && labels !== null && (!Array.isArray(labels) || !labels.every((l) => typeof l === 'string' && /^\S{1,255}$/.test(l)))) {
      errors.labels = 'Labels must be a list of strings without spaces, at most 255 characters each.';
    }
    if (Object.keys(errors).length > 0) throw new SimError(400, [], errors);
  };
  const normaliseFields = (fields: Record<string, unknown>): Record<string, unknown> => {
    const out = { ...fields };
    const type = out[CHANGE_TYPE_FIELD] as { value?: string } | null | undefined;
    if (type && typeof type.value === 'string') {
      out[CHANGE_TYPE_FIELD] = { self: `/rest/api/3/customFieldOption/${10_000 + changeTypeOptions.indexOf(type.value)}`, value: type.value, id: String(10_000 + changeTypeOptions.indexOf(type.value)) };
    }
    return out;
  };

  const createIssue = (fields: Record<string, unknown>, reporter = INTEGRATION_ACCOUNT_ID): SimIssue => {
    checkFields(fields);
    const n = takeNumber();
    const now = tick();
    const issue: SimIssue = {
      id: String(100_000 + n),
      key: `${projectKey}-${n}`,
      status: workflow.initial,
      fields: { summary: '', description: null, reporter: { accountId: reporter }, assignee: null, [CHANGE_TYPE_FIELD]: null, [ACTIONS_FIELD]: null, [PLANNED_END_FIELD]: null, ...normaliseFields(fields) },
      created: now,
      updated: now,
      comments: [],
      properties: new Map(),
      approvals: [],
    };
    issues.set(issue.id, issue);
    byKey.set(issue.key, issue);
    fire('jira:issue_created', issue, { issue_event_type_name: 'issue_created' });
    return issue;
  };

  const updateFields = (ref: string, fields: Record<string, unknown>): SimIssue => {
    const issue = find(ref);
    checkFields(fields);
    const normalised = normaliseFields(fields);
    const items = Object.keys(normalised).map((f) => ({ field: f, from: null, to: null, fromString: JSON.stringify(issue.fields[f] ?? null), toString: JSON.stringify(normalised[f]) }));
    Object.assign(issue.fields, normalised);
    issue.updated = tick();
    fire('jira:issue_updated', issue, { issue_event_type_name: 'issue_updated', changelog: changelog(items) });
    return issue;
  };

  /** The validator's expression: `issue.properties['changegate.gate']?.passed == true`; anything else fails closed. */
  const gatePasses = (issue: SimIssue): boolean => {
    const gate = issue.properties.get(GATE_PROPERTY);
    return typeof gate === 'object' && gate !== null && !Array.isArray(gate) && (gate as { passed?: unknown }).passed === true;
  };

  const available = (issue: SimIssue) => workflow.transitions.filter((t) => (t.from === 'any' || t.from.includes(issue.status)) && t.to !== issue.status);

  const moveTo = (issue: SimIssue, to: string, eventType = 'issue_generic') => {
    const from = issue.status;
    issue.status = to;
    issue.updated = tick();
    const fromId = statusByName.get(from)?.id ?? null;
    const toId = statusByName.get(to)?.id ?? null;
    fire('jira:issue_updated', issue, { issue_event_type_name: eventType, changelog: changelog([{ field: 'status', from: fromId, to: toId, fromString: from, toString: to }]) });
  };

  const doTransition = (issue: SimIssue, id: string, force = false) => {
    const t = available(issue).find((x) => x.id === id);
    if (!t) throw new SimError(400, [`Transition id '${id}' is not valid for this issue.`]);
    if (t.validated && !force && !gatePasses(issue)) throw new SimError(400, [VALIDATOR_MESSAGE]);
    moveTo(issue, t.to);
  };

  const addComment = (issue: SimIssue, body: unknown, author: string) => {
    const problems = adfProblems(body);
    if (problems.length > 0) throw new SimError(400, [], { comment: `Comment body is not valid ADF: ${problems.join('; ')}` });
    const comment = { id: String(++commentSeq), body, author, created: tick() };
    issue.comments.push(comment);
    issue.updated = comment.created;
    fire('jira:issue_updated', issue, { issue_event_type_name: 'issue_commented', comment: { id: comment.id, body } });
    return comment;
  };

  const setProperty = (issue: SimIssue, key: string, value: unknown): 200 | 201 => {
    if (!/^[A-Za-z0-9._-]{1,255}$/.test(key)) throw new SimError(400, ['The property key is not valid.']);
    if (value === undefined) throw new SimError(400, ['The property value is required.']);
    const json = JSON.stringify(value);
    if (json.length > PROPERTY_LIMIT) throw new SimError(400, [`The property value is too long: ${json.length} characters, the maximum is ${PROPERTY_LIMIT}.`]);
    const existed = issue.properties.has(key);
    issue.properties.set(key, JSON.parse(json) as unknown);
    // Entity property events carry the property, not a changelog; `updated` does not move.
    const body = { timestamp: Date.now(), webhookEvent: 'issue_property_set', property: { key, value }, issue: { id: issue.id, key: issue.key } };
    const d: SimDelivery = { identifier: randomUUID(), event: 'issue_property_set', key: issue.key, attempts: 0, status: 0, raw: Buffer.from(JSON.stringify(body)) };
    deliveries.push(d);
    if (sim.sendWebhooks) send(d);
    return existed ? 200 : 201;
  };

  const decide = (issue: SimIssue, approvalId: string, accountId: string, decision: 'approve' | 'decline') => {
    const approval = issue.approvals.find((a) => a.id === approvalId);
    if (!approval) throw new SimError(404, ['The approval does not exist.']);
    const approver = approval.approvers.find((a) => a.accountId === accountId);
    if (!approver) throw new SimError(403, ['You are not an approver of this request.']);
    if (approval.finalDecision !== 'pending') throw new SimError(400, ['This approval has already been decided.']);
    approver.decision = decision === 'approve' ? 'approved' : 'declined';
    if (approver.decision === 'declined') approval.finalDecision = 'declined';
    else if (approval.approvers.every((a) => a.decision === 'approved')) approval.finalDecision = 'approved';
    if (approval.finalDecision === 'pending') return;
    // The approval step moves the request on, as a JSM change's approval configuration does.
    if (approval.finalDecision === 'declined' && statusByName.has('Declined')) moveTo(issue, 'Declined', 'issue_approval_declined');
    else if (issue.approvals.every((a) => a.finalDecision === 'approved') && issue.status === 'Authorize') moveTo(issue, 'Awaiting implementation', 'issue_approval_approved');
    else {
      // Decided with nothing to move (the change is already past Authorize): the Approvals field changed all the same.
      issue.updated = tick();
      fire('jira:issue_updated', issue, { issue_event_type_name: 'issue_generic', changelog: changelog([{ field: 'Approvals', from: null, to: null, fromString: 'pending', toString: approval.finalDecision }]) });
    }
  };

  // ---- HTTP ---------------------------------------------------------------------------------------------------------
  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: '1mb' }));

  /** How many requests each fault with `times` has left; a fault leaves `sim.faults` when it has none. */
  const faultsLeft = new WeakMap<SimFault, number>();
  /** Takes one of the fault's `times`: false when it has none left (or was removed meanwhile). */
  const use = (f: SimFault): boolean => {
    if (!sim.faults.includes(f)) return false;
    if (f.times === undefined) return true;
    const left = (faultsLeft.get(f) ?? f.times) - 1;
    faultsLeft.set(f, left);
    if (left <= 0) {
      sim.faults.splice(sim.faults.indexOf(f), 1);
      faultsLeft.delete(f);
    }
    return left >= 0;
  };
  const faultGate = async (req: Request, res: Response, next: NextFunction) => {
    const { method, path } = req;
    for (const f of [...sim.faults].reverse()) {
      if (f.path && !f.path.test(path)) continue;
      if (f.kind === 'hold-answer') {
        // Asked once the request has been carried out, so that what is held is a write that landed.
        holdAnswerIf(res, () => ((!f.match || f.match({ method, path, body: req.body as unknown, status: res.statusCode })) && use(f) ? f.until() : undefined));
        continue;
      }
      if (!use(f)) continue;
      if (f.kind === 'slow') {
        await new Promise((r) => setTimeout(r, f.delayMs));
        continue;
      }
      return answerFault(f, req, res);
    }
    next();
  };
  const answerFault = (f: Exclude<SimFault, { kind: 'slow' | 'hold-answer' }>, req: Request, res: Response) => {
    if (f.kind === 'outage') {
      req.socket.destroy();
      return;
    }
    if (f.kind === 'rate-limit') {
      const seconds = f.retryAfterSeconds ?? 1;
      res
        .status(429)
        .set({
          'Retry-After': String(seconds),
          'X-RateLimit-Reset': new Date(Date.now() + seconds * 1000).toISOString(),
          'X-RateLimit-Limit': '100',
          'X-RateLimit-Remaining': '0',
          'RateLimit-Reason': 'jira-quota-based',
        })
        .json({ errorMessages: ['Rate limit exceeded.'], errors: {} });
      return;
    }
    res.status(f.status ?? 503).json({ errorMessages: ['Service unavailable.'], errors: {} });
  };

  const api = express.Router();
  const wrap = (fn: (req: Request, res: Response) => void) => (req: Request, res: Response, next: NextFunction) => {
    try {
      fn(req, res);
    } catch (err) {
      next(err);
    }
  };
  api.get('/rest/api/3/project/:key/statuses', wrap((req, res) => {
    if (req.params.key !== projectKey) throw new SimError(404, [`No project could be found with key '${String(req.params.key)}'.`]);
    res.json([{ id: '10100', name: CHANGE_ISSUE_TYPE, statuses: statuses.map((s) => ({ id: s.id, name: s.name, statusCategory: { key: s.category } })) }]);
  }));
  api.get('/rest/api/3/status', wrap((_req, res) => {
    res.json(statuses.map((s) => ({ id: s.id, name: s.name, statusCategory: { key: s.category } })));
  }));
  api.post('/rest/api/3/issue', wrap((req, res) => {
    const fields = (req.body as { fields?: Record<string, unknown> }).fields;
    if (!fields || typeof fields !== 'object') throw new SimError(400, [], { fields: 'Field fields is required.' });
    const { project, issuetype, ...rest } = fields as { project?: { key?: string }; issuetype?: { name?: string } };
    if (project?.key !== projectKey) throw new SimError(400, [], { project: 'valid project is required' });
    if (issuetype?.name !== undefined && issuetype.name !== CHANGE_ISSUE_TYPE) throw new SimError(400, [], { issuetype: 'valid issue type is required' });
    const issue = createIssue(rest);
    res.status(201).json({ id: issue.id, key: issue.key, self: `${req.protocol}://${req.get('host') ?? ''}${req.baseUrl}/rest/api/3/issue/${issue.id}` });
  }));
  // JQL search, for the clauses the gateway sends: `project = "X" AND labels = "Y"` (quoted or not); anything else
  // is refused as Jira refuses a query it cannot parse.
  api.get('/rest/api/3/search/jql', wrap((req, res) => {
    const jql = typeof req.query.jql === 'string' ? req.query.jql : '';
    // The subset the gateway asks: `project = X`, `labels = "y"`, `updated >= -Nm` joined by AND, optionally
    // `ORDER BY updated ASC`; anything else is refused as Jira refuses JQL it cannot parse.
    const ordered = /\s+ORDER\s+BY\s+updated\s+ASC\s*$/i.exec(jql);
    const where = ordered ? jql.slice(0, ordered.index) : jql;
    const clauses = where.split(/\s+AND\s+/i).map((c) => /^\s*(project|labels)\s*=\s*(?:"([^"\\]*)"|([A-Za-z0-9._:-]+))\s*$/i.exec(c) ?? /^\s*(updated)\s*>=\s*"?-(\d{1,7})m"?\s*$/i.exec(c));
    if (where.trim() === '' || clauses.some((c) => c === null)) throw new SimError(400, [`Error in the JQL Query: the simulator supports only project =, labels = and updated >= -Nm clauses joined by AND, and ORDER BY updated ASC (got '${jql.slice(0, 200)}').`]);
    const wanted = clauses.map((c) => ({ field: (c as RegExpExecArray)[1]!.toLowerCase(), value: (c as RegExpExecArray)[2] ?? (c as RegExpExecArray)[3] ?? '' }));
    const maxResults = Math.min(100, Math.max(1, Number(req.query.maxResults ?? 50) || 50));
    const fields = typeof req.query.fields === 'string' ? req.query.fields.split(',').filter(Boolean) : ['summary'];
    const now = sim.now();
    const matches = (issue: SimIssue, w: { field: string; value: string }) =>
      w.field === 'project'
        ? w.value === projectKey
        : w.field === 'labels'
          ? Array.isArray(issue.fields.labels) && (issue.fields.labels as unknown[]).includes(w.value)
          : // Jira compares at minute precision: `-5m` is the start of the minute five minutes ago.
            issue.updated >= Math.floor((now - Number(w.value) * 60_000) / 60_000) * 60_000;
    const hits = [...issues.values()].filter((issue) => wanted.every((w) => matches(issue, w)));
    if (ordered) hits.sort((a, b) => a.updated - b.updated || Number(a.id) - Number(b.id));
    const start = typeof req.query.nextPageToken === 'string' ? Number(Buffer.from(req.query.nextPageToken, 'base64url').toString()) || 0 : 0;
    const page = hits.slice(start, start + maxResults);
    const isLast = start + maxResults >= hits.length;
    res.json({ issues: page.map((issue) => issueJson(issue, fields)), isLast, ...(isLast ? {} : { nextPageToken: Buffer.from(String(start + maxResults)).toString('base64url') }) });
  }));
  api.get('/rest/api/3/issue/:ref', wrap((req, res) => {
    const fields = typeof req.query.fields === 'string' ? req.query.fields.split(',').filter(Boolean) : undefined;
    res.json(issueJson(find(String(req.params.ref)), fields));
  }));
  api.put('/rest/api/3/issue/:ref', wrap((req, res) => {
    const fields = (req.body as { fields?: Record<string, unknown> }).fields ?? {};
    updateFields(String(req.params.ref), fields);
    res.status(204).end();
  }));
  api.get('/rest/api/3/issue/:ref/comment', wrap((req, res) => {
    const issue = find(String(req.params.ref));
    const startAt = Math.max(0, Number(req.query.startAt ?? 0) || 0);
    const maxResults = Math.min(100, Math.max(1, Number(req.query.maxResults ?? 50) || 50));
    const page = issue.comments.slice(startAt, startAt + maxResults);
    res.json({
      startAt,
      maxResults,
      total: issue.comments.length,
      comments: page.map((c) => ({ id: c.id, author: { accountId: c.author }, body: c.body, created: formatJiraDateTime(c.created) })),
    });
  }));
  api.post('/rest/api/3/issue/:ref/comment', wrap((req, res) => {
    const issue = find(String(req.params.ref));
    const comment = addComment(issue, (req.body as { body?: unknown }).body, String(res.locals.accountId));
    res.status(201).json({ id: comment.id, body: comment.body, created: formatJiraDateTime(comment.created) });
  }));
  api.get('/rest/api/3/issue/:ref/properties/:key', wrap((req, res) => {
    const issue = find(String(req.params.ref));
    const key = String(req.params.key);
    if (!issue.properties.has(key)) throw new SimError(404, [`The property with key '${key}' does not exist.`]);
    res.json({ key, value: issue.properties.get(key) });
  }));
  api.put('/rest/api/3/issue/:ref/properties/:key', wrap((req, res) => {
    const status = setProperty(find(String(req.params.ref)), String(req.params.key), req.body);
    res.status(status).end();
  }));
  api.get('/rest/api/3/issue/:ref/transitions', wrap((req, res) => {
    const issue = find(String(req.params.ref));
    res.json({
      transitions: available(issue).map((t) => {
        const to = statusByName.get(t.to) as SimStatus;
        return { id: t.id, name: t.name, to: { id: to.id, name: to.name, statusCategory: { key: to.category } }, hasScreen: false, isGlobal: t.from === 'any' };
      }),
    });
  }));
  api.post('/rest/api/3/issue/:ref/transitions', wrap((req, res) => {
    const id = (req.body as { transition?: { id?: unknown } }).transition?.id;
    if (typeof id !== 'string') throw new SimError(400, [], { transition: 'transition.id is required' });
    doTransition(find(String(req.params.ref)), id);
    res.status(204).end();
  }));
  api.get('/rest/servicedeskapi/request/:ref/approval', wrap((req, res) => {
    const issue = find(String(req.params.ref));
    const values = issue.approvals.map((a) => ({
      id: a.id,
      name: a.name,
      finalDecision: a.finalDecision,
      canAnswerApproval: a.approvers.some((x) => x.accountId === res.locals.accountId),
      approvers: a.approvers.map((x) => ({ approver: { accountId: x.accountId }, approverDecision: x.decision })),
    }));
    res.json({ size: values.length, start: 0, limit: 50, isLastPage: true, values });
  }));
  api.post('/rest/servicedeskapi/request/:ref/approval/:id', wrap((req, res) => {
    const decision = (req.body as { decision?: unknown }).decision;
    if (decision !== 'approve' && decision !== 'decline') throw new SimError(400, ['decision must be approve or decline.']);
    const issue = find(String(req.params.ref));
    decide(issue, String(req.params.id), String(res.locals.accountId), decision);
    const a = issue.approvals.find((x) => x.id === String(req.params.id)) as SimApproval;
    res.json({ id: a.id, name: a.name, finalDecision: a.finalDecision });
  }));

  const basic = (req: Request): boolean => {
    const m = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
    if (!m) return false;
    const [user, ...rest] = Buffer.from(m[1] as string, 'base64').toString('utf8').split(':');
    return user === opts.email && rest.join(':') === opts.apiToken;
  };
  const unauthorized = (res: Response) => res.status(401).json({ errorMessages: ['You are not authenticated. Authentication required to perform this operation.'], errors: {} });

  app.use('/ex/jira/:cloudId', faultGate, (req, res, next) => {
    if (!opts.oauth || req.params.cloudId !== opts.oauth.cloudId) return res.status(404).json({ errorMessages: ['Site not found.'], errors: {} });
    if (req.headers.authorization !== `Bearer ${opts.oauth.accessToken}`) return unauthorized(res);
    res.locals.accountId = INTEGRATION_ACCOUNT_ID;
    next();
  }, api);
  app.use(faultGate, (req, res, next) => {
    if (!basic(req)) return unauthorized(res);
    res.locals.accountId = INTEGRATION_ACCOUNT_ID;
    next();
  }, api);
  app.use((req: Request, res: Response) => res.status(404).json({ errorMessages: [`No route for ${req.method} ${req.path}`], errors: {} }));
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof SimError) return res.status(err.status).json({ errorMessages: err.errorMessages, errors: err.errors });
    const status = (err as { status?: number }).status;
    if (typeof status === 'number' && status >= 400 && status < 500) return res.status(400).json({ errorMessages: ['Invalid request payload.'], errors: {} });
    return res.status(500).json({ errorMessages: ['Internal server error.'], errors: {} });
  });

  const sim: JiraSimulator = {
    app,
    async listen(port = 0, host = '127.0.0.1') {
      const server = http.createServer(app);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => resolve());
      });
      return {
        url: `http://${host}:${(server.address() as AddressInfo).port}`,
        close: () => new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
      };
    },
    setWebhook(w) {
      webhook = w;
    },
    createIssue(fields, o = {}) {
      return createIssue(fields, o.reporter);
    },
    updateFields,
    transition(ref, name, o = {}) {
      try {
        const issue = find(ref);
        const t = available(issue).find((x) => x.name === name);
        if (!t) throw new SimError(400, [`No transition named '${name}' from '${issue.status}'.`]);
        doTransition(issue, t.id, o.force);
        return { ok: true };
      } catch (err) {
        if (err instanceof SimError) return { ok: false, status: err.status, errorMessages: [...err.errorMessages, ...Object.values(err.errors)] };
        throw err;
      }
    },
    addApproval(ref, name, approvers) {
      const issue = find(ref);
      const approval: SimApproval = { id: String(approvalSeq++), name, finalDecision: 'pending', approvers: approvers.map((accountId) => ({ accountId, decision: 'pending' })) };
      issue.approvals.push(approval);
      return approval;
    },
    decide(ref, approvalId, accountId, decision) {
      decide(find(ref), approvalId, accountId, decision);
    },
    addChangeTypeOption(value) {
      if (!changeTypeOptions.includes(value)) changeTypeOptions.push(value);
    },
    issue(ref) {
      try {
        return find(ref);
      } catch {
        return undefined;
      }
    },
    commentTexts(ref) {
      return find(ref).comments.map((c) => adfText(c.body));
    },
    property(ref, key) {
      return find(ref).properties.get(key);
    },
    deliveries,
    async redeliver(identifier) {
      const d = deliveries.find((x) => x.identifier === identifier);
      if (!d) throw new Error(`no delivery ${identifier}`);
      d.attempts++;
      d.status = await post(d, d.attempts - 1);
      return d.status;
    },
    sendWebhooks: true,
    now: Date.now,
    nextChangelogId(id) {
      changelogSeq = id - 1;
    },
    faults: [],
    get fault() {
      return this.faults.at(-1);
    },
    set fault(f) {
      this.faults = f ? [f] : [];
    },
    async waitForDeliveries() {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
  };
  return sim;
}
