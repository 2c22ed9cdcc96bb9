import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import type { Role } from '../../src/auth/principal';
import { DEMO_DASHBOARD_CLIENT, DEMO_SCOPE, type DemoIdentityProvider, type DemoUser, ensureDemoUsers, startDemoIdentityProvider } from '../../src/launcher/demo-identity-provider';
import { createLogger } from '../../src/logger';
import { type Stack, startStack } from './stack';

export const ROOT = resolve(__dirname, '../..');
/** Set to write the README's screenshots (docs/*.png) from this run. */
export const SCREENSHOTS = process.env.CG_DASHBOARD_SCREENSHOTS === '1';

export interface DashboardRig {
  /** A scratch folder of the run (the app's build and the demo users' file are in it). */
  work: string;
  users: DemoUser[];
  idp: DemoIdentityProvider;
  stack: Stack;
  browser: Browser;
  user(role: Role): DemoUser;
  /** Logs in through the demo provider's own page and waits for the dashboard to name the person and role. */
  logIn(page: Page, who: DemoUser): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The dashboard in Debian's Chromium against a real stack: the app as `npm run build` makes it from this checkout,
 * the demo identity provider (the one `npm start` runs without an issuer) that people log in at with authorization
 * code + PKCE, and the API admitting its tokens through its ordinary OIDC settings.
 */
export async function startDashboardRig(stackOpts: Omit<NonNullable<Parameters<typeof startStack>[0]>, 'oidc' | 'dashboard'> = {}): Promise<DashboardRig> {
  const work = mkdtempSync(join(tmpdir(), 'cg-dashboard-'));
  execFileSync(process.execPath, [join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', 'dashboard'], { cwd: ROOT, env: { ...process.env, NODE_ENV: 'production', CHANGEGATE_DASHBOARD_OUT: join(work, 'app') }, stdio: 'pipe' });
  const users = ensureDemoUsers(join(work, 'demo.env'));
  const idp = await startDemoIdentityProvider({ users, port: 0, log: createLogger('demo-oidc', 'error') });
  const stack = await startStack({
    ...stackOpts,
    oidc: idp.oidc,
    dashboard: { dir: join(work, 'app'), clientId: DEMO_DASHBOARD_CLIENT, scope: DEMO_SCOPE, temporalUiUrl: 'http://127.0.0.1:8233' },
  });
  await idp.serve(`${stack.apiUrl}/dashboard/`);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  return {
    work,
    users,
    idp,
    stack,
    browser,
    user: (role) => users.find((u) => u.role === role) as DemoUser,
    async logIn(page, who) {
      await page.goto(`${stack.apiUrl}/dashboard/`);
      await page.getByRole('button', { name: 'Log in' }).click();
      // The provider's own page, on its own origin.
      await page.waitForURL((url) => url.origin === idp.issuer);
      await page.getByLabel('User name').fill(who.username);
      await page.getByLabel('Password').fill(who.password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL((url) => url.origin === new URL(stack.apiUrl).origin && url.search === '');
      await page.getByText(`${who.username} · ${who.role}`).waitFor();
    },
    async stop() {
      await browser.close();
      await stack.stop();
      await idp.stop();
      rmSync(work, { recursive: true, force: true });
    },
  };
}
