import { createHash } from 'node:crypto';
import type { Phase, TicketRef, TicketSnapshot } from '../../change/ticket';
import { workflowIdFor } from '../../change/ticket';
import type { FieldIssue } from '../../errors';
import type { Logger } from '../../logger';
import { type GateWrite, type OpenChange, type OpenedChange, type TicketWriteBack, WriteBackError } from '../source';
import { parseReviewTask } from '../../exceptions/review-task';
import { ACTIONS_LANGUAGE, adfParagraphs } from './jira-adf';
import { JiraClient, JiraError, type JiraStatus } from './jira-client';
import type { JiraIssueFacts } from './jira-issue';
import { GATE_PROPERTY, type JiraSettings, phaseOfStatus } from './jira-settings';
import { formatJiraDateTime, parseJiraDateTime } from './jira-version';

/** How long after a save's millisecond the issue is read (see currentIssue). */
const SETTLE_MS = 2;

export const SOURCE_NAME = 'jira';

/** What the edge needs from the gateway's own records: the newest closure verdict of a ticket, for the reasons. */
export type VerdictLookup = (key: string) => Promise<{ allowed: boolean; reasons: string[] } | null>;

export interface JiraRuntimeOptions {
  client: JiraClient;
  settings: JiraSettings;
  /** The API process: the closure verdicts (reasons in the comment on a reverted close). */
  verdicts?: VerdictLookup;
  /** The worker process: the head of a ticket's evidence chain, written with the gate. */
  evidenceHead?: (ticketKey: string) => Promise<string | undefined>;
  /** The API process: records a close the guard sent back, in the ticket's evidence chain (once per version). */
  recordRevert?: (ticketKey: string, revert: { version: number; status: string; revertedTo: string; reasons: string[] }) => Promise<void>;
  log?: Logger;
  now?: () => number;
}

/** The gate as the issue property holds it; the validator reads only `passed`. */
export interface GateProperty {
  passed: boolean;
  state: string;
  actionsSha256: string;
  evidenceSha256: string;
  workflowId: string;
  updatedAt: string;
  /** Emergency exceptions of the change: each with its state, so the issue shows what awaits review. */
  exceptions?: GateException[];
}

/** An emergency exception as the gate property lists it. */
export interface GateException {
  id: string;
  status: 'open' | 'accepted' | 'revoked';
  deadline?: string;
  closeNotes?: string;
}

/** The exceptions a gate property lists (an odd value, written by someone else, lists none). */
function exceptionsIn(property: unknown): GateException[] {
  const list = property !== null && typeof property === 'object' ? (property as { exceptions?: unknown }).exceptions : undefined;
  return Array.isArray(list) ? list.filter((e): e is GateException => e !== null && typeof e === 'object' && typeof (e as GateException).id === 'string') : [];
}

/** The marker in a comment's first paragraph: how a retry finds what an earlier attempt wrote. */
export const tagOf = (marker: string) => `[changegate ${marker}]`;

const STATUS_RECHECK_MS = 30_000;
/** What a Jira label may be (no spaces) and what a JQL string literal may hold unescaped. */
const LABEL = /^[A-Za-z0-9._:-]{1,255}$/;
const NOTED_LIMIT = 10_000;

/** A decision the edge took about a delivery. */
export type EdgeOutcome =
  | { deliver: TicketSnapshot }
  | { ignored: string }
  | { invalid: FieldIssue[] };

/**
 * One Jira site as the gateway uses it, in the API (statuses, approvals, the close guard, notes about refused
 * deliveries) and in the worker (comments and the gate property). Built once per process from configuration.
 */
export class JiraRuntime {
  readonly client: JiraClient;
  readonly settings: JiraSettings;
  private statuses: Map<string, JiraStatus> | undefined;
  private statusError: string | undefined;
  private statusesReadAt = 0;
  /** Notes the edge already knows are on an issue: spares the comment listing on every delivery. */
  private readonly noted = new Set<string>();

  constructor(private readonly opts: JiraRuntimeOptions) {
    this.client = opts.client;
    this.settings = opts.settings;
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  /** Reads the project's statuses (start-up, and again while the last read failed). */
  async loadStatuses(): Promise<void> {
    this.statusesReadAt = this.now();
    try {
      const list = await this.client.projectStatuses(this.settings.projectKey);
      this.statuses = new Map(list.map((s) => [s.name, s]));
      this.statusError = undefined;
    } catch (err) {
      this.statusError = `cannot read the statuses of project ${this.settings.projectKey}: ${(err as Error).message}`;
      this.opts.log?.warn('jira statuses not read', { error: (err as Error).message });
    }
  }

  /** Not ready while the statuses are unknown, or while a configured status does not exist in the project. */
  async ready(): Promise<{ ok: true } | { ok: false; reason: string }> {
    const missingNow = () => Object.keys(this.settings.statusPhases).filter((name) => !this.statuses?.has(name));
    // While not ready, the project is read again now and then: a status an administrator adds counts without a restart.
    if ((!this.statuses || this.statusError || missingNow().length > 0) && this.now() - this.statusesReadAt > STATUS_RECHECK_MS) await this.loadStatuses();
    if (!this.statuses) return { ok: false, reason: this.statusError ?? 'statuses not read yet' };
    const missing = missingNow();
    if (missing.length > 0) {
      return { ok: false, reason: `configured status${missing.length > 1 ? 'es' : ''} ${missing.map((m) => `'${m}'`).join(', ')} do${missing.length > 1 ? '' : 'es'} not exist in project ${this.settings.projectKey}` };
    }
    return { ok: true };
  }

  /** Posts a comment once per marker: the marker is looked for among the issue's comments first. */
  async commentOnce(issue: string, marker: string, text: string): Promise<{ posted: boolean }> {
    const tag = tagOf(marker);
    const memo = `${issue}|${marker}`;
    if (this.noted.has(memo)) return { posted: false };
    const existing = await this.client.listComments(issue);
    if (existing.some((c) => c.text.includes(tag))) {
      this.noted.add(memo);
      return { posted: false };
    }
    await this.client.addComment(issue, adfParagraphs(`${tag}\n${text}`));
    // Only a shortcut (the comments are the record): bounded, so a long-running process does not grow with it.
    if (this.noted.size >= NOTED_LIMIT) this.noted.clear();
    this.noted.add(memo);
    return { posted: true };
  }

  /** An invalid delivery from a real issue: the issue is told each problem and where it is, once per set of problems. */
  async reportInvalid(issue: { id: string; key: string }, problems: FieldIssue[]): Promise<void> {
    const digest = createHash('sha256').update(JSON.stringify(problems)).digest('hex').slice(0, 16);
    const lines = problems.map((p) => `- ${p.path}: ${p.message}`);
    await this.commentOnce(issue.id, `invalid:${digest}`, [`changegate did not accept the identity actions of ${issue.key}; nothing was done. Fix each problem and save the issue again:`, ...lines].join('\n'));
  }

  /**
   * The issue as Jira holds it now (every field), read once the millisecond of its `updated` is over, so that no later
   * save can share the version it gets (see jira-version.ts). Undefined when the issue no longer exists. The wait is
   * at most a few milliseconds, and only when the read lands in the millisecond of the last save; a Jira clock ahead of
   * the gateway's by more than that is not waited for (a webhook takes far longer than that to arrive).
   */
  async currentIssue(issueId: string): Promise<{ id: string; key: string; fields: Record<string, unknown> } | undefined> {
    for (;;) {
      let issue: { id: string; key: string; fields: Record<string, unknown> };
      try {
        issue = await this.client.getIssue(issueId, ['*all']);
      } catch (err) {
        if (err instanceof JiraError && err.status === 404) return undefined;
        throw err;
      }
      const updated = typeof issue.fields.updated === 'string' ? parseJiraDateTime(issue.fields.updated) : undefined;
      const unsettled = updated === undefined ? 0 : updated + SETTLE_MS - Date.now();
      if (unsettled <= 0 || unsettled > SETTLE_MS) return issue;
      await new Promise((resolve) => setTimeout(resolve, unsettled));
    }
  }

  /**
   * Turns what the issue says into the delivery the workflow gets, asking Jira what the payload cannot say: the
   * approvals (JSM's approval API; the gateway never answers them) and, for a close, whether the gate let it.
   */
  async admit(facts: JiraIssueFacts, eventId: string, receivedAt: Date): Promise<EdgeOutcome> {
    // A status the settings do not map (added to the project's workflow since) is phase `unknown`: the workflow notes it
    // on the issue, grants wait and revocations still run. Refusing the delivery would lose it.
    const mapped: Phase = phaseOfStatus(this.settings, facts.status) ?? 'unknown';
    if (facts.unknownChangeType !== undefined) {
      const known = this.settings.changeTypes.known.join(', ');
      await this.commentOnce(
        facts.issueId,
        `change-type:${facts.unknownChangeType}`,
        `Change type '${facts.unknownChangeType}' is not one changegate knows (${known}): this change is treated as Normal, so no grant runs before it is authorized.`,
      );
    }
    let phase: Phase = mapped;
    if (phase === 'authorization' || phase === 'implement') {
      const approvals = await this.client.approvals(facts.issueId);
      if (approvals.some((a) => a.finalDecision === 'declined')) phase = 'rejected';
      else if (approvals.some((a) => a.finalDecision === 'pending')) phase = 'authorization';
    }
    if (phase === 'closed') {
      const refused = await this.closeRefusal(facts);
      if (refused) return { ignored: refused };
    }
    return {
      deliver: {
        source: SOURCE_NAME,
        key: facts.key,
        recordId: facts.issueId,
        phase,
        emergency: facts.emergency,
        ...(facts.requester ? { requester: facts.requester } : {}),
        ...(facts.implementer ? { implementer: facts.implementer } : {}),
        ...(facts.windowEnd ? { windowEnd: facts.windowEnd } : {}),
        version: facts.version,
        sourceState: facts.status,
        actions: facts.actions,
        actionsDigest: facts.actionsDigest,
        eventId,
        receivedAt: receivedAt.toISOString(),
      },
    };
  }

  /**
   * Defence in depth behind the validator: a close the gate did not let through (the validator missing from the
   * workflow, an admin's bulk edit, a gate about other actions) is sent back to the configured status with the
   * reasons. Decided from the property the validator reads, and only while the issue still stands in a closing
   * status, so that a repeat of the delivery neither transitions twice nor comments twice. Undefined: the close stands.
   */
  private async closeRefusal(facts: JiraIssueFacts): Promise<string | undefined> {
    const gate = await this.client.getProperty(facts.issueId, GATE_PROPERTY);
    const shown = typeof gate === 'object' && gate !== null ? (gate as Partial<GateProperty>) : undefined;
    const reasons: string[] = [];
    if (shown?.passed !== true) reasons.push(`the issue property ${GATE_PROPERTY} does not say passed`);
    else if (shown.actionsSha256 !== facts.actionsDigest) reasons.push('the gate was written for other identity actions than the issue holds now');
    if (reasons.length === 0) return undefined;
    const verdict = await this.opts.verdicts?.(facts.key);
    if (verdict && !verdict.allowed) reasons.push(...verdict.reasons);
    const current = await this.client.getIssue(facts.issueId, ['status']);
    const status = (current.fields.status as { name?: string } | undefined)?.name ?? '';
    if (phaseOfStatus(this.settings, status) === 'closed') await this.client.transitionTo(facts.issueId, this.settings.revertStatus);
    await this.commentOnce(
      facts.issueId,
      `reverted:${facts.version}`,
      [`${facts.key} stands in '${facts.status}' while changegate's closure gate does not allow it to close, so it was moved back to '${this.settings.revertStatus}'. Reasons:`, ...reasons.map((r) => `- ${r}`)].join('\n'),
    );
    await this.opts.recordRevert?.(`${SOURCE_NAME}:${facts.key}`, { version: facts.version, status: facts.status, revertedTo: this.settings.revertStatus, reasons });
    this.opts.log?.warn('jira close reverted', { ticket: facts.key, status: facts.status, reasons: reasons.length });
    return `closed before the gate allowed it: moved back to ${this.settings.revertStatus}`;
  }

  /**
   * Opens a change the gateway itself starts (a remediation, a leaked credential's rotation), once per correlation id:
   * the id is the issue's label, and a JQL search for it comes first. Labels are searchable on every site (an issue
   * property is only where an app indexes it). The search index lags a create by a moment: a retry that follows a
   * lost answer within that moment can still open a second issue.
   */
  async openChange(change: OpenChange): Promise<OpenedChange> {
    if (!LABEL.test(change.correlationId)) throw new JiraError(`correlation id '${change.correlationId.slice(0, 60)}' cannot be a Jira label`, { kind: 'refused' });
    const { projectKey, changeTypeField, actionsField } = this.settings;
    // Both values match patterns without quotes or backslashes: nothing in them can end the JQL string literal.
    const [found] = await this.client.searchIssues(`project = "${projectKey}" AND labels = "${change.correlationId}"`, 1);
    if (found) return { key: found.key, recordId: found.id, created: false };
    const type = change.emergency ? this.settings.changeTypes.emergency[0] : (this.settings.standardChangeType ?? 'Standard');
    const description = adfParagraphs(change.description);
    // Without an actions field, the actions ride in the description's `changegate` code block, where the edge reads them.
    if (!actionsField) description.content.push({ type: 'codeBlock', attrs: { language: ACTIONS_LANGUAGE }, content: [{ type: 'text', text: change.actionsText }] });
    const created = await this.client.createIssue({
      project: { key: projectKey },
      issuetype: { name: this.settings.changeIssueType ?? '[System] Change' },
      summary: change.title.slice(0, 255),
      description,
      labels: [change.correlationId],
      [changeTypeField]: { value: type },
      ...(actionsField ? { [actionsField]: change.actionsText } : {}),
      ...(change.windowEnd && this.settings.windowEndField ? { [this.settings.windowEndField]: formatJiraDateTime(Date.parse(change.windowEnd)) } : {}),
    });
    return { key: created.key, recordId: created.id, created: true };
  }

  async gateProperty(ticket: TicketRef, gate: GateWrite): Promise<GateProperty> {
    const head = await this.opts.evidenceHead?.(`${SOURCE_NAME}:${ticket.key}`);
    return {
      passed: gate.value === 'verified' || gate.value === 'not_applicable',
      state: gate.value || 'pending',
      actionsSha256: gate.digest ?? '',
      evidenceSha256: head ?? '',
      workflowId: workflowIdFor(SOURCE_NAME, ticket.key),
      updatedAt: new Date(this.now()).toISOString(),
    };
  }
}

/** Jira's errors as every source's: throttling waits as told, refusals and missing issues are final. */
async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof JiraError) throw new WriteBackError(err.message, { kind: err.kind, retryAfterMs: err.retryAfterMs, cause: err });
    throw err;
  }
}

/**
 * Comments (ADF paragraphs, once per marker) and the gate as the issue property `changegate.gate`. No combined
 * write: Jira has no save that takes a comment and a property together, so the activity writes the notes and then the
 * gate, and a gate is never shown before the notes about it.
 */
export function jiraWriteBack(runtime: JiraRuntime): TicketWriteBack {
  return {
    async postNote(ticket, marker, text) {
      return call(() => runtime.commentOnce(ticket.recordId, marker, text));
    },
    async openChange(change) {
      return call(() => runtime.openChange(change));
    },
    // The property also lists the change's emergency exceptions: a gate write keeps them.
    async setGate(ticket, gate) {
      await call(async () => {
        const exceptions = exceptionsIn(await runtime.client.getProperty(ticket.recordId, GATE_PROPERTY));
        await runtime.client.setProperty(ticket.recordId, GATE_PROPERTY, { ...(await runtime.gateProperty(ticket, gate)), ...(exceptions.length > 0 ? { exceptions } : {}) });
      });
    },
    // Jira has no review task: the exception is listed in the gate property (and its note is a comment).
    async applyUpdate(ticket, update) {
      if (update.kind !== 'review-task') throw new WriteBackError(`Jira cannot apply a '${update.kind}' update`, { kind: 'refused' });
      const parsed = parseReviewTask(update.body);
      if (!parsed.ok) throw new WriteBackError(parsed.problem, { kind: 'refused' });
      const body = parsed.value;
      await call(async () => {
        const current = await runtime.client.getProperty(ticket.recordId, GATE_PROPERTY);
        const base = current !== null && typeof current === 'object' && !Array.isArray(current) ? (current as GateProperty) : await runtime.gateProperty(ticket, { value: 'pending', digest: '' });
        const listed = exceptionsIn(current);
        const before = listed.find((e) => e.id === body.exceptionId);
        const entry: GateException =
          body.action === 'open'
            ? { id: body.exceptionId, status: 'open', deadline: body.deadline }
            : { id: body.exceptionId, status: body.closeCode === 'unsuccessful' ? 'revoked' : 'accepted', ...(before?.deadline ? { deadline: before.deadline } : {}), closeNotes: body.closeNotes.slice(0, 500) };
        // An exception opened again on a retry keeps what a later close said.
        if (body.action === 'open' && before) return;
        await runtime.client.setProperty(ticket.recordId, GATE_PROPERTY, { ...base, exceptions: [...listed.filter((e) => e.id !== body.exceptionId), entry] });
      });
    },
  };
}
