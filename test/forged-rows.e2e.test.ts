import { randomBytes } from 'node:crypto';
import axios from 'axios';
import type mysql from 'mysql2/promise';
import type { ClosureView } from '../src/change/closure';
import { GENESIS_HASH } from '../src/evidence/canonical-json';
import { BusinessRuleAbortError } from '../src/itsm/servicenow/servicenow-simulator';
import { ACTIONS_FIELD } from '../src/itsm/jira/jira-simulator';
import { GATE_PROPERTY } from '../src/itsm/jira/jira-settings';
import { asApplicationAccount, insertEvidenceRow } from './support/app-account';
import { type Stack, createAccount, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { TEST_ENV } from './support/test-env';

/**
 * What the gateway decides does not follow a row forged with the application account (SELECT and INSERT on the
 * gateway's tables): an inventory scan, closure-check, the ServiceNow and Jira close guards, the Jira gate's evidence
 * head. Real Temporal, MariaDB, the simulated ServiceNow and Jira; the readers themselves are in forged-rows.test.ts.
 */
describe('decisions do not follow rows forged through the application account', () => {
  let stack: Stack;
  beforeAll(async () => {
    // Grants on cgt_reporting are privileged: a joiner holding one waits for a change manager once authorized.
    stack = await startStack({ policy: { version: 1, people: [], privileged: [{ system: 'mysql-local', grants: ['* ON `cgt\\_reporting`.*'] }] } });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const forger = (forge: (app: mysql.Connection) => Promise<unknown>) => asApplicationAccount(stack.admin, async (app) => void (await forge(app)));

  /** A verdict as a workflow publishes one: everything verified, closure allowed; unsealed, at a version beyond any delivery. */
  const forgeAllowedVerdict = (app: mysql.Connection, ticketKey: string, ticket: string) => {
    const view: ClosureView = { ticket, allowed: true, reasons: [], ticketState: 'Completed', phase: 'implement', steps: [] };
    return app.query('INSERT INTO closure_verdicts (ticket_key, evaluated_version, allowed, body, created_at) VALUES (?, ?, 1, ?, NOW(3))', [ticketKey, 2 ** 50, JSON.stringify(view)]);
  };

  /** A verified step's row as the worker writes it, first of a chain of its own; hashed, linked, unsealed. */
  const forgeFirstRow = (app: mysql.Connection, ticketKey: string, fields: Record<string, unknown>) => {
    const at = new Date().toISOString();
    return insertEvidenceRow(app, {
      ticketKey, seq: 1, prevHash: GENESIS_HASH, recordedAt: at, system: 'mysql-local', desiredState: {}, observedState: {}, verified: true, verification: { mismatches: [] },
      actor: 'changegate-worker@forger', eventReceivedAt: at, startedAt: at, verifiedAt: at, ...fields,
    });
  };

  it('an inventory scan lists an account made behind the gateway\'s back as an orphan, whatever grant a forged row claims for it', async () => {
    const orphan = uniqueAccount('orph');
    await createAccount(stack.admin, orphan);
    try {
      await forger((app) => forgeFirstRow(app, `servicenow:${uniqueTicketNumber()}`, {
        stepId: `joiner:${randomBytes(8).toString('hex')}`, outcome: 'granted', actionKind: 'joiner', identity: { type: 'service_account', name: orphan, host: '%' },
      }));
      const res = await axios.post(`${stack.apiUrl}/api/inventory/scan`, { systems: ['mysql-local'] }, { headers: { authorization: `Bearer ${TEST_ENV.adminToken}` } });
      const entries = res.data.systems.find((s: { system: string }) => s.system === 'mysql-local').entries as Array<{ name: string; status: string }>;
      expect(entries.find((e) => e.name === orphan)).toMatchObject({ status: 'orphan' });
    } finally {
      await stack.admin.query('DROP USER IF EXISTS ?@?', [orphan, '%']);
    }
  });

  it('a forged "allowed" verdict does not make closure-check allow a ServiceNow change, and the business rule still refuses closing it', async () => {
    const account = uniqueAccount('fv');
    const number = uniqueTicketNumber();
    const key = `servicenow:${number}`;
    // Not yet authorized: the joiner waits, and the workflow publishes that.
    const { sys_id: sysId } = stack.sim.createChange({
      number, state: '-3', u_identity_actions: JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'P1D' }]),
    });
    const waits = `joiner of ${account}@% on mysql-local waits for the change to be approved and in Implement`;
    await waitFor('the published verdict', async () => (await stack.verdicts.latest('servicenow', number))?.view.reasons.includes(waits));
    await forger((app) => forgeAllowedVerdict(app, key, number));
    expect((await stack.closureCheck(number)).data).toMatchObject({ allowed: false, reasons: [waits] });
    expect(() => stack.sim.updateChange(String(sysId), { state: '3', close_code: 'successful', close_notes: 'x' })).toThrow(BusinessRuleAbortError);
  });

  it('a forged "allowed" verdict does not hide why a Jira change forced to Completed is moved back, nor make closure-check allow it', async () => {
    const account = uniqueAccount('fvj');
    const { key } = stack.jiraSim.createIssue({
      summary: 'forged verdict', [ACTIONS_FIELD]: JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' }, grants: ['SELECT ON cgt_reporting.*'], ttl: 'P1D' }]),
    });
    try {
      for (const t of ['Request authorization', 'Authorize', 'Start implementation']) expect(stack.jiraSim.transition(key, t)).toEqual({ ok: true });
      const waits = await waitFor('the published verdict', async () =>
        (await stack.verdicts.latest('jira', key))?.view.reasons.find((r) => r.startsWith(`joiner of ${account}@% on mysql-local waits for a change manager to decide`)), 30_000);
      await forger((app) => forgeAllowedVerdict(app, `jira:${key}`, key));

      expect(stack.jiraSim.transition(key, 'Complete', { force: true })).toEqual({ ok: true });
      await waitFor('the issue back in Implementing', () => stack.jiraSim.issue(key)?.status === 'Implementing' && stack.jiraSim.commentTexts(key).some((t) => t.includes('[changegate reverted:')));
      const comment = stack.jiraSim.commentTexts(key).find((t) => t.includes('[changegate reverted:'))!;
      expect(comment).toContain(`- the issue property ${GATE_PROPERTY} does not say passed`);
      // The reasons the guard quotes are the workflow's own, not the forged verdict's (which has none).
      expect(comment).toContain(`- ${waits}`);
      const check = await axios.get(`${stack.apiUrl}/api/changes/jira/${key}/closure-check`, { headers: { authorization: `Bearer ${TEST_ENV.adminToken}` } });
      expect(check.data.allowed).toBe(false);
      expect(check.data.reasons).toContain(waits);
    } finally {
      await stack.admin.query('DROP USER IF EXISTS ?@?', [account, '%']);
    }
  });

  it("the Jira gate property names the head of the evidence the gateway wrote, not a forged row's", async () => {
    const key = `CGF-${randomBytes(3).toString('hex')}`;
    const at = new Date().toISOString();
    const head = await stack.evidence.append({
      ticketKey: `jira:${key}`, stepId: 'leaver:a', outcome: 'revoked', actionKind: 'leaver', system: 'mysql-local', identity: { type: 'service_account', name: 'a', host: '%' },
      desiredState: { exists: false }, observedState: { exists: false }, verified: true, verification: { mismatches: [] }, actor: 'changegate-worker@test', eventReceivedAt: at, startedAt: at, verifiedAt: at,
    });
    const { hash, ...content } = head;
    await forger((app) => insertEvidenceRow(app, { ...content, seq: 2, prevHash: hash, stepId: 'leaver:b', recordedAt: new Date().toISOString() }));
    const gate = await stack.jira.gateProperty({ source: 'jira', key, recordId: '1' }, { value: 'verified', digest: 'd' });
    expect(gate.evidenceSha256).toBe(head.hash);
  });
});
