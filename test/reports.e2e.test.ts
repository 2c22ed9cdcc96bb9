import axios from 'axios';
import { kindNames } from '../src/kinds/registry';
import { quantile } from '../src/reports/step-ends';
import { GENESIS_HASH } from '../src/evidence/canonical-json';
import { asApplicationAccount, insertEvidenceRow } from './support/app-account';
import { dropScenarioAccounts, OPS_LEAK_SECRET, type OpsScenario, type OpsTargets, runOpsScenario, startOpsTargets } from './support/ops-scenario';
import { listAll } from './support/listing';
import { type Stack, startStack, waitFor } from './support/stack';

/**
 * The dashboard's reports over real rows: a scenario of real changes on a system of this suite's own (a retried leaver,
 * a joiner, a leaver, a refused mover, a deploy with three runs, a leaked run credential, an orphan found by a scan),
 * and each report filtered by that system counts exactly what the scenario did.
 */
describe('reports: failures per target, deploy credentials, latency and the split by kind, from evidence', () => {
  let targets: OpsTargets;
  let stack: Stack;
  let s: OpsScenario;
  let auditor: string;
  let before: { targets: unknown; kinds: unknown; deploys: unknown; latency: unknown };
  const since = new Date(Date.now() - 60_000).toISOString();

  beforeAll(async () => {
    targets = await startOpsTargets();
    stack = await startStack({ extraConnectors: targets.connectors, leaks: { webhookSecret: OPS_LEAK_SECRET } });
    auditor = (await stack.tokenFor('auditor')).token;
    before = {
      targets: (await report('targets', `system=${targets.system}&since=${since}`)).data,
      kinds: (await report('kinds', `system=${targets.system}&since=${since}`)).data,
      deploys: (await report('deploy-credentials', `system=${targets.system}`)).data,
      latency: (await report('latency', `system=${targets.system}&since=${since}`)).data,
    };
    s = await runOpsScenario(stack, targets);
  }, 240_000);
  afterAll(async () => {
    await dropScenarioAccounts(stack, s);
    await stack?.stop();
    await targets?.stop();
  });

  const report = (name: string, query = '', token?: string) =>
    axios.get(`${stack.apiUrl}/api/reports/${name}?${query}`, { headers: token === '' ? {} : { authorization: `Bearer ${token ?? auditor}` }, validateStatus: () => true });
  const window = () => `system=${s.system}&since=${since}`;

  it('before the scenario, a fresh system has nothing to count', () => {
    expect(before.targets).toMatchObject({ systems: [] });
    expect(before.deploys).toEqual({ minted: 0, revoked: 0, live: 0, failedRevocations: 0, bySystem: [], credentials: [] });
    expect((before.kinds as { total: number }).total).toBe(0);
    expect(before.latency).toMatchObject({ overall: { verified: 0, p50Ms: null, p95Ms: null } });
  });

  it('per target system: the refused mover is a failure with its reason, the retried leaver counts its retry, the leak and the scan findings are there', async () => {
    expect(s.retried.attempt).toBeGreaterThanOrEqual(2);
    const res = await report('targets', window());
    expect(res.status).toBe(200);
    const [mine, ...others] = res.data.systems as Array<Record<string, unknown>>;
    expect(others).toEqual([]);
    // Steps: 2 leavers, 1 joiner, 1 mover, and the deploy's readiness, three mints and two revocations.
    expect(mine).toMatchObject({ system: s.system, steps: 10, verified: 9, failed: 1, failureRate: 0.1, retries: s.retried.attempt - 1, reReads: 0 });
    expect(mine!.recentFailures).toEqual([expect.objectContaining({ source: 'servicenow', ticket: s.mover.ticket, kind: 'mover', detail: s.mover.reason })]);
    expect(mine!.leaks).toEqual({ reports: 1, byOutcome: { 'run-ended': 1 } });
    // Drift as the drift table holds it: every open finding on the system, the orphan among them. Read with the
    // listing back to back (the stack's hourly discovery may scan in between, and then they are read again).
    const operator = (await stack.tokenFor('operator')).token;
    // The listing is read whole: the system is a door to the machine's MariaDB, which keeps what earlier runs left.
    const { drift, listed } = await waitFor('the report and the drift listing read alike', async () => {
      const d = ((await report('targets', window())).data.systems[0] as { drift: { open: number; byType: Record<string, number> } }).drift;
      const l = await listAll<{ name: string; type: string }>(`${stack.apiUrl}/api/drift?system=${s.system}&status=open`, operator);
      return d.open === l.length ? { drift: d, listed: l } : null;
    }, 10_000);
    expect(listed).toContainEqual(expect.objectContaining({ name: s.orphan, type: 'orphan' }));
    expect(drift.byType.orphan).toBe(listed.filter((i) => i.type === 'orphan').length);
  });

  it('deploy credentials: three minted, two revoked (finished, leaked), the live one listed with its run', async () => {
    const res = await report('deploy-credentials', `system=${s.system}`);
    expect(res.status).toBe(200);
    expect(res.data).toMatchObject({ minted: 3, revoked: 2, live: 1, failedRevocations: 0, bySystem: [{ system: s.system, minted: 3, revoked: 2, live: 1 }] });
    expect(res.data.credentials).toEqual([
      expect.objectContaining({ source: 'servicenow', ticket: s.deploy.ticket, runId: s.deploy.liveRun, system: s.system, identity: s.deploy.liveAccount, revocationFailed: false }),
    ]);
    expect(await stack.accountExists(s.deploy.liveAccount)).toBe(true);
  });

  it('the split by kind: joiner, leaver and deploy all verified, the mover failed; every kind listed', async () => {
    const res = await report('kinds', window());
    expect(res.status).toBe(200);
    expect(res.data.total).toBe(10);
    const by = Object.fromEntries((res.data.kinds as Array<{ kind: string }>).map((k) => [k.kind, k]));
    expect(Object.keys(by)).toEqual(kindNames());
    expect(by.joiner).toEqual({ kind: 'joiner', changes: 1, steps: 1, verified: 1, failed: 0, successRate: 1, share: 0.1 });
    expect(by.leaver).toEqual({ kind: 'leaver', changes: 2, steps: 2, verified: 2, failed: 0, successRate: 1, share: 0.2 });
    expect(by.mover).toEqual({ kind: 'mover', changes: 1, steps: 1, verified: 0, failed: 1, successRate: 0, share: 0.1 });
    expect(by.deploy).toEqual({ kind: 'deploy', changes: 1, steps: 6, verified: 6, failed: 0, successRate: 1, share: 0.6 });
    expect(by.decommission).toMatchObject({ steps: 0, successRate: null, share: 0 });
  });

  it('latency: p50 and p95 of event-to-verified over the verified rows, and the throughput per hour adds up', async () => {
    const res = await report('latency', `${window()}&bucket=hour`);
    expect(res.status).toBe(200);
    const ends = s.rows.filter((r) => r.verified && r.verifiedAt && !['claimed', 'planned'].includes(r.outcome));
    const ms = ends.map((r) => Math.max(0, Date.parse(r.verifiedAt!) - Date.parse(r.eventReceivedAt))).sort((a, b) => a - b);
    expect(ms).toHaveLength(9);
    expect(res.data.overall).toEqual({ verified: 9, p50Ms: quantile(ms, 0.5), p95Ms: quantile(ms, 0.95) });
    const points = res.data.points as Array<{ verified: number; failed: number }>;
    expect(points.reduce((n, p) => n + p.verified, 0)).toBe(9);
    expect(points.reduce((n, p) => n + p.failed, 0)).toBe(1);
    const onlyLeavers = await report('latency', `${window()}&kind=leaver`);
    expect(onlyLeavers.data.overall.verified).toBe(2);
  });

  it('rows the gateway did not write (unsealed, through the application account) change no figure', async () => {
    const now = new Date().toISOString();
    const forged = (n: number, fields: Record<string, unknown>) => ({
      ticketKey: `servicenow:CHG9${String(n).padStart(8, '0')}`, seq: 1, prevHash: GENESIS_HASH, recordedAt: now, system: s.system, identity: { name: `forged_${n}` },
      desiredState: {}, observedState: {}, verification: { attempts: { activity: 9 } }, actor: 'changegate-worker@test', eventReceivedAt: now, startedAt: now, ...fields,
    });
    const counts = async () => ({
      targets: (await report('targets', window())).data.systems,
      deploys: (await report('deploy-credentials', `system=${s.system}`)).data,
      kinds: (await report('kinds', window())).data.kinds,
    });
    const before = await counts();
    await asApplicationAccount(stack.admin, async (app) => {
      await insertEvidenceRow(app, forged(1, { stepId: 'deploy:x:run:rx', outcome: 'minted', actionKind: 'deploy', verified: true, verifiedAt: now, desiredState: { run: 'rx' } }));
      await insertEvidenceRow(app, forged(2, { stepId: 'mover:x', outcome: 'failed', actionKind: 'mover', verified: false, verifiedAt: null }));
    });
    expect(await counts()).toEqual(before);
  });

  it('refuses bad input with what and where, and asks for a token', async () => {
    const bad = await report('latency', 'since=yesterday&bucket=minute&kind=hire&colour=red');
    expect(bad.status).toBe(400);
    expect(bad.data.error.issues).toEqual(
      expect.arrayContaining([
        { path: 'query', message: "unknown filter 'colour' (filters: since, until, system, kind, bucket)" },
        { path: 'query.since', message: expect.stringContaining('must be an ISO 8601 time') },
        { path: 'query.bucket', message: 'must be one of hour, day' },
        { path: 'query.kind', message: expect.stringContaining('must be an action kind') },
      ]),
    );
    const backwards = await report('kinds', 'since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z');
    expect([backwards.status, backwards.data.error.issues]).toEqual([400, [{ path: 'query.since', message: 'must be before until' }]]);
    const tooFine = await report('latency', 'since=2025-01-01T00:00:00Z&until=2026-01-01T00:00:00Z&bucket=hour');
    expect([tooFine.status, tooFine.data.error.issues[0].path]).toEqual([400, 'query.bucket']);
    // The ends of what the time format allows are an empty window, not a database error.
    for (const q of ['since=0001-01-01T00:00:00Z&until=0001-01-02T00:00:00Z', 'since=9999-12-30T00:00:00Z&until=9999-12-31T23:59:59.999Z', 'until=0001-01-02T00:00:00%2B14:00']) {
      const edge = await report('kinds', q);
      expect([q, edge.status, edge.data.total]).toEqual([q, 200, 0]);
    }
    expect((await report('deploy-credentials', 'system=')).status).toBe(400);
    expect((await report('targets', '', '')).status).toBe(401);
    expect((await report('targets', '', (await stack.tokenFor('integration')).token)).status).toBe(403);
  });
});
