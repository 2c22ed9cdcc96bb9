import type { RawDelivery } from '../source';
import { PollingReconciler, isLater, type ReconcileReport, type ReconcilerBase, type SyncCursor } from '../reconciler';
import type { JiraClient } from './jira-client';
import { WEBHOOK_ID_HEADER } from './jira-signature';
import { parseJiraDateTime } from './jira-version';

export interface JiraReconcilerOptions extends ReconcilerBase {
  client: JiraClient;
  projectKey: string;
  /** How far back the very first pass looks (no cursor yet). Default one hour. */
  firstLookbackMs?: number;
  /** Each pass starts this far before the cursor (JQL compares whole minutes; a save can commit late). Default two minutes. */
  overlapMs?: number;
  pageSize?: number;
  /** Pages read per pass at most; the next pass continues from the cursor. */
  maxPages?: number;
}

/**
 * Reconciliation with Jira: Jira retries a webhook for a while and then gives up, and an event it gave up on would
 * leave the change where the gateway last saw it. The worker asks, by JQL, for every issue of the project updated since
 * its cursor, oldest first, and hands each to the webhook's path as an event naming the issue — which reads the issue
 * as Jira holds it now (jira-version.ts), so an issue whose state was delivered already is a duplicate there.
 *
 * The search is relative (`updated >= -Nm`): an absolute JQL date is read in the integration account's own time zone,
 * a relative one is not.
 */
export class JiraReconciler extends PollingReconciler {
  constructor(private readonly opts: JiraReconcilerOptions) {
    super(opts, `jira:${opts.client.baseUrl.replace(/\/+$/, '')}/${opts.projectKey}`);
    if (!/^[A-Z][A-Z0-9_]{1,9}$/.test(opts.projectKey)) throw new Error(`not a Jira project key: ${opts.projectKey.slice(0, 20)}`);
  }

  protected async pass(stored: SyncCursor | undefined, report: ReconcileReport, handed: { newest?: SyncCursor }): Promise<void> {
    const now = this.now();
    const from = stored ? Date.parse(stored.updatedOn) - (this.opts.overlapMs ?? 120_000) : now - (this.opts.firstLookbackMs ?? 3_600_000);
    const minutes = Math.max(1, Math.ceil((now - from) / 60_000));
    const jql = `project = ${this.opts.projectKey} AND updated >= -${minutes}m ORDER BY updated ASC`;
    const maxPages = this.opts.maxPages ?? 50;
    let nextPageToken: string | undefined;
    for (let page = 0; page < maxPages; page++) {
      const result = await this.opts.client.searchUpdated(jql, { maxResults: this.opts.pageSize ?? 100, ...(nextPageToken ? { nextPageToken } : {}) });
      for (const issue of result.issues) {
        const updatedMs = parseJiraDateTime(issue.updated);
        if (updatedMs === undefined || !/^\d{1,18}$/.test(issue.id)) continue;
        report.read++;
        await this.hand(this.delivery(issue.id, issue.key, updatedMs), report);
        const updatedOn = new Date(updatedMs).toISOString();
        const at = { updatedOn, recordId: issue.id };
        if (isLater(at, handed.newest)) handed.newest = at;
      }
      nextPageToken = result.nextPageToken;
      if (!nextPageToken) break;
    }
  }

  /** An event naming the issue, as the webhook's would; what it says is read from Jira on the delivery path. */
  private delivery(id: string, key: string, updatedMs: number): RawDelivery {
    return {
      raw: Buffer.from(JSON.stringify({ webhookEvent: 'jira:issue_updated', issue_event_type_name: 'issue_updated', issue: { id, key } }), 'utf8'),
      // Stable per issue state, so a second pass over the same state is a duplicate by event id as well.
      headers: { [WEBHOOK_ID_HEADER]: `reconcile:${id}:${updatedMs}` },
      receivedAt: new Date(this.now()),
      secret: undefined,
    };
  }
}
