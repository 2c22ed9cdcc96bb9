import { join } from 'node:path';
import axios from 'axios';
import type { Page } from 'playwright-core';
import { ROLES, type Role } from '../src/auth/principal';
import { TEST_ENV } from './support/test-env';
import { type DashboardBrowser, ROOT, SCREENSHOTS, startDashboardBrowser } from './support/dashboard-browser';
import { createAccount, type Stack, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';

const SELECT = 'SELECT ON `cgt\\_billing`.*';
const INSERT = 'INSERT ON `cgt_billing`.`invoices`';

/** Who sees which view, and who gets its decide controls (the API's role gates; README's role table). */
const SEES: Record<string, readonly Role[]> = {
  changes: ['change-manager', 'auditor', 'operator', 'security-reviewer'],
  ageing: ['change-manager', 'auditor', 'operator', 'security-reviewer'],
  exceptions: ['security-reviewer', 'auditor', 'change-manager', 'operator'],
  certifications: ['auditor', 'security-reviewer', 'change-manager', 'operator'],
};
const DECIDES: Record<string, readonly Role[]> = { exceptions: ['security-reviewer'], certifications: ['security-reviewer', 'change-manager'] };

/** An emergency joiner the policy lets grant before authorization: the grant opens an exception. */
async function emergencyJoiner(stack: Stack): Promise<{ number: string; account: string; exceptionId: string }> {
  const account = uniqueAccount('dqe');
  const number = uniqueTicketNumber();
  stack.sim.createChange({
    number, type: 'emergency', state: '-3',
    u_identity_actions: JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type: 'person', name: account, host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'PT8H' }]),
  });
  const exceptionId = await waitFor(`the exception of ${number}`, async () => {
    const e = (await stack.closureCheck(number)).data.steps?.[0]?.exception;
    return e?.status === 'open' ? (e.id as string) : null;
  });
  return { number, account, exceptionId };
}

/** A verified mover of an account holding two grants: certification's mover trigger opens an item for it. */
async function certificationItem(stack: Stack, token: string): Promise<{ account: string; id: string }> {
  const account = uniqueAccount('dqc');
  await createAccount(stack.admin, account, [SELECT, INSERT]);
  stack.sim.createChange({
    number: uniqueTicketNumber(), state: '-1', approval: 'approved',
    u_identity_actions: JSON.stringify([{ kind: 'mover', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' }, grants: ['SELECT ON cgt_billing.*', 'INSERT ON cgt_billing.invoices'] }]),
  });
  const id = await waitFor(`the certification item of ${account}`, async () => {
    const items = (await axios.get(`${stack.apiUrl}/api/certifications?status=open&limit=500`, { headers: { authorization: `Bearer ${token}` } })).data.items as Array<{ id: string; name: string }>;
    return items.find((i) => i.name === account)?.id;
  }, 30_000);
  return { account, id };
}

/**
 * The dashboard's views beyond the list of changes — ageing, the emergency-exception queue, the certification queue —
 * as each demo role sees them in Chromium, and decisions taken inline reaching the workflows: real Temporal, MariaDB
 * (target and store), the ServiceNow simulator, the demo identity provider.
 */
describe('dashboard: ageing, the exception and certification queues, per role, decided inline', () => {
  let dash: DashboardBrowser;
  let stack: Stack;
  let auditor: string;
  /** Left undecided, so that every role's visit finds it. */
  let shownException: { number: string; exceptionId: string };
  let shownItem: { account: string; id: string };
  let old: string;

  beforeAll(async () => {
    dash = await startDashboardBrowser();
    stack = await startStack({
      ...dash.stackOptions,
      policy: {
        version: 1,
        emergency: [{ system: 'mysql-local', kinds: ['joiner'] }],
        exceptions: { window: 'PT1H', escalateAfter: 0.5, onDeadline: 'revoke', reviewGroup: 'Security Review' },
        certification: { triggers: { mover: true }, reviewer: { role: 'security-reviewer' }, due: 'PT4H' },
      },
    });
    await dash.serve(stack.apiUrl);
    auditor = (await stack.tokenFor('auditor')).token;
    [shownException, shownItem] = await Promise.all([emergencyJoiner(stack), certificationItem(stack, auditor)]);
    // A change the gateway first received 40 days ago (its first delivery, moved back), still open.
    old = uniqueTicketNumber();
    stack.sim.createChange({
      number: old, state: '-3', approval: 'requested',
      u_identity_actions: JSON.stringify([{ kind: 'mover', system: 'mysql-local', identity: { type: 'service_account', name: uniqueAccount('dqo'), host: '%' }, grants: ['SELECT ON cgt_billing.*'] }]),
    });
    await waitFor('the old change published', async () => (await stack.closureCheck(old)).status === 200);
    await stack.admin.query(`UPDATE \`${TEST_ENV.database}\`.webhook_deliveries SET received_at = NOW(3) - INTERVAL 40 DAY WHERE source = 'servicenow' AND ticket_number = ?`, [old]);
  }, 120_000);
  afterAll(async () => {
    await stack?.stop();
    await dash?.stop();
  });

  /** A fresh browser context logged in as the role's demo user, at `view` (the one asked for before login). */
  async function withPage<T>(role: Role, run: (page: Page) => Promise<T>, view = ''): Promise<T> {
    const context = await dash.browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    try {
      await dash.logIn(page, stack.apiUrl, dash.user(role), view);
      return await run(page);
    } finally {
      await context.close();
    }
  }

  /** Opens a view through the navigation, as a person would, and waits until it has replaced the one before. */
  async function open(page: Page, title: string): Promise<void> {
    const nav = page.getByRole('navigation', { name: 'Views' });
    await nav.getByRole('link', { name: title, exact: true }).click();
    await nav.locator('a[aria-current=page]', { hasText: title }).waitFor();
  }

  it.each<Role>([...ROLES])('as the demo %s: each view shows what the role may see, with decide controls only where the role decides', async (role) => {
    await withPage(role, async (page) => {
      const refused = page.getByRole('alert').filter({ hasText: /^Not for your role/ });

      await open(page, 'Changes');
      if (SEES.changes!.includes(role)) {
        await page.locator('.board').getByRole('link', { name: old, exact: true }).waitFor();
      } else await refused.waitFor();

      await open(page, 'Ageing');
      if (SEES.ageing!.includes(role)) {
        await page.getByRole('region', { name: '31–90 d' }).getByRole('link', { name: old, exact: true }).waitFor();
        await page.getByRole('region', { name: '< 1 d' }).getByRole('link', { name: shownException.number, exact: true }).waitFor();
        if (SCREENSHOTS && role === 'auditor') await page.screenshot({ path: join(ROOT, 'docs/dashboard-ageing.png') });
      } else await refused.waitFor();

      await open(page, 'Exceptions');
      if (SEES.exceptions!.includes(role)) {
        const item = page.getByRole('list', { name: 'Emergency exceptions' }).getByRole('listitem', { name: shownException.exceptionId });
        await item.getByText(/^\d+ (min|h).* left$/).waitFor();
        await item.getByRole('link', { name: shownException.number, exact: true }).waitFor();
        expect(await item.getByRole('button', { name: 'Accept' }).count()).toBe(DECIDES.exceptions!.includes(role) ? 1 : 0);
        expect(await item.getByRole('button', { name: 'Revoke' }).count()).toBe(DECIDES.exceptions!.includes(role) ? 1 : 0);
        if (SCREENSHOTS && role === 'security-reviewer') await page.screenshot({ path: join(ROOT, 'docs/dashboard-exceptions.png') });
      } else await refused.waitFor();

      await open(page, 'Certifications');
      if (SEES.certifications!.includes(role)) {
        const item = page.getByRole('list', { name: 'Certifications' }).getByRole('listitem', { name: `${shownItem.account} on mysql-local` });
        await item.getByText('role security-reviewer').waitFor();
        expect(await item.getByRole('button', { name: 'Decide' }).count()).toBe(DECIDES.certifications!.includes(role) ? 1 : 0);
        expect(await item.getByRole('combobox', { name: INSERT }).count()).toBe(DECIDES.certifications!.includes(role) ? 1 : 0);
        if (SCREENSHOTS && role === 'security-reviewer') await page.screenshot({ path: join(ROOT, 'docs/dashboard-certifications.png') });
      } else await refused.waitFor();
    });
  }, 60_000);

  it('the kind filter keeps the changes that carry an action of that kind', async () => {
    await withPage('auditor', async (page) => {
      const board = page.locator('.board');
      await board.getByRole('link', { name: old, exact: true }).waitFor();
      await page.getByLabel('Kind').selectOption('joiner');
      await board.getByRole('link', { name: shownException.number, exact: true }).waitFor();
      await board.getByRole('link', { name: old, exact: true }).waitFor({ state: 'detached' });
      await page.getByLabel('Kind').selectOption('mover');
      await board.getByRole('link', { name: old, exact: true }).waitFor();
      expect(await board.getByRole('link', { name: shownException.number, exact: true }).count()).toBe(0);
    });
  }, 60_000);

  it("a security reviewer accepts an emergency exception inline, and the ticket's closure-check turns allowed while the reviewer watches the ticket in the dashboard", async () => {
    const { number, exceptionId } = await emergencyJoiner(stack);
    expect((await stack.closureCheck(number)).data.allowed).toBe(false);
    const reviewer = dash.user('security-reviewer');
    // Straight to the queue: the view asked for before login is the one shown after it.
    await withPage('security-reviewer', async (page) => {
      const item = page.getByRole('list', { name: 'Emergency exceptions' }).getByRole('listitem', { name: exceptionId });
      // Refused by the workflow's validator, shown inline; nothing was decided.
      await item.getByRole('button', { name: 'Accept' }).click();
      await item.getByRole('alert').getByText('justification: a decision needs one').waitFor();
      expect((await stack.closureCheck(number)).data.steps[0].exception.status).toBe('open');

      await item.getByLabel('Justification').fill('incident INC0042 needed it');
      await item.getByRole('button', { name: 'Accept' }).click();
      // Decided: it leaves the queue of undecided exceptions.
      await item.waitFor({ state: 'detached' });
      // The reviewer watches the ticket turn closable (its view polls every 5 s).
      await page.goto(`${stack.apiUrl}/dashboard/#/changes/servicenow/${encodeURIComponent(number)}`);
      await page.getByText('May close', { exact: false }).waitFor({ timeout: 30_000 });
    }, '#/exceptions');
    const done = await waitFor('closure allowed after the accept', async () => {
      const r = await stack.closureCheck(number);
      return r.data.allowed ? r.data : null;
    });
    expect(done.steps[0]).toMatchObject({ status: 'verified', cleanup: { status: 'scheduled' }, exception: { status: 'accepted', decision: { decision: 'accept', byPolicy: false, by: { kind: 'person', name: reviewer.username } } } });
  }, 60_000);

  it('the certification queue shows an item, refuses a reviewer the item does not name, and its reviewer decides each grant inline', async () => {
    const { account, id } = await certificationItem(stack, auditor);
    const itemOf = (page: Page) => page.getByRole('list', { name: 'Certifications' }).getByRole('listitem', { name: `${account} on mysql-local` });
    // A change manager passes the route's gate, but this item's reviewer is the security-reviewer role: the workflow says no.
    await withPage('change-manager', async (page) => {
      await open(page, 'Certifications');
      const item = itemOf(page);
      await item.getByLabel('Justification').fill('looks fine');
      await item.getByRole('button', { name: 'Decide' }).click();
      await item.getByRole('alert').getByText('only a principal with the role security-reviewer reviews this item').waitFor();
    });
    const reviewer = dash.user('security-reviewer');
    await withPage('security-reviewer', async (page) => {
      await open(page, 'Certifications');
      const item = itemOf(page);
      await item.getByRole('combobox', { name: INSERT }).selectOption('revoke');
      await item.getByLabel('Justification').fill("inserts are the batch job's, not this service's");
      await item.getByRole('button', { name: 'Decide' }).click();
      await item.waitFor({ state: 'detached' });
    });
    const decided = (await axios.get(`${stack.apiUrl}/api/certifications?limit=500`, { headers: { authorization: `Bearer ${auditor}` } })).data.items.find((i: { id: string }) => i.id === id);
    expect(decided).toMatchObject({
      status: 'revoking',
      decisions: expect.arrayContaining([{ grant: SELECT, decision: 'keep' }, { grant: INSERT, decision: 'revoke' }]),
      decidedBy: { kind: 'person', name: reviewer.username },
      justification: "inserts are the batch job's, not this service's",
    });
  }, 60_000);
});
