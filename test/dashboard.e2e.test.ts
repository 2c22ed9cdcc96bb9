import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import axios from 'axios';
import { type Browser, chromium, type Page } from 'playwright-core';
import type { Role } from '../src/auth/principal';
import { DEMO_DASHBOARD_CLIENT, DEMO_SCOPE, type DemoIdentityProvider, type DemoUser, ensureDemoUsers, startDemoIdentityProvider } from '../src/launcher/demo-identity-provider';
import { createLogger } from '../src/logger';
import { type Stack, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';

const ROOT = resolve(__dirname, '..');
/** Set to write the README's screenshots (docs/*.png) from this run. */
const SCREENSHOTS = process.env.CG_DASHBOARD_SCREENSHOTS === '1';

/**
 * The dashboard in Debian's Chromium, against a real stack: people log in at the demo identity provider (the one
 * `npm start` runs without an issuer) with authorization code + PKCE, and the API admits their tokens through its
 * ordinary OIDC settings.
 */
describe('dashboard: login through the demo identity provider, changes by gate state, one ticket', () => {
  let work: string;
  let users: DemoUser[];
  let idp: DemoIdentityProvider;
  let stack: Stack;
  let browser: Browser;
  let blocked: string;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'cg-dashboard-'));
    // The app as `npm run build` makes it, from this checkout's sources.
    execFileSync(process.execPath, [join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', 'dashboard'], { cwd: ROOT, env: { ...process.env, NODE_ENV: 'production', CHANGEGATE_DASHBOARD_OUT: join(work, 'app') }, stdio: 'pipe' });
    users = ensureDemoUsers(join(work, 'demo.env'));
    idp = await startDemoIdentityProvider({ users, port: 0, log: createLogger('demo-oidc', 'error') });
    stack = await startStack({
      oidc: idp.oidc,
      dashboard: { dir: join(work, 'app'), clientId: DEMO_DASHBOARD_CLIENT, scope: DEMO_SCOPE, temporalUiUrl: 'http://127.0.0.1:8233' },
    });
    await idp.serve(`${stack.apiUrl}/dashboard/`);
    // A mover of an identity that does not exist: the target refuses it, and closure says why.
    blocked = uniqueTicketNumber();
    stack.sim.createChange({
      number: blocked, state: '-1', approval: 'approved',
      u_identity_actions: JSON.stringify([{ kind: 'mover', system: 'mysql-local', identity: { type: 'service_account', name: uniqueAccount('dmv'), host: '%' }, grants: ['SELECT ON cgt_billing.*'] }]),
    });
    await waitFor('the mover refused', async () => (await stack.closureCheck(blocked)).data.steps?.[0]?.status === 'failed');
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
    await idp?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const user = (role: Role) => users.find((u) => u.role === role) as DemoUser;

  async function logIn(page: Page, who: DemoUser): Promise<void> {
    await page.goto(`${stack.apiUrl}/dashboard/`);
    await page.getByRole('button', { name: 'Log in' }).click();
    // The provider's own page, on its own origin.
    await page.waitForURL((url) => url.origin === idp.issuer);
    await page.getByLabel('User name').fill(who.username);
    await page.getByLabel('Password').fill(who.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL((url) => url.origin === new URL(stack.apiUrl).origin && url.search === '');
    await page.getByText(`${who.username} · ${who.role}`).waitFor();
  }

  it.each<Role>(['auditor', 'change-manager'])('as the demo %s: sees the blocked ticket and its reason, and opens the ticket', async (role) => {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
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
    const context = await browser.newContext();
    const page = await context.newPage();
    try {
      await page.goto(`${stack.apiUrl}/dashboard/`);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByLabel('User name').fill(user('auditor').username);
      await page.getByLabel('Password').fill(`${user('auditor').password}x`);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('alert').getByText('Unknown user name or wrong password.').waitFor();
      expect(new URL(page.url()).origin).toBe(idp.issuer);
    } finally {
      await context.close();
    }
  });

  it('the demo users are generated into an owner-only file, once', () => {
    const file = join(work, 'demo.env');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(ensureDemoUsers(file)).toEqual(users);
    expect(new Set(users.map((u) => u.password)).size).toBe(users.length);
    expect(users.map((u) => u.username)).toEqual(users.map((u) => expect.stringMatching(new RegExp(`^${u.role}-[0-9a-f]{6}$`))));
  });
});
