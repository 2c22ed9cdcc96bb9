import { existsSync } from 'node:fs';
import express from 'express';
import { z } from 'zod';

/** What the dashboard needs to know before anyone has logged in: public by nature. */
export const dashboardConfigSchema = z
  .object({
    /** The OIDC issuer and the dashboard's public client there (authorization code with PKCE); null: no login. */
    login: z.object({ issuer: z.string(), clientId: z.string(), scope: z.string() }).strict().nullable(),
    /** Temporal's Web UI, where a ticket's workflow is linked; null when not known. */
    temporalUi: z.object({ url: z.string(), namespace: z.string() }).strict().nullable(),
    /** Each source's link to a ticket, `{key}` standing for the ticket's key. */
    ticketLinks: z.record(z.string()),
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
