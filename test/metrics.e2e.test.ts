import axios from 'axios';
import { workflowIdFor } from '../src/change/ticket';
import { type FlakyPort, startFlakyPort } from './support/flaky-port';
import { type Stack, createAccount, leaverActions, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { TEST_ENV } from './support/test-env';

/**
 * Prometheus metrics on the real stack (Temporal, MariaDB, the ServiceNow simulator): each counter and the histogram
 * moves by exactly what the test made happen, the gauges follow the tables they read, and the endpoint is served on
 * its own listener only.
 */

type Labels = Record<string, string>;
interface Sample { name: string; labels: Labels; value: number }

/** The exposition text's samples (`name{a="b",…} value`); comments and blank lines skipped. */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Labels = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] as string] = (l[2] as string).replace(/\\(.)/g, '$1');
    samples.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return samples;
}

class Scrape {
  constructor(readonly text: string, private readonly samples = parseExposition(text)) {}
  /** The sum over the samples of `name` whose labels include `labels` (0 when there is none). */
  value(name: string, labels: Labels = {}): number {
    return this.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);
  }
}

const STEPS = 'changegate_steps_total';
const DELIVERIES = 'changegate_webhook_deliveries_total';
const FLAKY = 'mysql-flaky';
const joiner = (name: string, type = 'service_account') =>
  JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type, name, host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'PT8H' }]);

describe('Prometheus metrics of a running gateway (real Temporal, real MariaDB, simulated ServiceNow)', () => {
  let stack: Stack;
  let flaky: FlakyPort;
  beforeAll(async () => {
    flaky = await startFlakyPort({ host: '127.0.0.1', port: 3306 });
    stack = await startStack({
      extraConnectors: [
        // The machine's MariaDB through a port this test takes away, so that a step's activity is retried.
        { name: FLAKY, type: 'mysql', host: '127.0.0.1', port: flaky.port, user: TEST_ENV.connectorUser, passwordEnv: 'CG_TEST_CONNECTOR_PASSWORD', policy: { protectedAccounts: ['root', 'mysql', 'mariadb.sys'] } },
      ],
      policy: { version: 1, emergency: [{ system: 'mysql-local', kinds: ['joiner'] }], exceptions: { window: 'PT1H', escalateAfter: 0.5, onDeadline: 'revoke', reviewGroup: 'Security Review' } },
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await flaky?.stop();
  }, 60_000);

  const scrape = async (): Promise<Scrape> => {
    const r = await axios.get<string>(stack.metricsUrl, { responseType: 'text', validateStatus: () => true });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    return new Scrape(r.data);
  };
  const evidenceOf = (number: string) => stack.evidence.list(`servicenow:${number}`);

  it('a leaver and a joiner through ServiceNow move deliveries, steps and the event-to-verified histogram by exactly what happened', async () => {
    const before = await scrape();
    const simBefore = stack.sim.deliveries.length;
    const started = Date.now();

    const leaverAccount = uniqueAccount('mlv');
    await createAccount(stack.admin, leaverAccount);
    const leaverNumber = uniqueTicketNumber();
    const leaver = stack.sim.createChange({ number: leaverNumber, state: '-5', u_identity_actions: leaverActions(leaverAccount) });
    const joinerAccount = uniqueAccount('mjn');
    const joinerNumber = uniqueTicketNumber();
    stack.sim.createChange({ number: joinerNumber, state: '-1', approval: 'approved', u_identity_actions: joiner(joinerAccount) });

    for (const number of [leaverNumber, joinerNumber]) {
      await waitFor(`closure allowed on ${number}`, async () => (await stack.closureCheck(number)).data.allowed === true);
    }
    const rows = [...(await evidenceOf(leaverNumber)), ...(await evidenceOf(joinerNumber))];
    expect(rows.map((r) => [r.actionKind, r.outcome, r.verified])).toEqual([['leaver', 'revoked', true], ['joiner', 'granted', true]]);

    // A copy of the leaver's first delivery (same record, same version), and one whose signature does not match.
    const copy = { ...stack.sim.getChange(leaver.sys_id as string), sys_mod_count: '0' };
    const dup = await stack.deliver(copy);
    expect(dup.data).toMatchObject({ duplicate: true });
    expect((await stack.deliver(copy, { secret: 'not-the-webhook-secret-at-all' })).status).toBe(401);

    // Every delivery the simulator made was answered and counted (the gateway's own writes to the ticket fire more).
    const after = await waitFor('every simulator delivery counted', async () => {
      await stack.sim.waitForDeliveries();
      const s = await scrape();
      const simMade = stack.sim.deliveries.slice(simBefore);
      const answered202 = simMade.filter((d) => d.status === 202).length + 1;
      const counted202 = (['accepted', 'duplicate', 'ignored'] as const).reduce((n, o) => n + s.value(DELIVERIES, { source: 'servicenow', outcome: o, status: '202' }) - before.value(DELIVERIES, { source: 'servicenow', outcome: o, status: '202' }), 0);
      return counted202 === answered202 && simMade.every((d) => d.status === 202) ? s : null;
    });
    // Names stay out of telemetry: no ticket number, no identity's name anywhere in the text.
    for (const name of [leaverAccount, joinerAccount, leaverNumber, joinerNumber]) expect(after.text).not.toContain(name);
    const delta = (name: string, labels: Labels = {}) => after.value(name, labels) - before.value(name, labels);
    expect(delta(DELIVERIES, { source: 'servicenow', outcome: 'duplicate' })).toBe(1);
    expect(delta(DELIVERIES, { source: 'servicenow', outcome: 'refused' })).toBe(1);
    expect(delta(DELIVERIES, { source: 'servicenow', outcome: 'refused', status: '401' })).toBe(1);

    expect(delta(STEPS)).toBe(2);
    expect(delta(STEPS, { kind: 'leaver', system: 'mysql-local', outcome: 'verified' })).toBe(1);
    expect(delta(STEPS, { kind: 'joiner', system: 'mysql-local', outcome: 'verified' })).toBe(1);

    // The histogram observed each step's own eventReceivedAt → verifiedAt, as its evidence row records them.
    expect(delta('changegate_event_to_verified_seconds_count')).toBe(2);
    const seconds = rows.map((r) => (Date.parse(r.verifiedAt as string) - Date.parse(r.eventReceivedAt)) / 1000);
    expect(delta('changegate_event_to_verified_seconds_sum')).toBeCloseTo(seconds[0]! + seconds[1]!, 3);
    expect(delta('changegate_event_to_verified_seconds_count', { kind: 'leaver', system: 'mysql-local' })).toBe(1);
    const elapsed = (Date.now() - started) / 1000;
    expect(delta('changegate_event_to_verified_seconds_bucket', { kind: 'joiner', le: '+Inf' })).toBe(1);
    expect(delta('changegate_event_to_verified_seconds_bucket', { kind: 'joiner', le: '0.5' }) + (seconds[1]! > 0.5 ? 0 : -1)).toBe(0);
    expect(elapsed).toBeGreaterThan(Math.max(...seconds));

  }, 90_000);

  it('a refused step and a retried one are counted as such, the retries as many as Temporal made', async () => {
    const before = await scrape();
    // A mover of an identity that does not exist: the target refuses it.
    const moverNumber = uniqueTicketNumber();
    stack.sim.createChange({
      number: moverNumber, state: '-1', approval: 'approved',
      u_identity_actions: JSON.stringify([{ kind: 'mover', system: 'mysql-local', identity: { type: 'service_account', name: uniqueAccount('mmv'), host: '%' }, grants: ['SELECT ON cgt_billing.*'] }]),
    });
    // A leaver on a target that is away for a few attempts.
    const account = uniqueAccount('mfl');
    await createAccount(stack.admin, account);
    await flaky.down();
    const number = uniqueTicketNumber();
    stack.sim.createChange({ number, state: '-5', u_identity_actions: JSON.stringify([{ kind: 'leaver', system: FLAKY, identity: { type: 'service_account', name: account, host: '%' } }]) });
    const handle = stack.workflows.client.workflow.getHandle(workflowIdFor('servicenow', number));
    await waitFor('the third attempt of the step', async () => ((await handle.describe()).raw.pendingActivities?.[0]?.attempt ?? 0) >= 3, 30_000);
    await flaky.up();
    await waitFor('closure allowed once the account is revoked', async () => (await stack.closureCheck(number)).data.allowed === true, 60_000);
    await waitFor('the mover refused', async () => (await stack.closureCheck(moverNumber)).data.steps?.[0]?.status === 'failed');

    // The attempts Temporal made of each activity on the flaky system, as its history records them.
    let attempts = 0;
    for (const event of (await handle.fetchHistory()).events ?? []) attempts += Math.max(0, (event.activityTaskStartedEventAttributes?.attempt ?? 1) - 1);
    expect(attempts).toBeGreaterThanOrEqual(2);
    const after = await waitFor('the steps counted', async () => {
      const s = await scrape();
      return s.value(STEPS) - before.value(STEPS) === 2 ? s : null;
    });
    const delta = (name: string, labels: Labels = {}) => after.value(name, labels) - before.value(name, labels);
    expect(delta('changegate_connector_retries_total')).toBe(attempts);
    expect(delta('changegate_connector_retries_total', { activity: 'applyVerifyRecord', system: FLAKY })).toBe(attempts);
    expect(delta(STEPS, { kind: 'leaver', system: FLAKY, outcome: 'verified' })).toBe(1);
    expect(delta(STEPS, { kind: 'mover', system: 'mysql-local', outcome: 'refused' })).toBe(1);
    expect(delta(STEPS, { outcome: 'failed' })).toBe(0);
  }, 120_000);

  it('the gauges follow the tables: a blocked ticket, an open emergency exception, open certifications', async () => {
    const countOf = async (sql: string) => Number(((await stack.ds.query(sql)) as Array<{ n: number | string }>)[0]?.n);
    const before = await scrape();
    // An emergency joiner before authorization: granted at once, an exception opened, closure blocked until decided.
    const number = uniqueTicketNumber();
    stack.sim.createChange({ number, type: 'emergency', state: '-3', u_identity_actions: joiner(uniqueAccount('mem'), 'person') });
    const exception = await waitFor('the open exception', async () => {
      const r = await stack.closureCheck(number);
      return r.data.steps?.[0]?.exception?.status === 'open' ? (r.data.steps[0].exception as { id: string }) : null;
    });
    const open = await waitFor('the gauges moved', async () => {
      const s = await scrape();
      return s.value('changegate_open_emergency_exceptions', { status: 'open' }) === before.value('changegate_open_emergency_exceptions', { status: 'open' }) + 1 ? s : null;
    });
    expect(open.value('changegate_blocked_tickets')).toBe(before.value('changegate_blocked_tickets') + 1);
    expect(open.value('changegate_open_certifications')).toBe(await countOf("SELECT COUNT(*) AS n FROM certification_items WHERE status IN ('open', 'escalated')"));
    expect(open.value('changegate_outbox_backlog_tickets')).toBe(before.value('changegate_outbox_backlog_tickets'));

    const reviewer = (await stack.tokenFor('security-reviewer')).token;
    const decided = await axios.post(`${stack.apiUrl}/api/exceptions/${exception.id}/decision`, { decision: 'accept', justification: 'emergency fix confirmed with the service owner' }, { headers: { authorization: `Bearer ${reviewer}` }, validateStatus: () => true });
    expect(decided.status).toBe(200);
    await waitFor('closure allowed once accepted', async () => (await stack.closureCheck(number)).data.allowed === true);
    const closed = await waitFor('the gauges back', async () => {
      const s = await scrape();
      return s.value('changegate_open_emergency_exceptions', { status: 'open' }) === before.value('changegate_open_emergency_exceptions', { status: 'open' }) ? s : null;
    });
    expect(closed.value('changegate_blocked_tickets')).toBe(before.value('changegate_blocked_tickets'));
  }, 90_000);

  it('the outbox backlog counts a ticket while its updates wait for ServiceNow, and not once they are delivered', async () => {
    const backlog = async () => (await scrape()).value('changegate_outbox_backlog_tickets');
    const before = await backlog();
    const account = uniqueAccount('mob');
    await createAccount(stack.admin, account);
    const number = uniqueTicketNumber();
    // ServiceNow answers 503 to every API call; its business rule still fires the webhook.
    stack.sim.faults.serverError({ status: 503, retryAfterSeconds: 1 });
    try {
      stack.sim.createChange({ number, state: '-5', u_identity_actions: leaverActions(account) });
      await waitFor('closure-check waiting to deliver', async () => ((await stack.closureCheck(number)).data.reasons ?? []).some((r: string) => r.startsWith('waiting to deliver')));
      expect(await backlog()).toBe(before + 1);
    } finally {
      await stack.sim.faults.restore();
    }
    await waitFor('closure allowed once delivered', async () => (await stack.closureCheck(number)).data.allowed === true, 30_000);
    expect(await backlog()).toBe(before);
  }, 60_000);

  it('is served on its own listener only: the API has no /metrics, and the listener serves nothing else', async () => {
    // A delivery to a source the API does not serve is counted under `unknown`: a caller cannot add label values.
    const name = `nosuch${uniqueAccount('src')}`;
    const before = await scrape();
    expect((await axios.post(`${stack.apiUrl}/webhooks/${name}`, '{}', { validateStatus: () => true })).status).toBe(404);
    const after = await scrape();
    expect(after.value(DELIVERIES, { source: 'unknown', outcome: 'refused', status: '404' }) - before.value(DELIVERIES, { source: 'unknown', outcome: 'refused', status: '404' })).toBe(1);
    expect(after.text).not.toContain(name);

    const admin = await axios.get(`${stack.apiUrl}/metrics`, { headers: { authorization: `Bearer ${TEST_ENV.adminToken}` }, validateStatus: () => true });
    expect(admin.status).toBe(404);
    const other = await axios.get(stack.metricsUrl.replace(/\/metrics$/, '/api/exceptions'), { validateStatus: () => true });
    expect(other.status).toBe(404);
    const post = await axios.post(stack.metricsUrl, '', { validateStatus: () => true });
    expect(post.status).toBe(404);
    expect(new URL(stack.metricsUrl).port).not.toBe(new URL(stack.apiUrl).port);
    expect(new URL(stack.metricsUrl).hostname).toBe('127.0.0.1');
  });
});
