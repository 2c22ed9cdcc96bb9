import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import axios, { type AxiosResponse, type Method } from 'axios';
import { createAccount, leaverActions, type Stack, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { TEST_ENV } from './support/test-env';

type Operation = {
  security?: unknown[];
  'x-changegate-roles'?: string[];
  parameters?: Array<{ name: string; in: string; required?: boolean }>;
  responses: Record<string, { content?: Record<string, { schema: unknown }> }>;
};
type Document = { openapi: string; paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, unknown> } };

/**
 * GET /openapi.json describes exactly the routes the app mounts (walked from its router, so a route mounted without a
 * document entry fails here), with the roles each route's gate admits, and real answers — successes and errors — are
 * valid against the document's own schemas (JSON Schema 2020-12, the dialect of OpenAPI 3.1).
 */
describe('the OpenAPI document', () => {
  let stack: Stack;
  let doc: Document;
  let operator: string;
  let roleless: string;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);

  beforeAll(async () => {
    stack = await startStack();
    operator = (await stack.tokenFor('operator')).token;
    roleless = (await stack.tokenFor()).token;
    const res = await axios.get(`${stack.apiUrl}/openapi.json`);
    doc = res.data as Document;
    ajv.addSchema(doc as object, 'openapi.json');
  });
  afterAll(async () => {
    await stack?.stop();
  });

  /** Every route on the router, as `METHOD /openapi/{path}`, with the roles its gate admits (undefined: public). */
  const mounted = () =>
    (stack.app.router.stack as Array<{ route?: { path: string; methods: Record<string, boolean>; stack: Array<{ handle: { admits?: readonly string[] } }> } }>)
      .filter((l) => l.route)
      .flatMap((l) =>
        Object.keys(l.route!.methods).map((m) => ({
          key: `${m.toUpperCase()} ${l.route!.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`,
          roles: l.route!.stack.map((s) => s.handle.admits).find((a) => a !== undefined),
        })),
      );
  const documented = () => Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
  const operation = (method: string, path: string) => doc.paths[path]?.[method.toLowerCase()] as Operation;

  /** Checks a real answer against the schema the document gives for its path, method and status. */
  function expectConforms(path: string, res: AxiosResponse) {
    const method = (res.config.method ?? 'get').toLowerCase();
    const op = operation(method, path);
    expect({ path, method, status: res.status, documented: op?.responses[String(res.status)] !== undefined }).toEqual({ path, method, status: res.status, documented: true });
    const pointer = ['paths', path, method, 'responses', String(res.status), 'content', 'application/json', 'schema'].map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');
    const validate = ajv.getSchema(`openapi.json#/${pointer}`);
    if (!validate) throw new Error(`no schema at ${pointer}`);
    const valid = validate(res.data);
    expect({ path, status: res.status, errors: valid ? [] : validate.errors }).toEqual({ path, status: res.status, errors: [] });
  }

  const call = (method: Method, url: string, opts: { token?: string; data?: unknown } = {}) =>
    axios.request({ method, url: `${stack.apiUrl}${url}`, data: opts.data, headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {}, validateStatus: () => true });

  it('is served without a token as OpenAPI 3.1, and holds none of the stack\'s secrets', async () => {
    const res = await axios.get(`${stack.apiUrl}/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.data.openapi).toBe('3.1.0');
    const text = JSON.stringify(res.data);
    for (const secret of [TEST_ENV.webhookSecret, TEST_ENV.deployWebhookSecret, TEST_ENV.adminToken, TEST_ENV.jiraWebhookSecret, TEST_ENV.snPassword, TEST_ENV.jiraApiToken, operator]) {
      expect(text).not.toContain(secret);
    }
  });

  it('documents every route the app mounts, and nothing else', () => {
    expect(documented().sort()).toEqual(mounted().map((r) => r.key).sort());
  });

  it("gives each gated route the roles its gate admits, a bearer security requirement and 401/403 answers; public routes none", () => {
    for (const route of mounted()) {
      const [method, path] = route.key.split(' ') as [string, string];
      const op = operation(method, path);
      if (route.roles) {
        expect({ route: route.key, roles: op['x-changegate-roles'], security: op.security }).toEqual({ route: route.key, roles: [...route.roles], security: [{ bearer: [] }] });
        expect({ route: route.key, statuses: ['401', '403'].filter((s) => op.responses[s]) }).toEqual({ route: route.key, statuses: ['401', '403'] });
      } else {
        expect({ route: route.key, roles: op['x-changegate-roles'], security: op.security }).toEqual({ route: route.key, roles: undefined, security: [] });
      }
      // Every error answer is the one envelope (a not-ready /readyz is a report, not an error).
      for (const [status, response] of Object.entries(op.responses).filter(([s]) => Number(s) >= 400 && !(route.key === 'GET /readyz' && s === '503'))) {
        expect({ route: route.key, status, schema: response.content?.['application/json']?.schema }).toEqual({ route: route.key, status, schema: { $ref: '#/components/schemas/Error' } });
      }
    }
  });

  it('documents what each webhook is signed with: the signature headers and what they cover', () => {
    const headers = (path: string) => (operation('post', path).parameters ?? []).filter((p) => p.in === 'header').map((p) => p.name).sort();
    expect(headers('/webhooks/{source}')).toEqual(['x-atlassian-webhook-identifier', 'x-atlassian-webhook-retry', 'x-changegate-event-id', 'x-changegate-signature', 'x-changegate-timestamp', 'x-hub-signature'].sort());
    expect(headers('/webhooks/deploy')).toEqual(['x-changegate-event-id', 'x-changegate-signature', 'x-changegate-timestamp']);
    expect(headers('/webhooks/secret-scanning')).toEqual(['x-github-event', 'x-hub-signature-256']);
    const signatures = (operation('post', '/webhooks/{source}') as unknown as { 'x-changegate-signatures': Record<string, { signs: string }> })['x-changegate-signatures'];
    expect(Object.keys(signatures).sort()).toEqual(['jira', 'servicenow']);
    expect(signatures.servicenow?.signs).toMatch(/timestamp.*raw request body/);
  });

  it('public routes answer as documented', async () => {
    expectConforms('/healthz', await call('get', '/healthz'));
    expectConforms('/readyz', await call('get', '/readyz'));
    expectConforms('/openapi.json', await call('get', '/openapi.json'));
    expectConforms('/api/evidence/public-key', await call('get', '/api/evidence/public-key'));
  });

  it('listings answer as documented, and a bad query is a documented 400', async () => {
    for (const path of ['/api/inventory', '/api/drift', '/api/certifications', '/api/tokens']) expectConforms(path, await call('get', `${path}${path === '/api/tokens' ? '' : '?limit=2'}`, { token: operator }));
    expectConforms('/api/exceptions', await call('get', '/api/exceptions?source=no-such-source&limit=1', { token: operator }));
    // The dashboard's reports, over the run's rows so far (this suite's database holds other suites' evidence too).
    for (const path of ['/api/reports/targets', '/api/reports/deploy-credentials', '/api/reports/latency', '/api/reports/kinds']) {
      const res = await call('get', path, { token: operator });
      expect(res.status).toBe(200);
      expectConforms(path, res);
    }
    const badReport = await call('get', '/api/reports/latency?bucket=minute&since=yesterday', { token: operator });
    expect(badReport.status).toBe(400);
    expectConforms('/api/reports/latency', badReport);
    expectConforms('/api/changes', await call('get', '/api/changes?kind=joiner&limit=2', { token: operator }));
    expectConforms('/api/changes/ageing', await call('get', '/api/changes/ageing?limit=2', { token: operator }));
    const badKind = await call('get', '/api/changes/ageing?kind=promote', { token: operator });
    expect(badKind.status).toBe(400);
    expectConforms('/api/changes/ageing', badKind);
    const bad = await call('get', '/api/inventory?limit=zero&colour=red', { token: operator });
    expect(bad.status).toBe(400);
    expectConforms('/api/inventory', bad);
  });

  it('tokens: made (201), refused (400, 409), revoked (200), not found (404) — all as documented', async () => {
    const name = `openapi-${Date.now()}`;
    const made = await call('post', '/api/tokens', { token: operator, data: { name, roles: ['auditor'] } });
    expect(made.status).toBe(201);
    expectConforms('/api/tokens', made);
    const taken = await call('post', '/api/tokens', { token: operator, data: { name, roles: ['auditor'] } });
    expect(taken.status).toBe(409);
    expectConforms('/api/tokens', taken);
    const invalid = await call('post', '/api/tokens', { token: operator, data: { name: 'Not Valid', roles: ['change-manager'] } });
    expect(invalid.status).toBe(400);
    expectConforms('/api/tokens', invalid);
    const revoked = await call('delete', `/api/tokens/${name}`, { token: operator });
    expect(revoked.status).toBe(200);
    expectConforms('/api/tokens/{name}', revoked);
    const missing = await call('delete', '/api/tokens/no-such-token', { token: operator });
    expect(missing.status).toBe(404);
    expectConforms('/api/tokens/{name}', missing);
  });

  it('the gate answers 401 and 403 as documented; the 403 names the roles the document lists', async () => {
    const path = '/api/changes/{source}/{key}/evidence/export';
    const url = '/api/changes/servicenow/CHG9999999999/evidence/export';
    const anonymous = await call('get', url);
    expect(anonymous.status).toBe(401);
    expectConforms(path, anonymous);
    const forbidden = await call('get', url, { token: roleless });
    expect(forbidden.status).toBe(403);
    expectConforms(path, forbidden);
    expect(forbidden.data.error.message).toContain(`admits the roles ${operation('get', path)['x-changegate-roles']!.join(', ')};`);
  });

  it('a change end to end: delivery 202, closure-check, evidence and its export 200; unknown and malformed keys 404 and 400', async () => {
    const account = uniqueAccount('oapi');
    await createAccount(stack.admin, account);
    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({ number, state: '-5', type: 'emergency', u_identity_actions: leaverActions(account) });
    await waitFor('closure allowed', async () => (await stack.closureCheck(number)).data.allowed === true);

    const again = await stack.deliver(stack.sim.getChange(change.sys_id as string));
    expect(again.status).toBe(202);
    expectConforms('/webhooks/{source}', again);
    const unsigned = await call('post', '/webhooks/servicenow', { data: { number } });
    expect(unsigned.status).toBe(401);
    expectConforms('/webhooks/{source}', unsigned);

    const base = `/api/changes/servicenow/${number}`;
    expectConforms('/api/changes/{source}/{key}/closure-check', await call('get', `${base}/closure-check`, { token: operator }));
    expectConforms('/api/changes/{source}/{key}/evidence', await call('get', `${base}/evidence`, { token: operator }));
    const exported = await call('get', `${base}/evidence/export`, { token: operator });
    expect(exported.status).toBe(200);
    expectConforms('/api/changes/{source}/{key}/evidence/export', exported);

    const unknown = await call('get', '/api/changes/servicenow/CHG9999999999/closure-check', { token: operator });
    expect(unknown.status).toBe(404);
    expectConforms('/api/changes/{source}/{key}/closure-check', unknown);
    const malformed = await call('get', '/api/changes/servicenow/not-a-key/evidence', { token: operator });
    expect(malformed.status).toBe(400);
    expectConforms('/api/changes/{source}/{key}/evidence', malformed);
  });
});
