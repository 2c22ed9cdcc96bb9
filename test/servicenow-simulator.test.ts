import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { verifyWebhookSignature, EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER } from '../src/itsm/servicenow/webhook-signature';
import { identityActionsDigest } from '../src/itsm/servicenow/servicenow-gate';
import {
  BLOCK_CLOSE_RULE_NAME,
  BusinessRuleAbortError,
  createServiceNowSimulator,
  type ListeningSimulator,
  type ServiceNowSimulator,
  type SimulatorOptions,
} from '../src/itsm/servicenow/servicenow-simulator';

const USER = 'sim-user';
const PASSWORD = 'sim-password-Zq81';
const CHANGES = '/api/now/table/change_request';
const JOURNAL = '/api/now/table/sys_journal_field';
const SYS_ID = /^[0-9a-f]{32}$/;

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

const running: Array<{ close(): Promise<void> }> = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
});

async function start(overrides: Partial<SimulatorOptions> = {}): Promise<{ sim: ServiceNowSimulator; server: ListeningSimulator }> {
  const sim = createServiceNowSimulator({ username: USER, password: PASSWORD, ...overrides });
  const server = await sim.listen(0);
  running.push(server);
  return { sim, server };
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

async function call(
  baseUrl: string,
  method: string,
  path: string,
  init: { body?: unknown; rawBody?: string; headers?: Record<string, string>; auth?: string | null } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { Accept: 'application/json', ...init.headers };
  if (init.auth !== null) headers.Authorization = init.auth ?? basic(USER, PASSWORD);
  let body: string | undefined = init.rawBody;
  if (init.body !== undefined) {
    body = JSON.stringify(init.body);
    headers['Content-Type'] ??= 'application/json';
  }
  const res = await fetch(`${baseUrl}${path}`, { method, headers, body });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

function expectEnvelope(reply: Reply, status: number, message?: string | RegExp): void {
  expect(reply.status).toBe(status);
  expect(reply.json).toEqual({ error: { message: expect.any(String), detail: expect.any(String) }, status: 'failure' });
  if (message !== undefined) expect(reply.json.error.message).toMatch(message);
}

async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('ServiceNow simulator: Table API envelopes and status codes', () => {
  test('POST creates a change with 201, a Location header and string defaults from the change model', async () => {
    const { server } = await start();
    const reply = await call(server.url, 'POST', CHANGES, { body: { short_description: 'Offboard contractor', risk: 2 } });

    expect(reply.status).toBe(201);
    const record = reply.json.result;
    expect(record.sys_id).toMatch(SYS_ID);
    expect(reply.headers.get('location')).toBe(`${server.url}${CHANGES}/${record.sys_id}`);
    expect(record).toMatchObject({
      number: 'CHG0030001',
      state: '-5',
      type: 'normal',
      approval: 'not requested',
      sys_mod_count: '0',
      active: 'true',
      on_hold: 'false',
      risk: '2',
      short_description: 'Offboard contractor',
      sys_updated_by: USER,
      u_identity_cleanup: '',
    });
    expect(record.sys_created_on).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    for (const value of Object.values(record)) expect(typeof value).toBe('string');

    const second = await call(server.url, 'POST', CHANGES, { body: {} });
    expect(second.json.result.number).toBe('CHG0030002');
  });

  test('reference fields render as {link, value} when set and as "" when empty', async () => {
    const { server } = await start();
    const group = 'a'.repeat(32);
    const created = await call(server.url, 'POST', CHANGES, { body: { assignment_group: group } });

    expect(created.json.result.assignment_group).toEqual({ link: `${server.url}/api/now/table/sys_user_group/${group}`, value: group });
    expect(created.json.result.cmdb_ci).toBe('');
    const plain = await call(server.url, 'GET', `${CHANGES}/${created.json.result.sys_id}?sysparm_exclude_reference_link=true`);
    expect(plain.json.result.assignment_group).toBe(group);
  });

  test('GET by sys_id answers 200 with the record, and 404 with the error envelope when it does not exist', async () => {
    const { sim, server } = await start();
    const change = sim.createChange({ short_description: 'x' });

    const found = await call(server.url, 'GET', `${CHANGES}/${change.sys_id}`);
    expect(found.status).toBe(200);
    expect(found.json.result.number).toBe(change.number);

    expectEnvelope(await call(server.url, 'GET', `${CHANGES}/${'0'.repeat(32)}`), 404, 'No Record found');
    expectEnvelope(await call(server.url, 'PATCH', `${CHANGES}/${'0'.repeat(32)}`, { body: { state: '-4' } }), 404);
  });

  test('PATCH and PUT answer 200, store every value as a string and bump sys_mod_count once per real change', async () => {
    const { sim, server } = await start();
    const change = sim.createChange({});

    const patched = await call(server.url, 'PATCH', `${CHANGES}/${change.sys_id}`, { body: { state: -4, on_hold: true, priority: 2 } });
    expect(patched.status).toBe(200);
    expect(patched.json.result).toMatchObject({ state: '-4', on_hold: 'true', priority: '2', sys_mod_count: '1' });

    const put = await call(server.url, 'PUT', `${CHANGES}/${change.sys_id}`, { body: { state: '-3' } });
    expect(put.status).toBe(200);
    expect(put.json.result).toMatchObject({ state: '-3', on_hold: 'true', sys_mod_count: '2' });

    // Writing the values a record already holds is no update in ServiceNow: nothing changes, nothing fires.
    const same = await call(server.url, 'PATCH', `${CHANGES}/${change.sys_id}`, { body: { state: '-3' } });
    expect(same.json.result.sys_mod_count).toBe('2');

    const ignored = await call(server.url, 'PATCH', `${CHANGES}/${change.sys_id}`, { body: { sys_mod_count: '99', sys_id: 'f'.repeat(32) } });
    expect(ignored.json.result).toMatchObject({ sys_mod_count: '2', sys_id: change.sys_id });
  });

  test('DELETE answers 204 with no body, then the record is gone', async () => {
    const { sim, server } = await start();
    const change = sim.createChange({});

    const deleted = await call(server.url, 'DELETE', `${CHANGES}/${change.sys_id}`);
    expect(deleted.status).toBe(204);
    expect(deleted.text).toBe('');
    expect(sim.getChange(change.sys_id)).toBeUndefined();
    expectEnvelope(await call(server.url, 'DELETE', `${CHANGES}/${change.sys_id}`), 404);
  });

  test('missing or wrong basic credentials answer 401 with the error envelope', async () => {
    const { server } = await start();

    expectEnvelope(await call(server.url, 'GET', CHANGES, { auth: null }), 401, 'User Not Authenticated');
    expectEnvelope(await call(server.url, 'GET', CHANGES, { auth: basic(USER, 'wrong') }), 401);
    expectEnvelope(await call(server.url, 'GET', CHANGES, { auth: 'Bearer abc' }), 401);
  });

  test('unsupported methods answer 405', async () => {
    const { sim, server } = await start();
    const change = sim.createChange({});

    expectEnvelope(await call(server.url, 'DELETE', CHANGES), 405, 'Method not Supported');
    expectEnvelope(await call(server.url, 'PATCH', CHANGES, { body: {} }), 405);
    expectEnvelope(await call(server.url, 'POST', `${CHANGES}/${change.sys_id}`, { body: {} }), 405);
  });

  test('a body with a non-JSON Content-Type answers 415 and creates nothing', async () => {
    const { sim, server } = await start();

    const reply = await call(server.url, 'POST', CHANGES, { rawBody: 'short_description=x', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
    expectEnvelope(reply, 415);
    expect(sim.findByNumber('CHG0030001')).toBeUndefined();
  });

  test('an Accept header without application/json answers 406', async () => {
    const { server } = await start();
    expectEnvelope(await call(server.url, 'GET', CHANGES, { headers: { Accept: 'text/html' } }), 406);
    expect((await call(server.url, 'GET', CHANGES, { headers: { Accept: '*/*' } })).status).toBe(200);
  });

  test('invalid JSON, a non-object body or an empty body answer 400 and change nothing', async () => {
    const { sim, server } = await start();
    const change = sim.createChange({});
    const path = `${CHANGES}/${change.sys_id}`;
    const json = { 'Content-Type': 'application/json' };

    expectEnvelope(await call(server.url, 'PATCH', path, { rawBody: '{"state": ', headers: json }), 400);
    expectEnvelope(await call(server.url, 'PATCH', path, { body: ['state', '3'] }), 400);
    expectEnvelope(await call(server.url, 'PATCH', path, { body: 'state' }), 400);
    expectEnvelope(await call(server.url, 'POST', CHANGES, { headers: json }), 400);
    expect(sim.getChange(change.sys_id)?.sys_mod_count).toBe('0');
  });

  test('unknown tables and paths answer 400 with the envelope', async () => {
    const { server } = await start();
    expectEnvelope(await call(server.url, 'GET', '/api/now/table/incident'), 400, 'Invalid table incident');
    expectEnvelope(await call(server.url, 'GET', '/api/now/nothing'), 400);
  });
});

describe('ServiceNow simulator: queries and pagination', () => {
  test('sysparm_query filters on field=value, orders with ORDERBYDESC and silently drops unknown terms', async () => {
    const { sim, server } = await start();
    for (const state of ['-5', '-1', '-1', '3']) sim.createChange({ state, u_identity_cleanup: 'verified' });

    const implement = await call(server.url, 'GET', `${CHANGES}?sysparm_query=${encodeURIComponent('state=-1^ORDERBYDESCnumber')}`);
    expect(implement.json.result.map((r: { number: string }) => r.number)).toEqual(['CHG0030003', 'CHG0030002']);

    const bogus = await call(server.url, 'GET', `${CHANGES}?sysparm_query=${encodeURIComponent('no_such_field=1^number=CHG0030004')}`);
    expect(bogus.json.result.map((r: { number: string }) => r.number)).toEqual(['CHG0030004']);

    const none = await call(server.url, 'GET', `${CHANGES}?sysparm_query=number=CHG9999999`);
    expect(none.status).toBe(200);
    expect(none.json.result).toEqual([]);
    expect(none.headers.get('x-total-count')).toBe('0');
  });

  test('sysparm_fields limits the returned columns', async () => {
    const { sim, server } = await start();
    const change = sim.createChange({ short_description: 'x' });

    const reply = await call(server.url, 'GET', `${CHANGES}/${change.sys_id}?sysparm_fields=number,state`);
    expect(reply.json.result).toEqual({ number: change.number, state: '-5' });
  });

  test('a paginated list carries X-Total-Count and Link rel first/prev/next/last', async () => {
    const { sim, server } = await start();
    for (let i = 0; i < 5; i += 1) sim.createChange({ short_description: `change ${i}` });

    const page = await call(server.url, 'GET', `${CHANGES}?sysparm_query=ORDERBYnumber&sysparm_limit=2&sysparm_offset=2&sysparm_fields=number`);
    expect(page.json.result).toEqual([{ number: 'CHG0030003' }, { number: 'CHG0030004' }]);
    expect(page.headers.get('x-total-count')).toBe('5');
    const links = Object.fromEntries(
      (page.headers.get('link') ?? '').split(',').map((part) => {
        const [, url, rel] = /^<([^>]+)>;rel="(\w+)"$/.exec(part.trim()) ?? [];
        return [rel, new URL(url).searchParams.get('sysparm_offset')];
      }),
    );
    expect(links).toEqual({ first: '0', prev: '0', next: '4', last: '4' });

    const all = await call(server.url, 'GET', CHANGES);
    expect(all.json.result).toHaveLength(5);
    expect(all.headers.get('link')).toBeNull();
  });

  test('sysparm_display_value=true shows the state label and =all shows both value and label', async () => {
    const { sim, server } = await start();
    const change = sim.createChange({ state: '-1', short_description: 'deploy' });

    const labels = await call(server.url, 'GET', `${CHANGES}/${change.sys_id}?sysparm_display_value=true`);
    expect(labels.json.result).toMatchObject({ state: 'Implement', short_description: 'deploy' });
    const both = await call(server.url, 'GET', `${CHANGES}/${change.sys_id}?sysparm_display_value=all`);
    expect(both.json.result.state).toEqual({ display_value: 'Implement', value: '-1' });
    expect(both.json.result.short_description).toEqual({ display_value: 'deploy', value: 'deploy' });
  });
});

describe('ServiceNow simulator: journal fields', () => {
  test('work_notes and comments read back as "" and land in sys_journal_field in order', async () => {
    const { sim, server } = await start();
    const change = sim.createChange({});
    const path = `${CHANGES}/${change.sys_id}`;

    const first = await call(server.url, 'PATCH', path, { body: { work_notes: 'first note' } });
    await call(server.url, 'PATCH', path, { body: { work_notes: 'second note', comments: 'visible to the requester' } });

    expect(first.json.result.work_notes).toBe('');
    const record = await call(server.url, 'GET', path);
    expect(record.json.result).toMatchObject({ work_notes: '', comments: '', sys_mod_count: '2' });

    const query = encodeURIComponent(`element_id=${change.sys_id}^element=work_notes^ORDERBYsys_created_on`);
    const notes = await call(server.url, 'GET', `${JOURNAL}?sysparm_query=${query}`);
    expect(notes.json.result).toEqual([
      expect.objectContaining({ element_id: change.sys_id, element: 'work_notes', name: 'change_request', value: 'first note', sys_created_by: USER }),
      expect.objectContaining({ value: 'second note' }),
    ]);
    expect(notes.json.result[0].sys_id).toMatch(SYS_ID);
    expect(sim.journal(change.sys_id, 'comments').map((e) => e.value)).toEqual(['visible to the requester']);
    expect(sim.journal(change.sys_id)).toHaveLength(3);

    const entry = await call(server.url, 'GET', `${JOURNAL}/${notes.json.result[0].sys_id}`);
    expect(entry.json.result.value).toBe('first note');
  });
});

describe('ServiceNow simulator: rate limits', () => {
  test('every response carries the rate limit headers and the request over the hourly limit gets 429 with Retry-After', async () => {
    const { server } = await start({ rateLimitPerHour: 2 });
    const before = Math.floor(Date.now() / 1000);

    const ok = [await call(server.url, 'GET', CHANGES), await call(server.url, 'GET', CHANGES)];
    const denied = await call(server.url, 'GET', CHANGES);
    const unauthenticated = await call(server.url, 'GET', CHANGES, { auth: null });

    for (const reply of [...ok, denied, unauthenticated]) {
      expect(reply.headers.get('x-ratelimit-limit')).toBe('2');
      expect(reply.headers.get('x-ratelimit-rule')).toMatch(SYS_ID);
      const reset = Number(reply.headers.get('x-ratelimit-reset'));
      expect(reset % 3600).toBe(0);
      expect(reset).toBeGreaterThan(before);
      expect(reset).toBeLessThanOrEqual(before + 3600);
    }
    expect(ok.map((r) => r.status)).toEqual([200, 200]);
    expectEnvelope(denied, 429, 'Rate limit exceeded');
    const retryAfter = Number(denied.headers.get('retry-after'));
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(3600);
    expect(unauthenticated.status).toBe(401);
  });

  test('without a configured limit no rate limit headers are sent', async () => {
    const { server } = await start();
    const reply = await call(server.url, 'GET', CHANGES);
    expect(reply.headers.get('x-ratelimit-limit')).toBeNull();
  });
});

const ACTIONS = JSON.stringify([{ kind: 'leaver', system: 'mysql-local', identity: { type: 'service_account', name: 'svc_sim', host: '%' } }]);

describe('ServiceNow simulator: closure business rule', () => {
  test('closing a change with identity actions and no verified gate aborts with 403 and applies nothing of the write', async () => {
    const { sim, server } = await start();
    const change = sim.createChange({ state: '-1', u_identity_actions: ACTIONS });

    const reply = await call(server.url, 'PATCH', `${CHANGES}/${change.sys_id}`, {
      body: { state: '3', close_code: 'successful', work_notes: 'closing' },
    });

    expect(reply.status).toBe(403);
    expect(reply.json).toEqual({
      error: {
        message: 'Operation Failed',
        detail: expect.stringMatching(
          /^Operation against file 'change_request' was aborted by Business Rule 'changegate: block close without identity cleanup\^[0-9a-f]{32}'\. Business Rule Stack:changegate: block close without identity cleanup$/,
        ),
      },
      status: 'failure',
    });
    expect(sim.getChange(change.sys_id)).toEqual(change);
    expect(sim.journal(change.sys_id)).toEqual([]);
  });

  test('closing is allowed once the gate is verified for the change\'s actions, also when set in the same write', async () => {
    const { sim, server } = await start();
    const first = sim.createChange({ state: '-1', u_identity_actions: ACTIONS });
    const second = sim.createChange({ state: '0', u_identity_actions: ACTIONS });
    const gate = { u_identity_cleanup: 'verified', u_identity_cleanup_digest: identityActionsDigest(ACTIONS) };

    await call(server.url, 'PATCH', `${CHANGES}/${first.sys_id}`, { body: gate });
    const closed = await call(server.url, 'PATCH', `${CHANGES}/${first.sys_id}`, { body: { state: '3' } });
    expect(closed.status).toBe(200);
    expect(closed.json.result).toMatchObject({ state: '3', active: 'false', sys_mod_count: '2' });

    const together = await call(server.url, 'PATCH', `${CHANGES}/${second.sys_id}`, { body: { state: '3', ...gate } });
    expect(together.status).toBe(200);
  });

  test('a closed change can still take work notes: only the move to Closed is gated', async () => {
    const { sim, server } = await start();
    const change = sim.createChange({ state: '-1', u_identity_cleanup: 'verified' });
    sim.updateChange(change.sys_id, { state: '3' });
    sim.updateChange(change.sys_id, { u_identity_cleanup: '' });

    const note = await call(server.url, 'PATCH', `${CHANGES}/${change.sys_id}`, { body: { work_notes: 'evidence bundle attached' } });
    expect(note.status).toBe(200);
  });

  test('the updateChange helper throws BusinessRuleAbortError and creating a change with identity actions as Closed is gated too', async () => {
    const { sim } = await start();
    const change = sim.createChange({ u_identity_actions: ACTIONS });

    expect(() => sim.updateChange(change.sys_id, { state: '3' })).toThrow(BusinessRuleAbortError);
    // A bare "verified" names no actions, so it opens nothing.
    expect(() => sim.updateChange(change.sys_id, { state: '3', u_identity_cleanup: 'verified' })).toThrow(BLOCK_CLOSE_RULE_NAME);
    expect(() => sim.createChange({ state: '3', u_identity_actions: ACTIONS })).toThrow(BusinessRuleAbortError);
    expect(sim.createChange({ state: '3' }).state).toBe('3');
  });
});

describe('ServiceNow simulator: signed webhook from the after business rule', () => {
  interface Received {
    raw: Buffer;
    headers: http.IncomingHttpHeaders;
  }

  async function startReceiver(status = 202): Promise<{ url: string; received: Received[] }> {
    const received: Received[] = [];
    const app = express();
    app.post('/hooks/servicenow', express.raw({ type: () => true }), (req, res) => {
      received.push({ raw: req.body as Buffer, headers: req.headers });
      res.status(status).end();
    });
    const server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    running.push({
      close: () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    });
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/servicenow`, received };
  }

  test('every insert and update posts the Table API record, signed over timestamp.rawBody with a fresh event id', async () => {
    const secret = 'whsec-test-9f3a';
    const receiver = await startReceiver();
    const { sim, server } = await start({ webhook: { url: receiver.url, secret } });

    const created = await call(server.url, 'POST', CHANGES, { body: { short_description: 'leaver', requested_by: 'b'.repeat(32) } });
    const sysId: string = created.json.result.sys_id;
    await call(server.url, 'PATCH', `${CHANGES}/${sysId}`, { body: { state: '-4', work_notes: 'moved to assess' } });
    await waitFor(() => receiver.received.length === 2);
    await sim.waitForDeliveries();

    const current = await call(server.url, 'GET', `${CHANGES}/${sysId}`);
    const bodies = receiver.received.map((r) => JSON.parse(r.raw.toString('utf8')));
    const byModCount = new Map(bodies.map((b) => [b.sys_mod_count, b]));
    expect(byModCount.get('0')).toEqual(created.json.result);
    expect(byModCount.get('1')).toEqual(current.json.result);
    expect(byModCount.get('1').work_notes).toBe('');

    for (const delivery of receiver.received) {
      expect(delivery.headers['content-type']).toMatch(/^application\/json/);
      expect(delivery.headers[TIMESTAMP_HEADER]).toMatch(/^\d{10}$/);
      const check = verifyWebhookSignature({
        secret,
        rawBody: delivery.raw,
        signature: delivery.headers[SIGNATURE_HEADER] as string,
        timestamp: delivery.headers[TIMESTAMP_HEADER] as string,
        nowSeconds: Math.floor(Date.now() / 1000),
      });
      expect(check).toEqual({ ok: true });
      expect(verifyWebhookSignature({
        secret: 'another-secret',
        rawBody: delivery.raw,
        signature: delivery.headers[SIGNATURE_HEADER] as string,
        timestamp: delivery.headers[TIMESTAMP_HEADER] as string,
        nowSeconds: Math.floor(Date.now() / 1000),
      })).toEqual({ ok: false, reason: 'bad-signature' });
    }

    const eventIds = receiver.received.map((r) => r.headers[EVENT_ID_HEADER]);
    for (const id of eventIds) expect(id).toMatch(SYS_ID);
    expect(new Set(eventIds).size).toBe(2);
    expect(sim.deliveries.map((d) => d.eventId).sort()).toEqual([...eventIds].sort());
    expect(sim.deliveries.map((d) => [d.sysId, d.modCount, d.status]).sort()).toEqual([
      [sysId, '0', 202],
      [sysId, '1', 202],
    ]);
  });

  test('aborted writes and no-op writes send nothing; helper writes send like HTTP writes', async () => {
    const receiver = await startReceiver();
    const { sim } = await start({ webhook: { url: receiver.url, secret: 's' } });

    const change = sim.createChange({ state: '-1', u_identity_actions: ACTIONS });
    expect(() => sim.updateChange(change.sys_id, { state: '3' })).toThrow(BusinessRuleAbortError);
    sim.updateChange(change.sys_id, { state: '-1' });
    await sim.waitForDeliveries();

    expect(sim.deliveries).toEqual([expect.objectContaining({ sysId: change.sys_id, modCount: '0', status: 202 })]);
    expect(receiver.received).toHaveLength(1);
  });

  test('delivery failures are recorded with their status or as error', async () => {
    const failing = await startReceiver(500);
    const { sim: toFailing } = await start({ webhook: { url: failing.url, secret: 's' } });
    toFailing.createChange({});
    await toFailing.waitForDeliveries();
    expect(toFailing.deliveries.map((d) => d.status)).toEqual([500]);

    const gone = await startReceiver();
    const goneUrl = gone.url;
    await running.splice(running.length - 1, 1)[0].close();
    const { sim: toNowhere } = await start({ webhook: { url: goneUrl, secret: 's' } });
    toNowhere.createChange({});
    await toNowhere.waitForDeliveries();
    expect(toNowhere.deliveries).toEqual([expect.objectContaining({ status: 'error', error: expect.any(String) })]);
  });
});

describe('ServiceNow simulator: what an instance does that the integration must survive', () => {
  test('sys_updated_on>=…^ORDERBYsys_updated_on^ORDERBYsys_id lists the changes updated since a time in a stable order', async () => {
    const { sim, server } = await start();
    const made = [sim.createChange({}), sim.createChange({}), sim.createChange({})];
    const since = made.map((c) => c.sys_updated_on).sort()[0];
    const query = encodeURIComponent(`sys_updated_on>=${since}^ORDERBYsys_updated_on^ORDERBYsys_id`);

    const reply = await call(server.url, 'GET', `${CHANGES}?sysparm_query=${query}&sysparm_fields=sys_id,sys_updated_on&sysparm_limit=2&sysparm_offset=0`);
    const rest = await call(server.url, 'GET', `${CHANGES}?sysparm_query=${query}&sysparm_fields=sys_id,sys_updated_on&sysparm_limit=2&sysparm_offset=2`);
    const listed = [...reply.json.result, ...rest.json.result] as Array<{ sys_id: string; sys_updated_on: string }>;
    const expected = made.map((c) => ({ sys_id: c.sys_id, sys_updated_on: c.sys_updated_on })).sort((a, b) => a.sys_updated_on.localeCompare(b.sys_updated_on) || a.sys_id.localeCompare(b.sys_id));
    expect(listed).toEqual(expected);
    expect(reply.headers.get('x-total-count')).toBe('3');

    const later = await call(server.url, 'GET', `${CHANGES}?sysparm_query=${encodeURIComponent('sys_updated_on>=2999-01-01 00:00:00')}`);
    expect(later.json.result).toEqual([]);
  });

  test('a field the user may not write is dropped with 200 and the unchanged value in the answer', async () => {
    const { sim, server } = await start();
    const change = sim.createChange({ state: '-1' });
    sim.denyFieldWrite(['u_identity_cleanup']);

    const reply = await call(server.url, 'PATCH', `${CHANGES}/${change.sys_id}?sysparm_fields=sys_id,u_identity_cleanup,short_description`, {
      body: { u_identity_cleanup: 'verified', short_description: 'kept' },
    });
    expect(reply.status).toBe(200);
    expect(reply.json.result).toEqual({ sys_id: change.sys_id, u_identity_cleanup: '', short_description: 'kept' });
    expect(sim.getChange(change.sys_id)?.u_identity_cleanup).toBe('');
  });

  test('without read access to sys_journal_field, reading it answers 403 with the envelope', async () => {
    const { sim, server } = await start();
    sim.denyJournalRead(true);
    expectEnvelope(await call(server.url, 'GET', `${JOURNAL}?sysparm_limit=1`), 403, 'User Not Authorized');
    sim.denyJournalRead(false);
    expect((await call(server.url, 'GET', `${JOURNAL}?sysparm_limit=1`)).status).toBe(200);
  });

  test('the Attachment API stores raw bytes with 201, lists by table_sys_id and file_name, and serves the file', async () => {
    const { sim, server } = await start();
    const change = sim.createChange({});
    const path = `/api/now/attachment/file?table_name=change_request&table_sys_id=${change.sys_id}&file_name=bundle.json`;

    // Bytes without a Content-Type (fetch sets none for a byte array).
    const untyped = await fetch(`${server.url}${path}`, { method: 'POST', headers: { Accept: 'application/json', Authorization: basic(USER, PASSWORD) }, body: new Uint8Array(Buffer.from('{"a":1}')) });
    expect(untyped.status).toBe(400);
    expect(((await untyped.json()) as { error: { message: string } }).error.message).toMatch(/Content-Type/);
    const created = await call(server.url, 'POST', path, { rawBody: '{"a":1}', headers: { 'Content-Type': 'application/json' } });
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toBe(`${server.url}/api/now/attachment/${created.json.result.sys_id}`);
    expect(created.json.result).toMatchObject({ file_name: 'bundle.json', content_type: 'application/json', size_bytes: '7', table_name: 'change_request', table_sys_id: change.sys_id });
    expectEnvelope(await call(server.url, 'POST', path.replace(change.sys_id, 'f'.repeat(32)), { rawBody: 'x', headers: { 'Content-Type': 'text/plain' } }), 404);

    const query = encodeURIComponent(`table_name=change_request^table_sys_id=${change.sys_id}^file_name=bundle.json`);
    const listed = await call(server.url, 'GET', `/api/now/attachment?sysparm_query=${query}`);
    expect(listed.json.result.map((a: { sys_id: string }) => a.sys_id)).toEqual([created.json.result.sys_id]);
    const file = await fetch(created.json.result.download_link, { headers: { Authorization: basic(USER, PASSWORD) } });
    expect(await file.text()).toBe('{"a":1}');
    expect(sim.attachments(change.sys_id).map((a) => a.content.toString())).toEqual(['{"a":1}']);
  });

  test('a deactivated rule does not run, and the instance clock moves what GlideDateTime reads', async () => {
    const received: Array<Record<string, string | string[] | undefined>> = [];
    const receiver = express();
    receiver.post('/hook', express.raw({ type: () => true }), (req, res) => {
      received.push(req.headers);
      res.status(202).end();
    });
    const hook = http.createServer(receiver);
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
    running.push({ close: () => new Promise<void>((resolve) => hook.close(() => resolve())) });
    const { sim } = await start({ webhook: { url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`, secret: 'sim-secret-0123456789' } });

    sim.setRuleActive(BLOCK_CLOSE_RULE_NAME, false);
    const change = sim.createChange({ state: '-1', u_identity_actions: 'anything' });
    expect(sim.updateChange(change.sys_id, { state: '3' }).state).toBe('3');

    sim.setClockOffset(-600_000);
    sim.createChange({});
    await sim.waitForDeliveries();
    const stamps = received.map((h) => Number(h[TIMESTAMP_HEADER]));
    expect(Math.floor(Date.now() / 1000) - stamps[stamps.length - 1]).toBeGreaterThanOrEqual(599);
  });
});

describe('ServiceNow simulator: change_task (a Post Implementation Review)', () => {
  const TASKS = '/api/now/table/change_task';
  test('a task names its change; closing needs a close code and notes; a closed task cannot reopen', async () => {
    const { sim, server } = await start();
    const change = sim.createChange({});
    expectEnvelope(await call(server.url, 'POST', TASKS, { body: { short_description: 'orphan' } }), 400, /Invalid reference/);
    expectEnvelope(await call(server.url, 'POST', TASKS, { body: { change_request: change.sys_id, u_colour: 'red' } }), 400);
    const created = await call(server.url, 'POST', TASKS, { body: { change_request: change.sys_id, change_task_type: 'review', short_description: 'Post Implementation Review', correlation_id: 'c-1' } });
    expect(created.status).toBe(201);
    expect(created.json.result).toMatchObject({ number: expect.stringMatching(/^CTASK\d{7,}$/), state: '1', active: 'true', change_request: change.sys_id });
    const path = `${TASKS}/${created.json.result.sys_id}`;
    const query = encodeURIComponent(`change_request=${change.sys_id}^correlation_id=c-1`);
    expect((await call(server.url, 'GET', `${TASKS}?sysparm_query=${query}`)).json.result).toHaveLength(1);

    // The data policy: a close without a close code or notes is refused, and nothing changes.
    expectEnvelope(await call(server.url, 'PATCH', path, { body: { state: '3' } }), 403, 'Operation Failed');
    const noNotes = await call(server.url, 'PATCH', path, { body: { state: '3', close_code: 'successful' } });
    expect(noNotes.json.error.detail).toBe('Data Policy Exception: The following fields are mandatory: Close notes');
    expect(sim.tasks(change.sys_id)[0]).toMatchObject({ state: '1', close_code: '' });
    const closed = await call(server.url, 'PATCH', path, { body: { state: '3', close_code: 'unsuccessful', close_notes: 'revoked' } });
    expect(closed.json.result).toMatchObject({ state: '3', close_code: 'unsuccessful', active: 'false' });
    expectEnvelope(await call(server.url, 'PATCH', path, { body: { state: '1' } }), 403, 'Operation Failed');
    expectEnvelope(await call(server.url, 'DELETE', path), 403);
    expect(sim.tasks(change.sys_id).map((t) => t.state)).toEqual(['3']);
  });
});
