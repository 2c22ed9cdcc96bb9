import { join } from 'node:path';
import axios from 'axios';
import type { BrowserContext, Locator, Page } from 'playwright-core';
import type { Role } from '../src/auth/principal';
import { duration } from '../dashboard/src/ops/reports';
import { type DashboardBrowser, ROOT, SCREENSHOTS, startDashboardBrowser } from './support/dashboard-browser';
import { listAll } from './support/listing';
import { dropScenarioAccounts, OPS_LEAK_SECRET, type OpsScenario, type OpsTargets, runOpsScenario, startOpsTargets } from './support/ops-scenario';
import { type Stack, startStack, waitFor } from './support/stack';

/**
 * The operations views in Debian's Chromium, logged in through the demo identity provider: after a scenario of real
 * changes on a system of this suite's own, each view shows the figures those rows make.
 */
describe('dashboard operations views: targets, inventory, deploy credentials, latency, kinds', () => {
  let dash: DashboardBrowser;
  let targets: OpsTargets;
  let stack: Stack;
  let s: OpsScenario;
  let context: BrowserContext;

  beforeAll(async () => {
    dash = await startDashboardBrowser();
    targets = await startOpsTargets();
    stack = await startStack({ ...dash.stackOptions, extraConnectors: targets.connectors, leaks: { webhookSecret: OPS_LEAK_SECRET } });
    await dash.serve(stack.apiUrl);
    s = await runOpsScenario(stack, targets);
  }, 240_000);
  afterAll(async () => {
    await dropScenarioAccounts(stack, s);
    await stack?.stop();
    await targets?.stop();
    await dash?.stop();
  });
  beforeEach(async () => {
    context = await dash.browser.newContext({ viewport: { width: 1400, height: 900 } });
  });
  afterEach(async () => {
    await context.close();
  });

  const open = async (role: Role, view: string): Promise<Page> => {
    const page = await context.newPage();
    await dash.logIn(page, stack.apiUrl, dash.user(role), view);
    return page;
  };
  /** Reads until the page shows `expected` (the views poll); on the deadline, fails showing what it read last. */
  const eventually = async <T>(read: () => Promise<T>, expected: T) => {
    let last: T | undefined;
    await waitFor('the page to show the figures', async () => {
      last = await read();
      return JSON.stringify(last) === JSON.stringify(expected);
    }, 15_000, 200).catch(() => undefined);
    expect(last).toEqual(expected);
  };
  /** A table row's data cells. */
  const cellsOf = (row: Locator, expected: string[]) => eventually(() => row.getByRole('cell').allTextContents(), expected);
  const shot = async (page: Page, name: string) => {
    if (SCREENSHOTS) await page.screenshot({ path: join(ROOT, `docs/${name}.png`), fullPage: true });
  };
  const filter = (page: Page, label: string, value: string) => page.getByRole('textbox', { name: label, exact: true }).fill(value);
  /** A figure of a view's `<dl aria-label=group>`: the value under the term. */
  const figure = (page: Page, group: string, term: string) => page.locator(`dl[aria-label="${group}"] > div`).filter({ has: page.locator('dt', { hasText: new RegExp(`^${term}$`) }) }).locator('dd');

  it('as an operator: the system shows its failed step with the reason, its retry, its open drift and the leak report', async () => {
    const operator = (await stack.tokenFor('operator')).token;
    // Read whole: the system is a door to the machine's MariaDB, which keeps the accounts earlier runs left.
    const openDrift = async () => (await listAll(`${stack.apiUrl}/api/drift?system=${s.system}&status=open`, operator)).length;
    expect(await openDrift()).toBeGreaterThan(0);
    const page = await open('operator', '#/targets');
    await page.getByRole('heading', { name: 'Target systems: failures, retries, drift and leaks' }).waitFor();
    const row = page.getByRole('table', { name: 'Target systems' }).getByRole('row', { name: s.system, exact: true });
    // Open drift as the listing has it when the page is read (the stack's hourly discovery may scan meanwhile).
    const want = (drift: number) => ['10', '9', '1', '10 %', String(s.retried.attempt - 1), '0', String(drift), '1'];
    let read: { shown: string[]; want: string[] } | undefined;
    await waitFor('the system row to show the figures', async () => {
      read = { shown: await row.getByRole('cell').allTextContents(), want: want(await openDrift()) };
      return JSON.stringify(read.shown) === JSON.stringify(read.want);
    }, 15_000, 200).catch(() => undefined);
    expect(read?.shown).toEqual(read?.want);
    const failures = page.getByRole('region', { name: `Recent failures on ${s.system}` });
    await failures.getByRole('listitem').filter({ has: page.getByRole('link', { name: s.mover.ticket, exact: true }) }).getByText(s.mover.reason, { exact: false }).waitFor();
    await shot(page, 'dashboard-targets');
  });

  it('as an auditor: the inventory filtered by owner shows the joiner with its workload; by system and status, the orphans the scan found, 500 at most; by name, the one', async () => {
    const page = await open('auditor', '#/inventory');
    await filter(page, 'Owner', s.owner);
    const identities = page.getByRole('table', { name: 'Identities' });
    await eventually(() => identities.getByRole('row').count(), 2);
    const joiner = identities.getByRole('row', { name: `${s.joiner.account}@% on ${s.system}` });
    await eventually(async () => (await joiner.getByRole('cell').allTextContents()).slice(0, 7), [`${s.joiner.account}@%`, s.system, 'service_account', s.owner, s.workload, 'managed', '1']);
    await filter(page, 'Owner', '');
    await filter(page, 'System', s.system);
    await page.getByLabel('Status').selectOption('orphan');
    // Every orphan on the system (the machine's MariaDB keeps the accounts earlier runs left, so there may be more
    // than a page): the view shows the listing's first 500 in its order, and a count past that as 500+.
    const auditor = (await stack.tokenFor('auditor')).token;
    const orphans = await listAll<{ name: string; host: string; system: string }>(`${stack.apiUrl}/api/inventory?system=${s.system}&status=orphan`, auditor);
    expect(orphans).toContainEqual(expect.objectContaining({ name: s.orphan, host: '%', system: s.system }));
    await eventually(() => figure(page, 'Inventory', 'Orphans').textContent(), orphans.length > 500 ? '500+' : String(orphans.length));
    const rowNames = () => identities.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('aria-label')));
    await eventually(rowNames, orphans.slice(0, 500).map((i) => `${i.name}@${i.host || '-'} on ${i.system}`));
    await shot(page, 'dashboard-inventory');
    // By name, whatever the count: the orphan the scan found, and only it.
    await filter(page, 'Name', s.orphan);
    await identities.getByRole('row', { name: `${s.orphan}@% on ${s.system}` }).getByRole('cell', { name: 'orphan', exact: true }).waitFor();
    await eventually(rowNames, [`${s.orphan}@% on ${s.system}`]);
    await eventually(() => figure(page, 'Inventory', 'Orphans').textContent(), '1');
  });

  it('as an operator: deploy credentials on the system are 3 minted, 2 revoked, 1 live, and the live run is listed', async () => {
    const page = await open('operator', '#/deploys');
    await filter(page, 'System', s.system);
    const figures = async () => Promise.all(['Minted', 'Revoked', 'Still live'].map((t) => figure(page, 'Deploy credentials', t).textContent()));
    await eventually(figures, ['3', '2', '1']);
    const live = page.getByRole('table', { name: 'Live credentials' }).getByRole('row').filter({ has: page.getByRole('link', { name: s.deploy.ticket, exact: true }) });
    await live.getByRole('cell', { name: s.deploy.liveRun, exact: true }).waitFor();
    await live.getByRole('cell', { name: s.deploy.liveAccount, exact: true }).waitFor();
    await shot(page, 'dashboard-deploys');
  });

  it("as an auditor: latency on the system is the rows' p50 and p95, over 9 verified steps, with both charts drawn", async () => {
    const auditor = (await stack.tokenFor('auditor')).token;
    const page = await open('auditor', '#/latency');
    await filter(page, 'System', s.system);
    const report = (await axios.get(`${stack.apiUrl}/api/reports/latency?system=${s.system}&since=${new Date(Date.now() - 86_400_000).toISOString()}`, { headers: { authorization: `Bearer ${auditor}` } })).data;
    expect(report.overall.verified).toBe(9);
    const figures = async () => Promise.all(['Steps verified', 'p50', 'p95'].map((t) => figure(page, 'Overall', t).textContent()));
    await eventually(figures, ['9', duration(report.overall.p50Ms), duration(report.overall.p95Ms)]);
    await page.getByRole('img', { name: 'Event-to-verified latency, p50 and p95' }).locator('circle').first().waitFor();
    expect(await page.getByRole('img', { name: 'Throughput: steps verified and failed' }).locator('rect[height]:not([height="0"])').count()).toBeGreaterThan(0);
    await shot(page, 'dashboard-latency');
  });

  it('as an auditor: the split by kind on the system, with success rates', async () => {
    const page = await open('auditor', '#/kinds');
    await filter(page, 'System', s.system);
    const table = page.getByRole('table', { name: 'Kinds' });
    await cellsOf(table.getByRole('row', { name: 'joiner', exact: true }), ['1', '1', '1', '0', '100 %', '10 %']);
    await cellsOf(table.getByRole('row', { name: 'leaver', exact: true }), ['2', '2', '2', '0', '100 %', '20 %']);
    await cellsOf(table.getByRole('row', { name: 'mover', exact: true }), ['1', '1', '0', '1', '0 %', '10 %']);
    await cellsOf(table.getByRole('row', { name: 'deploy', exact: true }), ['1', '6', '6', '0', '100 %', '60 %']);
    await cellsOf(table.getByRole('row', { name: 'decommission', exact: true }), ['0', '0', '0', '0', '–', '0 %']);
    await shot(page, 'dashboard-kinds');
  });
});
