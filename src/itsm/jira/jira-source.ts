import { type DeliveryParse, type SourceClients, type TicketSource, headerValue, parseJsonBody } from '../source';
import { ISSUE_KEY, parseJiraIssue, readJiraEvent } from './jira-issue';
import { JiraRuntime, SOURCE_NAME, jiraWriteBack } from './jira-runtime';
import { HUB_SIGNATURE_HEADER, WEBHOOK_ID_HEADER, verifyJiraSignature } from './jira-signature';

const WEBHOOK_ID = /^[A-Za-z0-9._:-]{1,128}$/;

function runtimeOf(clients: SourceClients | undefined): JiraRuntime | undefined {
  const runtime = clients?.[SOURCE_NAME];
  return runtime instanceof JiraRuntime ? runtime : undefined;
}

/**
 * Jira Service Management changes: admin webhooks signed with X-Hub-Signature, statuses mapped to phases by
 * configuration, approvals from JSM's approval API; comments and the `changegate.gate` issue property back.
 */
export const jira: TicketSource = {
  name: SOURCE_NAME,
  keyPattern: ISSUE_KEY,
  keyExample: 'CHG-12',
  // Jira retries a 409: a late delivery for a finished ticket is acknowledged instead.
  acknowledgeFinalized: true,

  verifyDelivery({ raw, headers, secret }) {
    return verifyJiraSignature(secret, raw, headerValue(headers, HUB_SIGNATURE_HEADER));
  },

  async parseDelivery({ raw, headers, receivedAt }, grammars, _settings, clients): Promise<DeliveryParse> {
    const runtime = runtimeOf(clients);
    if (!runtime) throw new Error('the Jira source is not configured in this process (no Jira client)');
    const identifier = headerValue(headers, WEBHOOK_ID_HEADER);
    if (identifier !== undefined && !WEBHOOK_ID.test(identifier)) {
      return { ok: false, code: 'VALIDATION_FAILED', message: 'invalid delivery', issues: [{ path: `header ${WEBHOOK_ID_HEADER}`, message: '1-128 characters of letters, digits, . _ : -' }] };
    }
    const json = parseJsonBody(raw);
    if (!json.ok) return json;
    const event = readJiraEvent(json.body, runtime.settings);
    if (event.kind === 'ignored') return { ok: 'ignored', reason: event.reason };
    if (event.kind === 'invalid') return { ok: false, code: 'VALIDATION_FAILED', message: 'invalid Jira delivery', issues: event.issues };
    // The event says which issue changed; what it says now is read from Jira (see jira-version.ts).
    const current = await runtime.currentIssue(event.issue.id);
    if (!current) return { ok: 'ignored', reason: `issue ${event.issue.key} no longer exists in Jira` };
    const parsed = parseJiraIssue(current, runtime.settings, grammars, event.changelogId);
    if (parsed.kind === 'invalid') {
      // The signature proved the issue real: it is told what is wrong, where a person will see it.
      if (parsed.issue) await runtime.reportInvalid(parsed.issue, parsed.issues);
      return { ok: false, code: 'VALIDATION_FAILED', message: 'invalid Jira delivery', issues: parsed.issues };
    }
    const { facts } = parsed;
    // Stable across Jira's retries; without it, the issue and its changelog entry (or its update time) name the change.
    const eventId = identifier ?? `${facts.issueId}:${facts.changelogId ?? `v${facts.version}`}`;
    const outcome = await runtime.admit(facts, eventId, receivedAt);
    if ('ignored' in outcome) return { ok: 'ignored', reason: outcome.ignored };
    if ('invalid' in outcome) return { ok: false, code: 'VALIDATION_FAILED', message: 'invalid Jira delivery', issues: outcome.invalid };
    return { ok: true, snapshot: outcome.deliver, dedup: { eventId, recordId: facts.issueId, version: facts.version } };
  },

  async ready(clients) {
    const runtime = runtimeOf(clients);
    return runtime ? runtime.ready() : undefined;
  },

  writeBack(clients) {
    const runtime = runtimeOf(clients);
    if (!runtime) throw new Error('the worker was started without a Jira client');
    return jiraWriteBack(runtime);
  },
};
