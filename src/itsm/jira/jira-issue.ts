import { createHash } from 'node:crypto';
import { z } from 'zod';
import { parseIdentityActions } from '../../actions/plan-actions';
import type { PlannedAction } from '../../change/ticket';
import type { GrammarRegistry } from '../../connectors/registry';
import { type FieldIssue, formatPath } from '../../errors';
import { adfText, extractActionsBlock } from './jira-adf';
import { GATE_PROPERTY, type JiraSettings } from './jira-settings';
import { jiraVersion, parseJiraDateTime } from './jira-version';

/** An issue key such as CHG-12: anchored, and safe in a URL path. */
export const ISSUE_KEY = /^[A-Z][A-Z0-9_]{1,9}-[1-9]\d{0,11}$/;

const account = z.object({ accountId: z.string().min(1).max(128) }).passthrough().nullable().optional();

/** What a webhook says about an issue (Jira sends REST v2 shapes: the description may be wiki text or ADF). */
const issueSchema = z
  .object({
    id: z.string().regex(/^\d{1,18}$/, 'must be a numeric issue id'),
    key: z.string().regex(ISSUE_KEY, 'must be an issue key such as CHG-12'),
    fields: z
      .object({
        status: z.object({ name: z.string().min(1).max(255) }).passthrough(),
        updated: z.string().refine((v) => parseJiraDateTime(v) !== undefined, 'must be a date-time such as 2026-11-30T10:39:07.123+0000'),
        reporter: account,
        assignee: account,
        description: z.unknown().optional(),
      })
      .passthrough(),
  })
  .passthrough();

const deliverySchema = z
  .object({
    timestamp: z.number().int().nonnegative().optional(),
    webhookEvent: z.string().min(1).max(100),
    issue_event_type_name: z.string().max(100).optional(),
    issue: z.unknown().optional(),
    changelog: z.object({ id: z.string().regex(/^\d{1,18}$/, 'must be a numeric changelog id') }).passthrough().nullable().optional(),
    property: z.object({ key: z.string() }).passthrough().optional(),
  })
  .passthrough();

export interface JiraIssueFacts {
  issueId: string;
  key: string;
  status: string;
  version: number;
  changelogId?: string;
  emergency: boolean;
  /** A change-type option the settings do not know: the change is Normal, and the issue is told. */
  unknownChangeType?: string;
  requester?: string;
  implementer?: string;
  windowEnd?: string;
  actions: PlannedAction[];
  actionsDigest: string;
}

export type JiraParse =
  | { kind: 'issue'; facts: JiraIssueFacts }
  | { kind: 'invalid'; issues: FieldIssue[]; issue?: { id: string; key: string }; actionsText?: string };

const ISSUE_EVENTS = new Set(['jira:issue_created', 'jira:issue_updated']);

/** SHA-256 hex of the identity-actions text as the issue holds it (UTF-8): the gate is written for exactly this. */
export function actionsDigest(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

const zodIssues = (error: z.ZodError, prefix: Array<string | number>): FieldIssue[] =>
  error.issues.map((i) => ({ path: formatPath([...prefix, ...i.path]) || '(body)', message: i.message }));

/** The actions text and where it came from: the configured field, or the description's `changegate` code block. */
function actionsSource(fields: Record<string, unknown>, settings: JiraSettings): { text: string; path: string } | { issue: FieldIssue } {
  if (settings.actionsField) {
    const value = fields[settings.actionsField];
    const text = typeof value === 'string' ? value : value && typeof value === 'object' ? adfText(value) : '';
    if (text.trim() !== '') return { text, path: `fields.${settings.actionsField}` };
  }
  const block = extractActionsBlock(fields.description);
  if (!block.found) return { text: '', path: 'fields.description' };
  if ('error' in block) return { issue: { path: 'fields.description', message: block.error } };
  return { text: block.text, path: 'fields.description.changegate' };
}

function otherProject(key: string, settings: JiraSettings): FieldIssue | undefined {
  const projectKey = key.slice(0, key.lastIndexOf('-'));
  return projectKey === settings.projectKey ? undefined : { path: 'issue.key', message: `belongs to project ${projectKey}, not ${settings.projectKey} (the project configured)` };
}

/** What a delivery is about: the issue an event names (enough to ask Jira for it) and its changelog entry. */
export type JiraEvent =
  | { kind: 'event'; issue: { id: string; key: string }; changelogId?: string }
  | { kind: 'ignored'; reason: string }
  | { kind: 'invalid'; issues: FieldIssue[] };

const issueRefSchema = z.object({ id: issueSchema.shape.id, key: issueSchema.shape.key }).passthrough();

/**
 * Reads a delivery's envelope: which issue of the configured project it names, or why it is not read. What the issue
 * says is not taken from here — the payload is a snapshot of when the event was sent, and events arrive late and out
 * of order — but from the issue as Jira holds it now (`parseJiraIssue`).
 */
export function readJiraEvent(body: unknown, settings: JiraSettings): JiraEvent {
  const envelope = deliverySchema.safeParse(body);
  if (!envelope.success) return { kind: 'invalid', issues: zodIssues(envelope.error, []) };
  const event = envelope.data;
  if (event.webhookEvent === 'issue_property_set' || event.webhookEvent === 'issue_property_deleted') {
    return { kind: 'ignored', reason: event.property?.key === GATE_PROPERTY ? `the gateway's own ${GATE_PROPERTY} property` : `issue property ${event.property?.key ?? ''} is not read` };
  }
  if (!ISSUE_EVENTS.has(event.webhookEvent)) return { kind: 'ignored', reason: `event ${event.webhookEvent.slice(0, 60)} is not read` };
  const ref = issueRefSchema.safeParse(event.issue);
  if (!ref.success) return { kind: 'invalid', issues: zodIssues(ref.error, ['issue']) };
  const { id, key } = ref.data;
  const elsewhere = otherProject(key, settings);
  if (elsewhere) return { kind: 'invalid', issues: [elsewhere] };
  const changelogId = event.changelog?.id;
  return { kind: 'event', issue: { id, key }, ...(changelogId ? { changelogId } : {}) };
}

/**
 * Validates an issue (as GET /rest/api/3/issue returns it) into what it says. Pure: statuses, approvals and the gate
 * are the edge's to look up. Every problem names its path.
 */
export function parseJiraIssue(body: unknown, settings: JiraSettings, grammars: GrammarRegistry, changelogId?: string): JiraParse {
  const parsedIssue = issueSchema.safeParse(body);
  if (!parsedIssue.success) return { kind: 'invalid', issues: zodIssues(parsedIssue.error, ['issue']) };
  const issue = parsedIssue.data;
  const fields = issue.fields as Record<string, unknown> & typeof issue.fields;
  const ref = { id: issue.id, key: issue.key };
  // Checked again on the issue read back: an issue moved to another project since the event has another key.
  const elsewhere = otherProject(issue.key, settings);
  if (elsewhere) return { kind: 'invalid', issues: [elsewhere] };

  const issues: FieldIssue[] = [];
  // The change type: a select field ({"value": "Emergency"}). Emergency only when it says so, never inferred.
  const typeValue = fields[settings.changeTypeField];
  let emergency = false;
  let unknownChangeType: string | undefined;
  if (typeValue !== undefined && typeValue !== null) {
    const option = typeof typeValue === 'object' && typeof (typeValue as { value?: unknown }).value === 'string' ? (typeValue as { value: string }).value : undefined;
    if (option === undefined) issues.push({ path: `issue.fields.${settings.changeTypeField}`, message: 'must be a select option such as {"value": "Normal"}' });
    else if (settings.changeTypes.emergency.includes(option)) emergency = true;
    else if (!settings.changeTypes.known.includes(option)) unknownChangeType = option.slice(0, 100);
  }
  let windowEnd: string | undefined;
  if (settings.windowEndField) {
    const v = fields[settings.windowEndField];
    if (typeof v === 'string' && v !== '') {
      const ms = parseJiraDateTime(v);
      if (ms === undefined) issues.push({ path: `issue.fields.${settings.windowEndField}`, message: 'must be a date-time such as 2026-12-01T18:00:00.000+0000' });
      else windowEnd = new Date(ms).toISOString();
    }
  }
  const source = actionsSource(fields, settings);
  if ('issue' in source) return { kind: 'invalid', issues: [...issues, source.issue], issue: ref };
  const planned = parseIdentityActions(source.text, grammars, source.path, { emergency });
  if (!planned.ok) return { kind: 'invalid', issues: [...issues, ...planned.issues], issue: ref, actionsText: source.text };
  if (issues.length > 0) return { kind: 'invalid', issues, issue: ref };

  return {
    kind: 'issue',
    facts: {
      issueId: issue.id,
      key: issue.key,
      status: fields.status.name,
      version: jiraVersion(parseJiraDateTime(fields.updated) as number),
      ...(changelogId ? { changelogId } : {}),
      emergency,
      ...(unknownChangeType !== undefined ? { unknownChangeType } : {}),
      ...(fields.reporter ? { requester: fields.reporter.accountId } : {}),
      ...(fields.assignee ? { implementer: fields.assignee.accountId } : {}),
      ...(windowEnd ? { windowEnd } : {}),
      actions: planned.value,
      actionsDigest: actionsDigest(source.text),
    },
  };
}
