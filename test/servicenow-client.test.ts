import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { AxiosError } from 'axios';
import express from 'express';
import { ServiceNowClient, ServiceNowError } from '../src/itsm/servicenow/servicenow-client';
import { identityActionsDigest } from '../src/itsm/servicenow/servicenow-gate';
import { createServiceNowSimulator, type ServiceNowSimulator, type SimulatorOptions } from '../src/itsm/servicenow/servicenow-simulator';

const USER = 'changegate.integration';
const PASSWORD = 'S3cr3t-Pa55w0rd-never-logged';
const TOKEN = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');

const running: Array<() => Promise<void>> = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((close) => close()));
});

async function serve(app: express.Express): Promise<string> {
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  running.push(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function withSimulator(overrides: Partial<SimulatorOptions> = {}): Promise<{ sim: ServiceNowSimulator; client: ServiceNowClient }> {
  const sim = createServiceNowSimulator({ username: USER, password: PASSWORD, ...overrides });
  const server = await sim.listen(0);
  running.push(() => server.close());
  return { sim, client: new ServiceNowClient({ baseUrl: server.url, username: USER, password: PASSWORD, timeoutMs: 2_000 }) };
}

/** A stand-in instance that answers every request with `handler` and counts what reached it. */
async function withStub(handler: express.RequestHandler, timeoutMs = 2_000): Promise<{ client: ServiceNowClient; hits: () => number }> {
  let hits = 0;
  const app = express();
  app.use((req, res, next) => {
    hits += 1;
    handler(req, res, next);
  });
  const url = await serve(app);
  return { client: new ServiceNowClient({ baseUrl: url, username: USER, password: PASSWORD, timeoutMs }), hits: () => hits };
}

async function failure(promise: Promise<unknown>): Promise<ServiceNowError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ServiceNowError);
    return err as ServiceNowError;
  }
  throw new Error('expected the call to fail');
}

function expectNoSecrets(err: ServiceNowError): void {
  for (const text of [err.message, String(err), err.stack ?? '', inspect(err, { depth: 12 })]) {
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain(TOKEN);
  }
}

describe('ServiceNowClient against the simulator', () => {
  test('getChange returns the Table API record with string values', async () => {
    const { sim, client } = await withSimulator();
    const change = sim.createChange({ short_description: 'revoke db user', assignment_group: 'c'.repeat(32) });

    const record = await client.getChange(change.sys_id);

    expect(record).toMatchObject({ sys_id: change.sys_id, number: 'CHG0030001', state: '-5', sys_mod_count: '0' });
    expect(record.assignment_group).toEqual({ link: expect.stringContaining(`/sys_user_group/${'c'.repeat(32)}`), value: 'c'.repeat(32) });
  });

  test('findChangeByNumber returns the one matching change, or null when none matches', async () => {
    const { sim, client } = await withSimulator();
    sim.createChange({});
    const second = sim.createChange({});

    expect((await client.findChangeByNumber('CHG0030002'))?.sys_id).toBe(second.sys_id);
    expect(await client.findChangeByNumber('CHG0039999')).toBeNull();
  });

  test('updateChange PATCHes the fields and returns the updated record', async () => {
    const { sim, client } = await withSimulator();
    const change = sim.createChange({ state: '-1' });

    const updated = await client.updateChange(change.sys_id, { u_identity_cleanup: 'verified', close_notes: 'verified by changegate' });

    expect(updated).toMatchObject({ u_identity_cleanup: 'verified', close_notes: 'verified by changegate', sys_mod_count: '1' });
    expect(sim.getChange(change.sys_id)?.u_identity_cleanup).toBe('verified');
  });

  test('addWorkNote appends journal entries that listWorkNotes returns oldest first, comments excluded', async () => {
    const { sim, client } = await withSimulator();
    const change = sim.createChange({});
    const other = sim.createChange({});

    await client.addWorkNote(change.sys_id, '[changegate a] revoked');
    await client.addWorkNote(change.sys_id, '[changegate b] verified');
    sim.updateChange(change.sys_id, { comments: 'not a work note' });
    await client.addWorkNote(other.sys_id, 'unrelated');

    const notes = await client.listWorkNotes(change.sys_id);
    expect(notes.map((n) => n.value)).toEqual(['[changegate a] revoked', '[changegate b] verified']);
    for (const note of notes) {
      expect(Object.keys(note).sort()).toEqual(['sys_created_on', 'sys_id', 'value']);
      expect(note.sys_id).toMatch(/^[0-9a-f]{32}$/);
    }
    expect((await client.getChange(change.sys_id)).work_notes).toBe('');
  });

  test('a missing record becomes kind not_found with the envelope text and the axios error as cause', async () => {
    const { client } = await withSimulator();

    const err = await failure(client.getChange('0'.repeat(32)));

    expect(err).toMatchObject({ kind: 'not_found', status: 404, businessRuleAbort: false });
    expect(err.message).toBe("No Record found: Record doesn't exist or ACL restricts the record retrieval");
    expect(err.detail).toBe("Record doesn't exist or ACL restricts the record retrieval");
    expect(err.cause).toBeInstanceOf(AxiosError);
    expect(err.retryable).toBe(false);
    expectNoSecrets(err);
  });

  test('a close aborted by the business rule is refused with businessRuleAbort and leaves the change as it was', async () => {
    const { sim, client } = await withSimulator();
    const actions = JSON.stringify([{ kind: 'leaver', system: 'mysql-local', identity: { type: 'service_account', name: 'svc_x', host: '%' } }]);
    const change = sim.createChange({ state: '-1', u_identity_actions: actions });

    const err = await failure(client.updateChange(change.sys_id, { state: '3', close_code: 'successful' }));

    expect(err).toMatchObject({ kind: 'refused', status: 403, businessRuleAbort: true });
    expect(err.message).toMatch(/^Operation Failed: Operation against file 'change_request' was aborted by Business Rule 'changegate: block close without identity cleanup\^[0-9a-f]{32}'/);
    expect(err.cause).toBeInstanceOf(AxiosError);
    expect(sim.getChange(change.sys_id)).toEqual(change);

    await client.updateChange(change.sys_id, { u_identity_cleanup: 'verified', u_identity_cleanup_digest: identityActionsDigest(actions) });
    const closed = await client.updateChange(change.sys_id, { state: '3', close_code: 'successful' });
    expect(closed.state).toBe('3');
  });

  test('a 429 becomes kind rate_limited with retryAfterMs taken from Retry-After', async () => {
    const { client } = await withSimulator({ rateLimitPerHour: 1 });
    await client.findChangeByNumber('CHG0030001');

    const err = await failure(client.findChangeByNumber('CHG0030001'));

    expect(err).toMatchObject({ kind: 'rate_limited', status: 429, message: expect.stringMatching(/^Rate limit exceeded: /) });
    const retryAfter = Number((err.cause as AxiosError).response?.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(err.retryAfterMs).toBe(retryAfter * 1000);
    expect(err.retryable).toBe(true);
    expectNoSecrets(err);
  });

  test('a 429 without Retry-After takes retryAfterMs from the X-RateLimit-Reset epoch', async () => {
    const resetAt = Math.floor(Date.now() / 1000) + 120;
    const { client } = await withStub((_req, res) => {
      res.setHeader('X-RateLimit-Reset', String(resetAt));
      res.status(429).json({ error: { message: 'Rate limit exceeded', detail: 'rule' }, status: 'failure' });
    });

    const err = await failure(client.getChange('a'.repeat(32)));

    expect(err.kind).toBe('rate_limited');
    expect(err.retryAfterMs).toBeGreaterThan(115_000);
    expect(err.retryAfterMs).toBeLessThanOrEqual(120_000);
  });

  test('wrong credentials are refused and no message, stack or inspected cause contains the password', async () => {
    const sim = createServiceNowSimulator({ username: USER, password: 'the-real-one' });
    const server = await sim.listen(0);
    running.push(() => server.close());
    const client = new ServiceNowClient({ baseUrl: server.url, username: USER, password: PASSWORD });

    const err = await failure(client.getChange('a'.repeat(32)));

    expect(err).toMatchObject({ kind: 'refused', status: 401, message: 'User Not Authenticated: Required to provide Auth information' });
    expect(err.cause).toBeInstanceOf(AxiosError);
    expectNoSecrets(err);
  });
});

describe('ServiceNowClient transient failures', () => {
  test('5xx answers are transient, with or without an envelope', async () => {
    const { client } = await withStub((req, res) => {
      if (req.path.endsWith('a'.repeat(32))) res.status(503).send('<html>Service Unavailable</html>');
      else res.status(500).json({ error: { message: 'Internal error', detail: 'boom' }, status: 'failure' });
    });

    const unavailable = await failure(client.getChange('a'.repeat(32)));
    expect(unavailable).toMatchObject({ kind: 'transient', status: 503 });
    const internal = await failure(client.getChange('b'.repeat(32)));
    expect(internal).toMatchObject({ kind: 'transient', status: 500, message: 'Internal error: boom' });
  });

  test('a refused connection is transient', async () => {
    const url = await serve(express());
    await running.pop()?.();
    const client = new ServiceNowClient({ baseUrl: url, username: USER, password: PASSWORD });

    const err = await failure(client.getChange('a'.repeat(32)));

    expect(err.kind).toBe('transient');
    expect(err.status).toBeUndefined();
    expect((err.cause as AxiosError).code).toBe('ECONNREFUSED');
    expectNoSecrets(err);
  });

  test('a request that outlives timeoutMs is transient', async () => {
    const { client } = await withStub(() => undefined, 150);

    const err = await failure(client.getChange('a'.repeat(32)));

    expect(err.kind).toBe('transient');
    expect(err.message).toMatch(/timed out/);
    expectNoSecrets(err);
  });

  test('a 200 without a result envelope (a hibernating instance login page) is transient, not data', async () => {
    const { client } = await withStub((_req, res) => {
      res.status(200).type('html').send('<html>Your instance is hibernating</html>');
    });

    await expect(client.getChange('a'.repeat(32))).rejects.toMatchObject({ kind: 'transient', status: 200 });
  });
});

describe('ServiceNowClient input checks', () => {
  test('malformed sys_ids and task numbers are refused before any request is sent', async () => {
    const { client, hits } = await withStub((_req, res) => {
      res.json({ result: [] });
    });
    const badSysIds = ['', 'A'.repeat(32), 'a'.repeat(31), 'a'.repeat(33), '../../sys_user', `${'a'.repeat(32)}?sysparm_fields=x`];
    const badNumbers = ['', 'chg0030001', 'CHG0030001^active=true', 'CHG0030001^NQnumberISNOTEMPTY', 'CHG001', 'CHG 0030001'];

    for (const sysId of badSysIds) {
      for (const call of [
        () => client.getChange(sysId),
        () => client.updateChange(sysId, { state: '3' }),
        () => client.addWorkNote(sysId, 'x'),
        () => client.listWorkNotes(sysId),
      ]) {
        await expect(call()).rejects.toMatchObject({ name: 'ServiceNowError', kind: 'refused', status: undefined });
      }
    }
    for (const number of badNumbers) {
      await expect(client.findChangeByNumber(number)).rejects.toMatchObject({ kind: 'refused' });
    }
    await expect(client.addWorkNote('a'.repeat(32), '   ')).rejects.toMatchObject({ kind: 'refused' });
    expect(hits()).toBe(0);

    await client.findChangeByNumber('CHG0030001');
    expect(hits()).toBe(1);
  });

  test('a base URL carrying credentials is rejected', () => {
    expect(() => new ServiceNowClient({ baseUrl: `https://${USER}:${PASSWORD}@acme.service-now.com`, username: USER, password: PASSWORD })).toThrow(
      /must not carry credentials/,
    );
  });
});

describe('ServiceNowClient: reconciliation, read-back, readiness and attachments', () => {
  test('listChangesUpdatedSince pages through the changes updated at or after a time, in (sys_updated_on, sys_id) order', async () => {
    const { sim, client } = await withSimulator();
    const made = [sim.createChange({}), sim.createChange({}), sim.createChange({})];
    const since = made.map((c) => c.sys_updated_on).sort()[0];
    const pages = [...(await client.listChangesUpdatedSince(since, { limit: 2, offset: 0 })), ...(await client.listChangesUpdatedSince(since, { limit: 2, offset: 2 }))];
    const order = [...made].sort((a, b) => a.sys_updated_on.localeCompare(b.sys_updated_on) || a.sys_id.localeCompare(b.sys_id)).map((c) => c.sys_id);
    expect(pages.map((r) => r.sys_id)).toEqual(order);
    expect(pages[0]).toMatchObject({ state: '-5', sys_mod_count: '0' });
    expect(await client.listChangesUpdatedSince('2999-01-01 00:00:00', { limit: 2, offset: 0 })).toEqual([]);
  });

  test('updateChangeReadBack answers with the saved values of the fields asked for: a field ACL drop shows there', async () => {
    const { sim, client } = await withSimulator();
    const change = sim.createChange({});
    sim.denyFieldWrite(['u_identity_cleanup_digest']);
    const saved = await client.updateChangeReadBack(change.sys_id, { u_identity_cleanup: 'verified', u_identity_cleanup_digest: 'a'.repeat(64) }, 'note', ['u_identity_cleanup', 'u_identity_cleanup_digest']);
    expect(saved).toEqual({ sys_id: change.sys_id, u_identity_cleanup: 'verified', u_identity_cleanup_digest: '' });
    expect(sim.journal(change.sys_id, 'work_notes').map((n) => n.value)).toEqual(['note']);
  });

  test('probeJournalRead passes with read access and is refused (HTTP 403) without it', async () => {
    const { sim, client } = await withSimulator();
    await expect(client.probeJournalRead()).resolves.toBeUndefined();
    sim.denyJournalRead(true);
    const err = await failure(client.probeJournalRead());
    expect(err).toMatchObject({ kind: 'refused', status: 403 });
  });

  test('uploadAttachment stores the bytes with their type and findAttachments finds them by file name only', async () => {
    const { sim, client } = await withSimulator();
    const change = sim.createChange({});
    expect(await client.findAttachments(change.sys_id, 'bundle-1.json')).toEqual([]);
    const uploaded = await client.uploadAttachment(change.sys_id, 'bundle-1.json', 'application/json', Buffer.from('{"rows":[]}'));
    expect(uploaded).toMatchObject({ file_name: 'bundle-1.json', content_type: 'application/json', size_bytes: '11', table_sys_id: change.sys_id });
    expect((await client.findAttachments(change.sys_id, 'bundle-1.json')).map((a) => a.sys_id)).toEqual([uploaded.sys_id]);
    expect(await client.findAttachments(change.sys_id, 'bundle-2.json')).toEqual([]);
    expect(sim.attachments(change.sys_id).map((a) => a.content.toString())).toEqual(['{"rows":[]}']);
  });

  test('a malformed time, or a file name that could change the query, is refused before any request is sent', async () => {
    const { client, hits } = await withStub((_req, res) => {
      res.json({ result: [] });
    });
    const sysId = 'a'.repeat(32);
    for (const call of [
      () => client.listChangesUpdatedSince('2026-01-01T00:00:00Z', { limit: 1, offset: 0 }),
      () => client.listChangesUpdatedSince('2026-01-01 00:00:00^ORDERBYnumber', { limit: 1, offset: 0 }),
      () => client.findAttachments(sysId, 'x.json^table_sys_id!=y'),
      () => client.uploadAttachment(sysId, 'a b.json', 'application/json', Buffer.from('{}')),
    ]) {
      expect(await failure(call())).toMatchObject({ kind: 'refused' });
    }
    expect(hits()).toBe(0);
  });
});
