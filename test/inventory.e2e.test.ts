import axios from 'axios';
import { createAccount, type Stack, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { TEST_ENV } from './support/test-env';

describe('inventory scan: discovery on the worker, orphans set against the evidence', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack.stop();
  });

  const scan = (body: unknown, token: string | null = TEST_ENV.adminToken) =>
    axios.post(`${stack.apiUrl}/api/inventory/scan`, body, { headers: token === null ? {} : { authorization: `Bearer ${token}` }, validateStatus: () => true });

  it('reports an account granted through a change as managed, one made behind its back as an orphan, and its own as protected', async () => {
    const granted = uniqueAccount('inv');
    const orphan = uniqueAccount('orph');
    const number = uniqueTicketNumber();
    stack.sim.createChange({
      number, state: '-1', approval: 'approved',
      u_identity_actions: JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: granted, host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'PT1H' }]),
    });
    await waitFor('granted evidence', async () => (await stack.evidence.list(`servicenow:${number}`)).some((r) => r.outcome === 'granted' && r.verified));
    await createAccount(stack.admin, orphan);
    try {
      const res = await scan({ systems: ['mysql-local'] });
      expect(res.status).toBe(200);
      const mysqlReport = res.data.systems.find((s: { system: string }) => s.system === 'mysql-local');
      const entry = (name: string) => mysqlReport.entries.find((e: { name: string }) => e.name === name);
      expect(entry(granted)).toMatchObject({ status: 'managed', ticketKey: `servicenow:${number}` });
      expect(entry(orphan)).toMatchObject({ status: 'orphan' });
      // The connector's own account (not in protectedAccounts: the connector protects itself) and a listed one.
      expect(entry(TEST_ENV.connectorUser)).toMatchObject({ status: 'protected' });
      expect(entry('root')).toMatchObject({ status: 'protected' });
      expect(mysqlReport.orphans).toBeGreaterThanOrEqual(1);
      expect(res.data.orphans).toBe(mysqlReport.orphans);
      expect(JSON.stringify(res.data)).not.toMatch(/password|secret|IDENTIFIED/i);
    } finally {
      await stack.admin.query('DROP USER IF EXISTS ?@?, ?@?', [orphan, '%', granted, '%']);
    }
  });

  it('records the operator token that ran a scan as the principal of its evidence row, which an auditor can read back', async () => {
    const operator = await stack.tokenFor('operator');
    const auditor = await stack.tokenFor('auditor');
    const res = await scan({ systems: ['mysql-local'] }, operator.token);
    expect(res.status).toBe(200);
    const scanId = res.data.scanId as string;
    const rows = await stack.evidence.list(`inventory:${scanId}`);
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    const id = (await stack.tokens.authenticate(operator.token))?.actor.id;
    expect(row).toMatchObject({
      stepId: 'scan:mysql-local',
      outcome: 'scanned',
      actionKind: 'inventory-scan',
      system: 'mysql-local',
      verified: false,
      principal: { kind: 'token', id, name: operator.name },
      observedState: { orphans: expect.any(Array), discovered: expect.any(Number) },
    });
    expect(row.actor).toMatch(/^changegate-worker@/);
    // The principal is part of the hashed content, and no credential is.
    expect(JSON.stringify(rows)).not.toContain(operator.token);
    expect(await stack.evidence.verifyChain(`inventory:${scanId}`)).toEqual({ valid: true, rows: 1 });

    const read = await axios.get(`${stack.apiUrl}/api/inventory/scans/${scanId}`, { headers: { authorization: `Bearer ${auditor.token}` }, validateStatus: () => true });
    expect(read.status).toBe(200);
    expect(read.data).toMatchObject({ scanId, chain: { valid: true }, rows: [{ principal: { kind: 'token', name: operator.name } }] });
  });

  it('records CHANGEGATE_ADMIN_TOKEN as the operator token named admin', async () => {
    const res = await scan({ systems: ['mysql-local'] });
    expect(res.status).toBe(200);
    const rows = await stack.evidence.list(`inventory:${res.data.scanId}`);
    expect(rows.map((r) => r.principal)).toEqual([{ kind: 'token', id: 'CHANGEGATE_ADMIN_TOKEN', name: 'admin' }]);
  });

  it('refuses an unknown system with its path, a malformed body with 400, and a missing or wrong token with 401', async () => {
    const unknown = await scan({ systems: ['mysql-local', 'nope'] });
    expect(unknown.status).toBe(400);
    expect(unknown.data.error.issues).toEqual([{ path: 'systems[1]', message: expect.stringContaining("unknown system 'nope'") }]);
    const bad = await scan({ systems: 'mysql-local' });
    expect(bad.status).toBe(400);
    expect(bad.data.error.issues[0].path).toBe('systems');
    const missing = await scan({ systems: ['mysql-local'] }, null);
    expect(missing.status).toBe(401);
    expect(missing.data.error).toMatchObject({ code: 'UNAUTHORIZED', message: 'a bearer token is required' });
    expect((await scan({ systems: ['mysql-local'] }, 'wrong-token')).status).toBe(401);
  });
});
