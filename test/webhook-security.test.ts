import type mysql from 'mysql2/promise';
import { type Stack, createAccount, startStack, uniqueAccount, uniqueTicketNumber } from './support/stack';
import { TEST_ENV } from './support/test-env';

/**
 * What a refused request must leave untouched: the accounts this file names in what it sends (with their grants)
 * and the delivery log of the records it sends. Scoped to those: other test files, and other checkouts' slots,
 * create accounts and deliveries on the same server at the same time, and a refused request here can only reach
 * the names and records it carries.
 */
async function snapshot(stack: Stack, owned: { names: Set<string>; records: Set<string> }): Promise<string> {
  const names = [...owned.names];
  const [users] = names.length === 0 ? [[]] : await stack.admin.query<mysql.RowDataPacket[]>('SELECT User, Host FROM mysql.user WHERE User IN (?) ORDER BY User, Host', [names]);
  const grants: string[] = [];
  for (const u of users) grants.push(...(await stack.grantsOf(String(u.User), String(u.Host))));
  const records = [...owned.records];
  const [deliveries] = records.length === 0
    ? [[{ n: 0 }]]
    : await stack.admin.query<mysql.RowDataPacket[]>(`SELECT COUNT(*) AS n FROM \`${TEST_ENV.database}\`.webhook_deliveries WHERE record_id IN (?) OR ticket_number IN (?)`, [records, records]);
  return JSON.stringify({ users, grants, deliveries });
}

describe('the ServiceNow webhook refuses what it cannot trust, and changes nothing when it does', () => {
  let stack: Stack;
  let victim: string;
  /** The accounts and records this file's requests name: what the snapshot covers. */
  const owned = { names: new Set<string>(), records: new Set<string>() };
  beforeAll(async () => {
    stack = await startStack();
    victim = uniqueAccount('victim');
    owned.names.add(victim);
    await createAccount(stack.admin, victim);
  });
  afterAll(async () => {
    await stack.stop();
  });

  const record = (actions: unknown, extra: Record<string, unknown> = {}) => {
    if (Array.isArray(actions)) for (const a of actions as Array<{ identity?: { name?: unknown } }>) if (typeof a.identity?.name === 'string') owned.names.add(a.identity.name);
    const r = {
      sys_id: [...Array(32)].map(() => '0123456789abcdef'[Math.floor(Math.random() * 16)]).join(''),
      number: uniqueTicketNumber(),
      sys_mod_count: '0',
      state: '-5',
      approval: 'not requested',
      type: 'normal',
      u_identity_actions: typeof actions === 'string' ? actions : JSON.stringify(actions),
      ...extra,
    };
    for (const id of [r.sys_id, r.number]) if (typeof id === 'string') owned.records.add(id);
    return r;
  };
  const leaverOf = (name: string, system = 'mysql-local') => [{ kind: 'leaver', system, identity: { type: 'service_account', name, host: '%' } }];

  async function expectRefused(send: () => Promise<{ status: number; data: unknown }>, status: number) {
    const before = await snapshot(stack, owned);
    const res = await send();
    expect(res.status).toBe(status);
    expect(await snapshot(stack, owned)).toBe(before);
    return res.data as { error: { code: string; message: string; issues: Array<{ path: string; message: string }> } };
  }

  it('a bad signature is 401 and the account survives', async () => {
    const body = await expectRefused(() => stack.deliver(record(leaverOf(victim)), { secret: 'not-the-secret-at-all' }), 401);
    expect(body.error).toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringMatching(/bad-signature/) });
    expect(await stack.accountExists(victim)).toBe(true);
  });

  it('a missing signature is 401', async () => {
    const body = await expectRefused(() => stack.deliver(record(leaverOf(victim)), { signature: '' }), 401);
    expect(body.error.message).toMatch(/missing-signature/);
  });

  it('a body altered after signing is 401: the signature covers the raw bytes', async () => {
    const original = Buffer.from(JSON.stringify(record(leaverOf('someone_else'))));
    const ts = Math.floor(Date.now() / 1000);
    const { signWebhook } = await import('../src/itsm/servicenow/webhook-signature');
    const signature = signWebhook('test-webhook-secret-0123456789', String(ts), original);
    const tampered = Buffer.from(original.toString().replace('someone_else', victim));
    await expectRefused(() => stack.deliver(undefined, { raw: tampered, timestamp: ts, signature }), 401);
  });

  it('a timestamp more than five minutes old is 401 even with a valid signature', async () => {
    const body = await expectRefused(() => stack.deliver(record(leaverOf(victim)), { timestamp: Math.floor(Date.now() / 1000) - 301 }), 401);
    expect(body.error.message).toMatch(/stale-timestamp/);
  });

  it('malformed JSON is 400 with the parser’s complaint', async () => {
    const body = await expectRefused(() => stack.deliver(undefined, { raw: Buffer.from('{"sys_id": "abc",') }), 400);
    expect(body.error).toMatchObject({ code: 'MALFORMED_JSON', message: expect.stringMatching(/not valid JSON/) });
  });

  it('an unknown system is 400 naming the field', async () => {
    const body = await expectRefused(() => stack.deliver(record(leaverOf(victim, 'oracle-prod'))), 400);
    expect(body.error.issues).toEqual([{ path: 'u_identity_actions[0].system', message: expect.stringMatching(/unknown system 'oracle-prod'/) }]);
  });

  it('a SQL-injection attempt in an identity name is 400 naming identity.name, and MariaDB is unchanged', async () => {
    const body = await expectRefused(() => stack.deliver(record(leaverOf(`${victim}'@'%'; DROP USER '${victim}`))), 400);
    expect(body.error.issues).toEqual([{ path: 'u_identity_actions[0].identity.name', message: expect.any(String) }]);
    expect(await stack.accountExists(victim)).toBe(true);
  });

  it('every invalid field is named at once: record fields, action shape, unknown privilege, unparseable grant, ttl', async () => {
    const actions = [
      { kind: 'joiner', system: 'mysql-local', identity: { type: 'robot', name: 'svc_a' }, grants: ['SELECT ON billing.*'] },
      { kind: 'joiner', system: 'mysql-local', identity: { type: 'person', name: 'svc_b' }, grants: ['FLY ON billing.*', 'SELECT billing'], ttl: 'PT0.5S' },
      { kind: 'offboard', system: 'mysql-local', identity: { type: 'person', name: 'svc_c' } },
    ];
    // A state is any integer choice value (one the mapping does not know is phase `unknown`); a label is not one.
    const body = await expectRefused(() => stack.deliver(record(actions, { state: 'Closed', sys_id: 'nope', end_date: '2026-13-45 99:99:99' })), 400);
    const paths = body.error.issues.map((i) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['sys_id', 'state', 'end_date']));
    expect(body.error.issues.find((i) => i.path === 'end_date')?.message).toBe('is not a real date and time');
    const second = await expectRefused(() => stack.deliver(record(actions)), 400);
    const byPath = Object.fromEntries(second.error.issues.map((i) => [i.path, i.message]));
    expect(byPath['u_identity_actions[0].identity.type']).toMatch(/person|service_account/);
    expect(byPath['u_identity_actions[1].ttl']).toMatch(/at least one second/);
    expect(byPath['u_identity_actions[2].kind']).toMatch(/kind must be one of joiner, leaver/);
    const grantErrors = await expectRefused(() => stack.deliver(record([actions[1]!].map((a) => ({ ...a, ttl: 'PT1H' })))), 400);
    const grantPaths = Object.fromEntries(grantErrors.error.issues.map((i) => [i.path, i.message]));
    expect(grantPaths['u_identity_actions[0].grants[0]']).toMatch(/unknown or disallowed privilege 'FLY'/);
    expect(grantPaths['u_identity_actions[0].grants[1]']).toMatch(/must look like/);
  });

  it('u_identity_actions that is not JSON is 400 naming the field', async () => {
    const body = await expectRefused(() => stack.deliver(record('[{kind: leaver')), 400);
    expect(body.error.issues[0]?.path).toBe('u_identity_actions');
  });

  it('a ttl above the connector policy maximum is 400', async () => {
    const actions = [{ kind: 'joiner', system: 'mysql-local', identity: { type: 'person', name: 'svc_long' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'P1Y' }];
    const body = await expectRefused(() => stack.deliver(record(actions)), 400);
    expect(body.error.issues).toEqual([{ path: 'u_identity_actions[0].ttl', message: expect.stringMatching(/policy maximum/) }]);
  });

  it('an oversized body is 413', async () => {
    const huge = record(leaverOf(victim), { description: 'x'.repeat(70 * 1024) });
    const body = await expectRefused(() => stack.deliver(huge), 413);
    expect(body.error.code).toBe('PAYLOAD_TOO_LARGE');
  });

  it('a missing delivery id is 400 naming the header', async () => {
    const res = await stack.deliver(record(leaverOf(victim)), { eventId: '' });
    expect(res.status).toBe(400);
    expect(res.data.error.issues[0].path).toBe('header x-changegate-event-id');
  });

  it('closure-check needs the admin bearer token', async () => {
    const res = await fetch(`${stack.apiUrl}/api/changes/servicenow/CHG0000001/closure-check`);
    expect(res.status).toBe(401);
    const wrong = await fetch(`${stack.apiUrl}/api/changes/servicenow/CHG0000001/closure-check`, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    const unknown = await stack.closureCheck('CHG0000001');
    expect(unknown.status).toBe(404);
    const bad = await stack.closureCheck('CHG%27%20OR%201');
    expect(bad.status).toBe(400);
  });

  it('healthz answers; readyz reports the database and Temporal reachable and the ServiceNow integration user able to read work notes', async () => {
    expect((await fetch(`${stack.apiUrl}/healthz`)).status).toBe(200);
    const ready = await fetch(`${stack.apiUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', database: 'ok', temporal: 'ok', workers: { workflow: 'ok', activity: 'ok' }, sources: { servicenow: 'ok', jira: 'ok' } });
  });
});
