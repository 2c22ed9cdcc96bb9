import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import axios from 'axios';
import { ApiTokenStore, tokenSha256 } from '../src/auth/api-tokens';
import { parseArgs } from '../src/auth/token-cli';
import { type Stack, startStack } from './support/stack';
import { TEST_ENV } from './support/test-env';

const run = promisify(execFile);
const ROOT = resolve(__dirname, '..');

describe('machines: named API tokens, stored hashed, revocable', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ inProcessWorker: false });
  });
  afterAll(async () => {
    await stack.stop();
  });

  const api = (method: 'GET' | 'POST' | 'DELETE', path: string, token: string, data?: unknown) =>
    axios.request({ method, url: `${stack.apiUrl}${path}`, data, headers: { authorization: `Bearer ${token}` }, validateStatus: () => true });
  const uniqueName = (prefix: string) => `${prefix}-${randomBytes(5).toString('hex')}`;

  it('a token made through POST /api/tokens is shown once, works, and is refused with 401 once revoked', async () => {
    const name = uniqueName('siem');
    const made = await api('POST', '/api/tokens', TEST_ENV.adminToken, { name, roles: ['auditor'] });
    expect(made.status).toBe(201);
    expect(made.data).toMatchObject({ name, roles: ['auditor'], createdBy: 'token:admin', revokedAt: null, token: expect.stringMatching(/^cg_[A-Za-z0-9_-]{43}$/) });
    const token = made.data.token as string;

    const listed = await api('GET', '/api/tokens', token);
    expect(listed.status).toBe(200);
    expect(listed.data.tokens).toContainEqual(expect.objectContaining({ name, roles: ['auditor'], revokedAt: null }));
    // Neither the token nor its hash is ever read back.
    expect(JSON.stringify(listed.data)).not.toContain(token);
    expect(JSON.stringify(listed.data)).not.toContain(tokenSha256(token));

    const revoked = await api('DELETE', `/api/tokens/${name}`, TEST_ENV.adminToken);
    expect(revoked.status).toBe(200);
    expect(revoked.data).toMatchObject({ name, revokedAt: expect.any(String), revokedBy: 'token:admin' });

    const after = await api('GET', '/api/tokens', token);
    expect(after.status).toBe(401);
    expect(after.headers['www-authenticate']).toBe('Bearer realm="changegate", error="invalid_token"');

    const again = await api('DELETE', `/api/tokens/${name}`, TEST_ENV.adminToken);
    expect(again.status).toBe(200);
    expect(again.data.revokedAt).toBe(revoked.data.revokedAt);
  });

  it('POST /api/tokens refuses decision roles and launcher names with 400, and a taken name with 409', async () => {
    const decision = await api('POST', '/api/tokens', TEST_ENV.adminToken, { name: uniqueName('approver'), roles: ['change-manager'] });
    expect(decision.status).toBe(400);
    expect(decision.data.error.issues[0].path).toBe('roles[0]');
    const demo = await api('POST', '/api/tokens', TEST_ENV.adminToken, { name: 'demo-operator-x', roles: ['operator'] });
    expect(demo.status).toBe(400);
    expect(demo.data.error.issues[0].path).toBe('name');
    const name = uniqueName('pipeline');
    expect((await api('POST', '/api/tokens', TEST_ENV.adminToken, { name, roles: ['operator'] })).status).toBe(201);
    const taken = await api('POST', '/api/tokens', TEST_ENV.adminToken, { name, roles: ['operator'] });
    expect(taken.status).toBe(409);
    expect(taken.data.error.code).toBe('CONFLICT');
  });

  it('the database lets a token row change only by being revoked, once, and never be deleted', async () => {
    const { name } = await stack.tokenFor('auditor');
    const table = `\`${TEST_ENV.database}\`.api_tokens`;
    const refused = (sql: string) => expect(stack.admin.query(sql, [name])).rejects.toMatchObject({ sqlState: '45000' });
    await refused(`UPDATE ${table} SET roles = '["operator"]' WHERE name = ?`);
    await refused(`UPDATE ${table} SET token_sha256 = REPEAT('0', 64) WHERE name = ?`);
    // Riding along with a revocation does not help either.
    await refused(`UPDATE ${table} SET revoked_at = NOW(3), revoked_by = 'x', roles = '["operator"]' WHERE name = ?`);
    await refused(`UPDATE ${table} SET revoked_at = NOW(3), revoked_by = 'x', token_sha256 = REPEAT('0', 64) WHERE name = ?`);
    await refused(`UPDATE ${table} SET revoked_at = NOW(3), revoked_by = NULL WHERE name = ?`);
    await refused(`DELETE FROM ${table} WHERE name = ?`);
    await stack.tokens.revoke(name, 'test');
    await refused(`UPDATE ${table} SET revoked_at = NULL, revoked_by = NULL WHERE name = ?`);
    await refused(`UPDATE ${table} SET revoked_at = NOW(3), revoked_by = 'someone-else' WHERE name = ?`);
  });

  it("the application account the stack runs as (deploy/'s grants) can revoke a token and cannot update or delete evidence", async () => {
    const { ds } = stack;
    const { name, token } = await stack.tokenFor('operator');
    expect(await new ApiTokenStore(ds).revoke(name, 'test')).toMatchObject({ name, revokedBy: 'test' });
    expect(await stack.tokens.authenticate(token)).toBeNull();
    await expect(ds.query('UPDATE evidence_records SET outcome = outcome')).rejects.toMatchObject({ code: 'ER_TABLEACCESS_DENIED_ERROR' });
    await expect(ds.query('DELETE FROM evidence_records')).rejects.toMatchObject({ code: 'ER_TABLEACCESS_DENIED_ERROR' });
    await expect(ds.query('UPDATE webhook_deliveries SET source = source')).rejects.toMatchObject({ code: 'ER_TABLEACCESS_DENIED_ERROR' });
    await expect(ds.query('DELETE FROM api_tokens')).rejects.toMatchObject({ code: 'ER_TABLEACCESS_DENIED_ERROR' });
    // The inventory is updated in place, never emptied.
    await ds.query('UPDATE identity_inventory SET status = status');
    await expect(ds.query('DELETE FROM identity_inventory')).rejects.toMatchObject({ code: 'ER_TABLEACCESS_DENIED_ERROR' });
    // So are drift findings.
    await ds.query('UPDATE drift_findings SET status = status');
    await expect(ds.query('DELETE FROM drift_findings')).rejects.toMatchObject({ code: 'ER_TABLEACCESS_DENIED_ERROR' });
    // And the emergency-exception ledger (escalated and decided in place); a decision, once taken, stays.
    await ds.query('UPDATE emergency_exceptions SET status = status');
    await expect(ds.query('DELETE FROM emergency_exceptions')).rejects.toMatchObject({ code: 'ER_TABLEACCESS_DENIED_ERROR' });
    const excId = `EXC-${randomBytes(8).toString('hex').toUpperCase()}`;
    await ds.query(
      `INSERT INTO emergency_exceptions (id, source, ticket, step_id, action_kind, system, identity, grants, granted_at, escalate_at, deadline, on_deadline, status,
         decision, decided_by, decided_at, justification) VALUES (?, 'servicenow', 'CHG0000001', 'joiner:x', 'joiner', 'mysql-local', '{}', '[]', NOW(3), NOW(3), NOW(3), 'revoke',
         'revoking', 'revoke', '{"kind":"token","id":"1","name":"r"}', NOW(3), 'why')`,
      [excId],
    );
    await ds.query("UPDATE emergency_exceptions SET status = 'revoked', outcome = 'taken back' WHERE id = ?", [excId]);
    await expect(ds.query("UPDATE emergency_exceptions SET justification = 'rewritten' WHERE id = ?", [excId])).rejects.toMatchObject({ sqlMessage: 'a decided emergency exception keeps its decision' });
    await expect(ds.query("UPDATE emergency_exceptions SET decision = 'accept' WHERE id = ?", [excId])).rejects.toMatchObject({ sqlMessage: 'a decided emergency exception keeps its decision' });
    // So are certification items.
    await ds.query('UPDATE certification_items SET status = status');
    await expect(ds.query('DELETE FROM certification_items')).rejects.toMatchObject({ code: 'ER_TABLEACCESS_DENIED_ERROR' });
    // A decided item keeps its decision; its status and revocation change still move on.
    const certId = randomBytes(16).toString('hex');
    await ds.query(
      `INSERT INTO certification_items (id, system, name, host, identity_type, grants, trigger_type, reference, detail, reviewer, reviewer_key, due_at, on_timeout, status,
         decisions, decided_by, decided_at, justification, opened_at) VALUES (?, 'mysql-local', 'svc', '%', 'service_account', '["SELECT"]', 'mover', 'r', '', '{"kind":"role","role":"security-reviewer"}',
         'role:security-reviewer', NOW(3), 'revoke', 'open', NULL, NULL, NULL, NULL, NOW(3))`,
      [certId],
    );
    // Undecided, it is decided in place.
    await ds.query(`UPDATE certification_items SET status = 'revoking', decisions = '[{"grant":"SELECT","decision":"revoke"}]', decided_by = '{"kind":"token","id":"1","name":"r"}', decided_at = NOW(3), justification = 'why' WHERE id = ?`, [certId]);
    await ds.query("UPDATE certification_items SET change_key = 'servicenow:CHG0000001', status = 'revocation-failed', revocation_error = 'refused' WHERE id = ?", [certId]);
    const keeps = { sqlMessage: 'a decided certification item keeps its decision' };
    await expect(ds.query(`UPDATE certification_items SET decisions = '[{"grant":"SELECT","decision":"keep"}]' WHERE id = ?`, [certId])).rejects.toMatchObject(keeps);
    await expect(ds.query("UPDATE certification_items SET justification = 'rewritten' WHERE id = ?", [certId])).rejects.toMatchObject(keeps);
    await expect(ds.query('UPDATE certification_items SET decided_by = NULL WHERE id = ?', [certId])).rejects.toMatchObject(keeps);
    await expect(ds.query('UPDATE certification_items SET decided_at = NOW(3) + INTERVAL 1 DAY WHERE id = ?', [certId])).rejects.toMatchObject(keeps);
  });

  it('token-cli create prints only the token on stdout; it authenticates with its role until token-cli revoke', async () => {
    const name = uniqueName('servicenow');
    const env = { ...process.env, DATABASE_URL: TEST_ENV.databaseUrl };
    const cli = (...args: string[]) => run(process.execPath, ['--import', 'tsx', 'src/auth/token-cli.ts', ...args], { cwd: ROOT, env });
    const created = await cli('create', name, '--role', 'integration');
    const token = created.stdout.trim();
    expect(token).toMatch(/^cg_[A-Za-z0-9_-]{43}$/);
    expect(created.stderr).not.toContain(token);
    const closure = `/api/changes/servicenow/CHG9999999999/closure-check`;
    expect((await api('GET', closure, token)).status).toBe(404);
    expect((await api('GET', '/api/tokens', token)).status).toBe(403);
    const revoked = await cli('revoke', name);
    expect(revoked.stdout).toContain(`${name} revoked`);
    expect((await api('GET', closure, token)).status).toBe(401);
  });

  it('token-cli refuses an unknown role, a token without roles and a launcher name before touching the database', () => {
    expect(() => parseArgs(['create', 'x', '--role', 'root'])).toThrow(/expected --role/);
    expect(() => parseArgs(['create', 'x'])).toThrow(/at least one --role/);
    expect(() => parseArgs(['create', 'demo-operator-1', '--role', 'operator'])).toThrow(/launcher/);
    expect(parseArgs(['create', 'ci', '--role', 'operator', '--role', 'auditor'])).toEqual({ command: 'create', name: 'ci', roles: ['operator', 'auditor'] });
  });
});
