import axios, { type Method } from 'axios';
import { ROLES, type Role } from '../src/auth/principal';
import { type Stack, startStack } from './support/stack';
import { TEST_ENV } from './support/test-env';

/**
 * Who may call what. This table is the specification (the README's role table says the same); the app's own route
 * declarations are checked against it over real HTTP, and a route the app mounts without a row here fails the test.
 */
const ROUTES: Array<{ method: Method; route: string; path: string; body?: unknown; roles: Role[]; admittedStatus: number }> = [
  { method: 'GET', route: '/api/changes', path: '/api/changes?limit=1', roles: ['change-manager', 'auditor', 'operator', 'security-reviewer'], admittedStatus: 200 },
  { method: 'GET', route: '/api/changes/ageing', path: '/api/changes/ageing?limit=1', roles: ['change-manager', 'auditor', 'operator', 'security-reviewer'], admittedStatus: 200 },
  {
    method: 'GET', route: '/api/changes/:source/:key/closure-check', path: '/api/changes/servicenow/CHG9999999999/closure-check',
    roles: ['change-manager', 'auditor', 'operator', 'integration', 'security-reviewer'], admittedStatus: 404,
  },
  {
    method: 'GET', route: '/api/changes/:source/:key/evidence', path: '/api/changes/servicenow/CHG9999999999/evidence',
    roles: ['auditor', 'change-manager', 'operator', 'security-reviewer'], admittedStatus: 404,
  },
  {
    method: 'GET', route: '/api/changes/:source/:key/evidence/export', path: '/api/changes/servicenow/CHG9999999999/evidence/export',
    roles: ['auditor', 'operator'], admittedStatus: 404,
  },
  // An unknown system: admission is proven by the validation answer, without running a scan per role.
  { method: 'POST', route: '/api/inventory/scan', path: '/api/inventory/scan', body: { systems: ['no-such-system'] }, roles: ['operator'], admittedStatus: 400 },
  {
    method: 'GET', route: '/api/inventory/scans/:scanId', path: '/api/inventory/scans/00000000-0000-4000-8000-000000000000',
    roles: ['operator', 'auditor', 'security-reviewer'], admittedStatus: 404,
  },
  { method: 'GET', route: '/api/inventory', path: '/api/inventory?limit=1', roles: ['auditor', 'change-manager', 'operator', 'security-reviewer'], admittedStatus: 200 },
  { method: 'GET', route: '/api/drift', path: '/api/drift?limit=1', roles: ['auditor', 'change-manager', 'operator', 'security-reviewer'], admittedStatus: 200 },
  // The dashboard's reports: a system nobody configured keeps each read small.
  ...['targets', 'deploy-credentials', 'latency', 'kinds'].map((r) => ({
    method: 'GET' as Method, route: `/api/reports/${r}`, path: `/api/reports/${r}?system=no-such-system`, roles: ['auditor', 'operator', 'security-reviewer', 'change-manager'] as Role[], admittedStatus: 200,
  })),
  // A source no exception has: nothing to read back from the targets.
  { method: 'GET', route: '/api/exceptions', path: '/api/exceptions?source=no-such-source&limit=1', roles: ['security-reviewer', 'auditor', 'change-manager', 'operator'], admittedStatus: 200 },
  {
    method: 'POST', route: '/api/exceptions/:id/decision', path: '/api/exceptions/EXC-0000000000000000/decision',
    body: { decision: 'accept', justification: 'x' }, roles: ['security-reviewer'], admittedStatus: 404,
  },
  // An id no identity has: admission is proven by the 404, and nothing is changed.
  { method: 'PATCH', route: '/api/inventory/:id', path: '/api/inventory/999999999999', body: { owner: 'team-x' }, roles: ['operator'], admittedStatus: 404 },
  {
    method: 'POST', route: '/api/changes/:source/:key/steps/:stepId/decision', path: '/api/changes/servicenow/CHG9999999999/steps/joiner:0000000000000000/decision',
    body: { decision: 'approve', justification: 'x' }, roles: ['change-manager'], admittedStatus: 404,
  },
  { method: 'GET', route: '/api/certifications', path: '/api/certifications?limit=1', roles: ['auditor', 'security-reviewer', 'change-manager', 'operator'], admittedStatus: 200 },
  // An item no one opened: admission is proven by the 404, and nothing is decided.
  {
    method: 'POST', route: '/api/certifications/:id/decision', path: '/api/certifications/00000000000000000000000000000000/decision',
    body: { decisions: [], justification: 'x' }, roles: ['security-reviewer', 'change-manager'], admittedStatus: 404,
  },
  { method: 'GET', route: '/api/tokens', path: '/api/tokens', roles: ['operator', 'auditor'], admittedStatus: 200 },
  { method: 'POST', route: '/api/tokens', path: '/api/tokens', body: { name: 'Not A Valid Name' }, roles: ['operator'], admittedStatus: 400 },
  { method: 'DELETE', route: '/api/tokens/:name', path: '/api/tokens/no-such-token', roles: ['operator'], admittedStatus: 404 },
];

/** /api routes anyone may call: what they answer is public by nature. */
const PUBLIC_ROUTES = ['GET /api/evidence/public-key'];

describe('every API route admits exactly its roles', () => {
  let stack: Stack;
  const tokens = new Map<Role, string>();
  let roleless: string;
  beforeAll(async () => {
    stack = await startStack({ inProcessWorker: false });
    for (const role of ROLES) tokens.set(role, (await stack.tokenFor(role)).token);
    roleless = (await stack.tokenFor()).token;
  });
  afterAll(async () => {
    await stack.stop();
  });

  const call = (r: (typeof ROUTES)[number], authorization?: string) =>
    axios.request({
      method: r.method,
      url: `${stack.apiUrl}${r.path}`,
      data: r.body,
      headers: authorization ? { authorization } : {},
      validateStatus: () => true,
    });

  it('the table above names every /api route the app mounts, with its method', () => {
    const mounted = (stack.app.router.stack as Array<{ route?: { path: string; methods: Record<string, boolean> } }>)
      .filter((l) => l.route?.path.startsWith('/api/'))
      .flatMap((l) => Object.keys(l.route!.methods).map((m) => `${m.toUpperCase()} ${l.route!.path}`))
      .sort();
    expect(mounted).toEqual([...ROUTES.map((r) => `${r.method} ${r.route}`), ...PUBLIC_ROUTES].sort());
  });

  it("outside /api only the open probes, the OpenAPI document, the dashboard's settings and the signed webhooks are mounted; a webhook takes a signature, never a bearer token", async () => {
    const mounted = (stack.app.router.stack as Array<{ route?: { path: string; methods: Record<string, boolean> } }>)
      .filter((l) => l.route && !l.route.path.startsWith('/api/'))
      .flatMap((l) => Object.keys(l.route!.methods).map((m) => `${m.toUpperCase()} ${l.route!.path}`))
      .sort();
    expect(mounted).toEqual(['GET /dashboard/config.json', 'GET /healthz', 'GET /openapi.json', 'GET /readyz', 'POST /webhooks/:source', 'POST /webhooks/deploy', 'POST /webhooks/secret-scanning'].sort());
    for (const path of ['/webhooks/deploy', '/webhooks/servicenow']) {
      const res = await axios.post(`${stack.apiUrl}${path}`, '{}', {
        headers: { authorization: `Bearer ${TEST_ENV.adminToken}`, 'content-type': 'application/json' },
        validateStatus: () => true,
      });
      expect({ path, status: res.status, message: res.data.error.message }).toEqual({ path, status: 401, message: 'webhook signature check failed: missing-signature' });
    }
    // Leak reports carry GitHub's signature; this stack configures no secret for them, so every one is refused.
    const leak = await axios.post(`${stack.apiUrl}/webhooks/secret-scanning`, '{}', { headers: { authorization: `Bearer ${TEST_ENV.adminToken}`, 'content-type': 'application/json' }, validateStatus: () => true });
    expect([leak.status, leak.data.error.code]).toEqual([401, 'UNAUTHORIZED']);
  });

  describe.each(ROUTES)('$method $route', (r) => {
    it('answers 401 with a Bearer challenge and the API error shape when no token is sent', async () => {
      const res = await call(r);
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer realm="changegate"');
      expect(res.data).toEqual({ error: { code: 'UNAUTHORIZED', message: 'a bearer token is required', issues: [] } });
    });

    it('answers 401 invalid_token for an unknown token and for a non-Bearer scheme', async () => {
      for (const header of ['Bearer cg_not-a-real-token', `Basic ${Buffer.from('changegate:x').toString('base64')}`]) {
        const res = await call(r, header);
        expect(res.status).toBe(401);
        expect(res.headers['www-authenticate']).toBe('Bearer realm="changegate", error="invalid_token"');
        expect(res.data.error.code).toBe('UNAUTHORIZED');
        expect(JSON.stringify(res.data)).not.toContain('cg_not-a-real-token');
      }
    });

    it('answers 403 FORBIDDEN to a token that holds no role', async () => {
      const res = await call(r, `Bearer ${roleless}`);
      expect(res.status).toBe(403);
      expect(res.data.error).toMatchObject({ code: 'FORBIDDEN', message: expect.stringContaining(r.roles.join(', ')) });
    });

    it.each([...ROLES])('with role %s: admitted only if the route lists it', async (role) => {
      const res = await call(r, `Bearer ${tokens.get(role)}`);
      if (r.roles.includes(role)) {
        expect(res.status).toBe(r.admittedStatus);
      } else {
        expect(res.status).toBe(403);
        expect(res.data.error.code).toBe('FORBIDDEN');
        expect(res.headers['www-authenticate']).toBeUndefined();
      }
    });

    it('admits CHANGEGATE_ADMIN_TOKEN exactly where the operator role is admitted', async () => {
      const res = await call(r, `Bearer ${TEST_ENV.adminToken}`);
      expect(res.status).toBe(r.roles.includes('operator') ? r.admittedStatus : 403);
    });
  });
});
