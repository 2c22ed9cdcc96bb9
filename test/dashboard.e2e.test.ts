import { statSync } from 'node:fs';
import { join } from 'node:path';
import axios from 'axios';
import type { Page } from 'playwright-core';
import type { Role } from '../src/auth/principal';
import { type DemoUser, ensureDemoUsers } from '../src/launcher/demo-identity-provider';
import { type DashboardBrowser, ROOT, SCREENSHOTS, startDashboardBrowser } from './support/dashboard-browser';
import { type Stack, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';

/**
 * The dashboard in Debian's Chromium, against a real stack: people log in at the demo identity provider (the one
 * `npm start` runs without an issuer) with authorization code + PKCE, and the API admits their tokens through its
 * ordinary OIDC settings.
 */
describe('dashboard: login through the demo identity provider, changes by gate state, one ticket', () => {
  let dash: DashboardBrowser;
  let users: DemoUser[];
  let stack: Stack;
  let blocked: string;

  beforeAll(async () => {
    dash = await startDashboardBrowser();
    users = dash.users;
    stack = await startStack(dash.stackOptions);
    await dash.serve(stack.apiUrl);
    // A mover of an identity that does not exist: the target refuses it, and closure says why.
    blocked = uniqueTicketNumber();
    stack.sim.createChange({
      number: blocked, state: '-1', approval: 'approved',
      u_identity_actions: JSON.stringify([{ kind: 'mover', system: 'mysql-local', identity: { type: 'service_account', name: uniqueAccount('dmv'), host: '%' }, grants: ['SELECT ON cgt_billing.*'] }]),
    });
    await waitFor('the mover refused', async () => (await stack.closureCheck(blocked)).data.steps?.[0]?.status === 'failed');
  }, 120_000);
  afterAll(async () => {
    await stack?.stop();
    await dash?.stop();
  });

  const user = (role: Role) => dash.user(role);
  const logIn = (page: Page, who: DemoUser) => dash.logIn(page, stack.apiUrl, who);

  it.each<Role>(['auditor', 'change-manager'])('as the demo %s: sees the blocked ticket and its reason, and opens the ticket', async (role) => {
    const context = await dash.browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    try {
      await logIn(page, user(role));
      const column = page.getByRole('region', { name: 'Blocked' });
      const entry = column.getByRole('listitem').filter({ has: page.getByRole('link', { name: blocked, exact: true }) });
      await entry.waitFor();
      const reason = (await stack.closureCheck(blocked)).data.reasons[0] as string;
      expect(reason.length).toBeGreaterThan(0);
      await entry.getByText(reason, { exact: true }).waitFor();
      if (SCREENSHOTS && role === 'auditor') await page.screenshot({ path: join(ROOT, 'docs/dashboard-changes.png') });

      await entry.getByRole('link', { name: blocked, exact: true }).click();
      await page.getByRole('heading', { name: `servicenow ${blocked}` }).waitFor();
      const steps = page.getByRole('table', { name: 'Steps' });
      await steps.getByRole('cell', { name: 'failed', exact: true }).waitFor();
      await page.getByRole('list', { name: 'Reasons' }).getByText(reason, { exact: true }).waitFor();
      // The refusal is evidence too: its rows and the chain check over them.
      const evidence = page.getByRole('table', { name: 'Evidence' });
      await evidence.getByRole('row').nth(1).waitFor();
      const bundle = (await axios.get(`${stack.apiUrl}/api/changes/servicenow/${blocked}/evidence`, { headers: { authorization: `Bearer ${(await stack.tokenFor('auditor')).token}` } })).data;
      expect(await evidence.getByRole('row').count()).toBe(bundle.rows.length + 1);
      await page.getByText(`Hash chain intact over ${bundle.rows.length} rows`).waitFor();
      expect(await page.getByRole('link', { name: 'Workflow in Temporal UI' }).getAttribute('href')).toBe(`http://127.0.0.1:8233/namespaces/default/workflows/change-servicenow-${blocked}`);
      expect(await page.getByRole('link', { name: 'Open the ticket' }).getAttribute('href')).toContain(blocked);
      if (SCREENSHOTS && role === 'auditor') await page.screenshot({ path: join(ROOT, 'docs/dashboard-ticket.png'), fullPage: true });
    } finally {
      await context.close();
    }
  }, 60_000);

  it('refuses a wrong password at the provider, and nothing reaches the dashboard', async () => {
    const context = await dash.browser.newContext();
    const page = await context.newPage();
    try {
      await page.goto(`${stack.apiUrl}/dashboard/`);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByLabel('User name').fill(user('auditor').username);
      await page.getByLabel('Password').fill(`${user('auditor').password}x`);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('alert').getByText('Unknown user name or wrong password.').waitFor();
      expect(new URL(page.url()).origin).toBe(dash.idp.issuer);
    } finally {
      await context.close();
    }
  });

  it('the demo users are generated into an owner-only file, once', () => {
    const file = join(dash.work, 'demo.env');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(ensureDemoUsers(file)).toEqual(users);
    expect(new Set(users.map((u) => u.password)).size).toBe(users.length);
    expect(users.map((u) => u.username)).toEqual(users.map((u) => expect.stringMatching(new RegExp(`^${u.role}-[0-9a-f]{6}$`))));
  });
});
