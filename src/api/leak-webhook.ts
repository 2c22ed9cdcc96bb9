import { fingerprintOf } from '../connectors/secret';
import { AppError, formatPath } from '../errors';
import { type DeliveryHeaders, headerValue, parseJsonBody } from '../itsm/source';
import { fetchAlertSecret, GitHubAlertError, type GitHubSettings } from '../leaks/github-alerts';
import { GITHUB_EVENT, genericReportSchema, githubAlertEventSchema, HUB_SIGNATURE_256, type LeakReport, REPORTING_ACTIONS, verifyHubSignature } from '../leaks/leak-report';
import type { Logger } from '../logger';
import type { ChangeWorkflows } from '../temporal/temporal-client';

export interface LeakWebhookDeps {
  workflows: ChangeWorkflows;
  /** SECRET_SCANNING_WEBHOOK_SECRET; without it every report is refused. */
  secret: string | undefined;
  /** Where GitHub alerts are fetched from; without it GitHub alerts are refused (the generic form still works). */
  github?: GitHubSettings;
  log: Logger;
}

export type LeakReportReply =
  | { status: 200; body: { event: 'ping' } | { ignored: string } | { fingerprint: string; workflowId: string; duplicate: true } }
  | { status: 202; body: { fingerprint: string; workflowId: string; duplicate: false } };

/**
 * `POST /webhooks/secret-scanning`: a secret scanner's report. The signature over the raw bytes first; then GitHub's
 * `secret_scanning_alert` (the literal fetched from the alert API) or the generic `{secret, type, location}`. The
 * literal becomes a fingerprint here and goes no further. The handling runs once per fingerprint (a scanner's repeat
 * is answered `duplicate: true` and changes nothing).
 */
export async function receiveLeakReport(deps: LeakWebhookDeps, raw: Buffer, headers: DeliveryHeaders): Promise<LeakReportReply> {
  const reportedAt = new Date().toISOString();
  if (!deps.secret) throw new AppError(401, 'UNAUTHORIZED', 'secret-scanning reports are not accepted: no SECRET_SCANNING_WEBHOOK_SECRET is configured');
  if (!verifyHubSignature(raw, headerValue(headers, HUB_SIGNATURE_256), deps.secret)) {
    throw new AppError(401, 'UNAUTHORIZED', `missing or invalid ${HUB_SIGNATURE_256} (sha256=<hex HMAC-SHA256 of the raw body>)`);
  }
  const json = parseJsonBody(raw);
  if (!json.ok) throw new AppError(400, json.code, json.message);
  const event = headerValue(headers, GITHUB_EVENT);
  let found: { secret: string; secretType: string; location: string; reporter: LeakReport['reporter'] };
  if (event === 'ping') return { status: 200, body: { event: 'ping' } };
  if (event !== undefined) {
    if (event !== 'secret_scanning_alert') return { status: 200, body: { ignored: `event '${event.slice(0, 60)}' is not a secret scanning alert` } };
    const parsed = githubAlertEventSchema.safeParse(json.body);
    if (!parsed.success) throw invalid(parsed.error.issues);
    const { action, alert, repository } = parsed.data;
    if (!(REPORTING_ACTIONS as readonly string[]).includes(action)) return { status: 200, body: { ignored: `action '${action}' reports no exposure` } };
    if (!deps.github) throw new AppError(503, 'UNAVAILABLE', 'GitHub alerts cannot be fetched: no GITHUB_TOKEN is configured');
    try {
      const fetched = await fetchAlertSecret(deps.github, repository.full_name, alert.number);
      found = { secret: fetched.secret, secretType: alert.secret_type, location: fetched.url ?? alert.html_url ?? `${repository.full_name} alert ${alert.number}`, reporter: 'github' };
    } catch (err) {
      if (err instanceof GitHubAlertError) throw new AppError(502, 'UPSTREAM_FAILED', err.message, [], { cause: err });
      throw err;
    }
  } else {
    const parsed = genericReportSchema.safeParse(json.body);
    if (!parsed.success) throw invalid(parsed.error.issues);
    found = { secret: parsed.data.secret, secretType: parsed.data.type, location: parsed.data.location, reporter: 'generic' };
  }
  // From here on only the fingerprint exists.
  const report: LeakReport = { fingerprint: fingerprintOf(found.secret), secretType: found.secretType, location: found.location, reporter: found.reporter, reportedAt };
  found.secret = '';
  const { workflowId, started } = await deps.workflows.reportLeak(report);
  deps.log.info('leak report', { fingerprint: report.fingerprint, reporter: report.reporter, duplicate: !started });
  return started
    ? { status: 202, body: { fingerprint: report.fingerprint, workflowId, duplicate: false } }
    : { status: 200, body: { fingerprint: report.fingerprint, workflowId, duplicate: true } };
}

/** Names each bad field, never a value (the generic form's `secret` is one). */
function invalid(issues: Array<{ path: (string | number)[]; message: string }>): AppError {
  return new AppError(400, 'VALIDATION_FAILED', 'the report is invalid', issues.map((i) => ({ path: formatPath(i.path) || '(body)', message: i.message })));
}
