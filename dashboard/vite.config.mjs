import { dirname, resolve } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = dirname(fileURLToPath(import.meta.url));

// The dashboard is served by the API at /dashboard/ (src/api/dashboard.ts) from dist/dashboard: same origin, no CDN.
// CHANGEGATE_DASHBOARD_OUT builds it elsewhere (the browser test builds this checkout's app into a scratch folder).
export default defineConfig({
  root: here,
  base: '/dashboard/',
  build: { outDir: process.env.CHANGEGATE_DASHBOARD_OUT ?? resolve(here, '../dist/dashboard'), emptyOutDir: true },
  logLevel: 'warn',
});
