import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import type { Role } from '../../src/auth/principal';
import type { GatewayOptions } from '../../src/gateway';
import { DEMO_DASHBOARD_CLIENT, DEMO_SCOPE, type DemoIdentityProvider, type DemoUser, ensureDemoUsers, startDemoIdentityProvider } from '../../src/launcher/demo-identity-provider';
import type { OidcSettings } from '../../src/auth/oidc-settings';
import { createLogger } from '../../src/logger';

export const ROOT = resolve(__dirname, '../..');
/** Set to write the README's screenshots (docs/*.png) from this run. */
export const SCREENSHOTS = process.env.CG_DASHBOARD_SCREENSHOTS === '1';

/**
 * The dashboard as a browser test needs it: this checkout's app built as `npm run build` builds it, the demo identity
 * provider (the one `npm start` runs without an issuer) with one user per role, and Debian's Chromium. Start a stack
 * with `stackOptions`, then `serve(apiUrl)` so the provider redirects back to that stack's dashboard.
 */
export interface DashboardBrowser {
  work: string;
  users: DemoUser[];
  idp: DemoIdentityProvider;
  browser: Browser;
  stackOptions: { oidc: OidcSettings; dashboard: NonNullable<GatewayOptions['dashboard']> };
  serve(apiUrl: string): Promise<void>;
  user(role: Role): DemoUser;
  /** Logs `who` in through the provider's own page, with authorization code + PKCE, and waits for the dashboard to say who. */
  logIn(page: Page, apiUrl: string, who: DemoUser, view?: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startDashboardBrowser(): Promise<DashboardBrowser> {
  const work = mkdtempSync(join(tmpdir(), 'cg-dashboard-'));
  execFileSync(process.execPath, [join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', 'dashboard'], { cwd: ROOT, env: { ...process.env, NODE_ENV: 'production', CHANGEGATE_DASHBOARD_OUT: join(work, 'app') }, stdio: 'pipe' });
  const users = ensureDemoUsers(join(work, 'demo.env'));
  const idp = await startDemoIdentityProvider({ users, port: 0, log: createLogger('demo-oidc', 'error') });
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  return {
    work,
    users,
    idp,
    browser,
    stackOptions: { oidc: idp.oidc, dashboard: { dir: join(work, 'app'), clientId: DEMO_DASHBOARD_CLIENT, scope: DEMO_SCOPE, temporalUiUrl: 'http://127.0.0.1:8233' } },
    serve: (apiUrl) => idp.serve(`${apiUrl}/dashboard/`),
    user: (role) => users.find((u) => u.role === role) as DemoUser,
    async logIn(page, apiUrl, who, view = '') {
      await page.goto(`${apiUrl}/dashboard/${view}`);
      await page.getByRole('button', { name: 'Log in' }).click();
      // The provider's own page, on its own origin.
      await page.waitForURL((url) => url.origin === idp.issuer);
      await page.getByLabel('User name').fill(who.username);
      await page.getByLabel('Password').fill(who.password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL((url) => url.origin === new URL(apiUrl).origin && url.search === '');
      await page.getByText(`${who.username} · ${who.role}`).waitFor();
    },
    async stop() {
      await browser.close();
      await idp.stop();
      rmSync(work, { recursive: true, force: true });
    },
  };
}
