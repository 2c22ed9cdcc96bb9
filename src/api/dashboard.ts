import { existsSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import express from 'express';
import { z } from 'zod';
import type { OidcSettings } from '../auth/oidc-settings';
import { kindNames } from '../kinds/registry';

/** What the dashboard needs to know before anyone has logged in: public by nature. */
export const dashboardConfigSchema = z
  .object({
    /** The OIDC issuer and the dashboard's public client there (authorization code with PKCE); null: no login. */
    login: z.object({ issuer: z.string(), clientId: z.string(), scope: z.string() }).strict().nullable(),
    /** Temporal's Web UI, where a ticket's workflow is linked; null when not known. */
    temporalUi: z.object({ url: z.string(), namespace: z.string() }).strict().nullable(),
    /** Each source's link to a ticket, `{key}` standing for the ticket's key. */
    ticketLinks: z.record(z.string()),
    /** The action kinds a change may carry (the changes view filters by them). */
    kinds: z.array(z.string()),
  })
  .strict();
export type DashboardConfig = z.infer<typeof dashboardConfigSchema>;

/**
 * The dashboard (a Vite build, `npm run build` → dist/dashboard) at /dashboard/, from the API's own origin, and the
 * settings it reads at /dashboard/config.json. The app routes by the URL's fragment, so every view is the one
 * index.html and the identity provider's redirect back lands on /dashboard/ itself.
 */
export function mountDashboard(app: express.Express, opts: { dir: string; config: DashboardConfig }): void {
  app.get('/dashboard/config.json', (_req, res) => {
    res.set('cache-control', 'no-store').json(opts.config);
  });
  if (!existsSync(opts.dir)) return;
  app.use('/dashboard', express.static(opts.dir, { index: 'index.html', redirect: true, fallthrough: true }));
}

/** Where the dashboard's build is, its login client and its links (OIDC_DASHBOARD_*, TEMPORAL_UI_URL). */
export interface DashboardSettings {
  /** Default: dist/dashboard, where `npm run build` puts it. */
  dir?: string;
  clientId: string;
  scope: string;
  temporalUiUrl?: string;
}

/** The dashboard as the API serves it: login at the configured issuer (none without one), links to the ticket sites. */
export function dashboardDeps(
  settings: DashboardSettings,
  opts: { oidc?: OidcSettings; namespace: string; servicenowUrl: string; jiraUrl?: string },
): { dir: string; config: DashboardConfig } {
  return {
    dir: settings.dir ?? resolve(__dirname, extname(__filename) === '.ts' ? '../../dist/dashboard' : '../../dashboard'),
    config: {
      login: opts.oidc ? { issuer: opts.oidc.issuer, clientId: settings.clientId, scope: settings.scope } : null,
      temporalUi: settings.temporalUiUrl ? { url: settings.temporalUiUrl.replace(/\/$/, ''), namespace: opts.namespace } : null,
      ticketLinks: {
        servicenow: `${opts.servicenowUrl.replace(/\/$/, '')}/nav_to.do?uri=${encodeURIComponent('change_request.do?sysparm_query=number=')}{key}`,
        ...(opts.jiraUrl ? { jira: `${opts.jiraUrl.replace(/\/$/, '')}/browse/{key}` } : {}),
      },
      kinds: kindNames(),
    },
  };
}
