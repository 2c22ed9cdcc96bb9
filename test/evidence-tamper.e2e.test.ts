import { createHash } from 'node:crypto';
import axios from 'axios';
import mysql from 'mysql2/promise';
import { jcs } from '../src/evidence/canonical-json';
import { BusinessRuleAbortError } from '../src/itsm/servicenow/servicenow-simulator';
import { asApplicationAccount, insertEvidenceRow } from './support/app-account';
import { type Stack, createAccount, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { TEST_ENV } from './support/test-env';

/**
 * Evidence edited behind the gateway's back: a row altered or deleted by the database's administrator (who can drop
 * the append-only triggers), or a row forged by someone holding the application account (which may INSERT). Each is
 * reported with the row where the chain breaks, and closure-check refuses a ticket whose chain is broken, whatever
 * its steps say. Real Temporal, MariaDB and the ServiceNow simulator.
 */
describe('a tampered evidence chain is reported at its row, and closure is refused', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack.stop();
  });

  const T = `\`${TEST_ENV.database}\`.evidence_records`;

  /** A ticket whose leavers (one per account) are verified and closable: its chain is intact to begin with. */
  async function closableTicket(accounts = 1): Promise<string> {
    const names = Array.from({ length: accounts }, () => uniqueAccount('tmp'));
    for (const name of names) await createAccount(stack.admin, name);
    const number = uniqueTicketNumber();
    stack.sim.createChange({
      number, state: '-1',
      u_identity_actions: JSON.stringify(names.map((name) => ({ kind: 'leaver', system: 'mysql-local', identity: { type: 'service_account', name, host: '%' } }))),
    });
    await waitFor('closure allowed', async () => (await stack.closureCheck(number)).data.allowed === true);
    expect(await stack.evidence.verifyChain(`servicenow:${number}`)).toEqual({ valid: true, rows: accounts });
    return number;
  }

  /** Runs `edit` as the administrator with the append-only triggers dropped, and puts them back whatever happens. */
  async function asAdministrator(edit: () => Promise<unknown>): Promise<void> {
    await stack.admin.query(`DROP TRIGGER IF EXISTS \`${TEST_ENV.database}\`.evidence_records_no_update`);
    await stack.admin.query(`DROP TRIGGER IF EXISTS \`${TEST_ENV.database}\`.evidence_records_no_delete`);
    try {
      await edit();
    } finally {
      await stack.admin.query(`CREATE TRIGGER \`${TEST_ENV.database}\`.evidence_records_no_update BEFORE UPDATE ON ${T} FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'evidence_records is append-only'`);
      await stack.admin.query(`CREATE TRIGGER \`${TEST_ENV.database}\`.evidence_records_no_delete BEFORE DELETE ON ${T} FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'evidence_records is append-only'`);
    }
  }

  async function refused(number: string, reason: string): Promise<void> {
    const r = await stack.closureCheck(number);
    expect(r.data.allowed).toBe(false);
    expect(r.data.reasons).toContain(reason);
    expect(r.data.evidence.chainValid).toBe(false);
  }

  it('a row whose recorded content is altered breaks the chain at that row', async () => {
    const number = await closableTicket();
    await asAdministrator(() => stack.admin.query(`UPDATE ${T} SET canonical = REPLACE(canonical, '"verified":true', '"verified":false') WHERE ticket_key = ? AND seq = 1`, [`servicenow:${number}`]));
    expect(await stack.evidence.verifyChain(`servicenow:${number}`)).toEqual({ valid: false, rows: 1, brokenAt: { seq: 1, reason: 'hash does not match the canonical content' } });
    await refused(number, 'evidence chain is broken at row 1: hash does not match the canonical content');
  });

  it('a column edited without its hashed content is reported as differing from what was hashed', async () => {
    const number = await closableTicket();
    await asAdministrator(() => stack.admin.query(`UPDATE ${T} SET verified = 0 WHERE ticket_key = ? AND seq = 1`, [`servicenow:${number}`]));
    await refused(number, 'evidence chain is broken at row 1: columns differ from the hashed content');
  });

  it('a deleted row leaves a gap at the row after it', async () => {
    const number = await closableTicket(2);
    await asAdministrator(() => stack.admin.query(`DELETE FROM ${T} WHERE ticket_key = ? AND seq = 1`, [`servicenow:${number}`]));
    expect(await stack.evidence.verifyChain(`servicenow:${number}`)).toEqual({ valid: false, rows: 1, brokenAt: { seq: 2, reason: 'sequence gap' } });
    await refused(number, 'evidence chain is broken at row 2: sequence gap');
  });

  it('a forged row chained correctly with the app account is reported at that row and closure refused', async () => {
    const number = await closableTicket();
    const key = `servicenow:${number}`;
    const [genuine] = await stack.evidence.list(key);
    // The forger: the head of the chain read, the next row's content written as the gateway writes it (a verified
    // revoke of another account), hashed with the public algorithm (RFC 8785, SHA-256) and linked to the head.
    const victim = uniqueAccount('tmp');
    await asApplicationAccount(stack.admin, async (app) => {
      const [[head]] = await app.query<mysql.RowDataPacket[]>('SELECT * FROM evidence_records WHERE ticket_key = ? ORDER BY seq DESC LIMIT 1', [key]);
      const recordedAt = new Date().toISOString();
      await insertEvidenceRow(app, {
        ...JSON.parse(String(head!.canonical)),
        stepId: `leaver:${victim}`, identity: { type: 'service_account', name: victim, host: '%' }, outcome: 'revoked', verified: true,
        seq: Number(head!.seq) + 1, prevHash: String(head!.hash), recordedAt, verifiedAt: recordedAt,
      });
    });
    // The forgery is well formed: it reads as a verified revoke linked to the genuine row...
    const { rows } = await stack.evidence.listVerified(key);
    expect(rows.map((r) => [r.seq, r.stepId, r.outcome, r.verified])).toEqual([[1, genuine!.stepId, 'revoked', true], [2, `leaver:${victim}`, 'revoked', true]]);
    expect(rows[1]!.prevHash).toBe(genuine!.hash);
    // ...and passes every unkeyed check (sequence, link, hash, columns come first): only the seal reports it.
    expect(await stack.evidence.verifyChain(key)).toEqual({ valid: false, rows: 2, brokenAt: { seq: 2, reason: 'no seal: the gateway did not write this row' } });
    await refused(number, 'evidence chain is broken at row 2: no seal: the gateway did not write this row');
  });

  it('a forged row carrying a genuine seal copied from another row is reported at that row, and the signed export says so', async () => {
    const number = await closableTicket();
    const key = `servicenow:${number}`;
    await asApplicationAccount(stack.admin, async (app) => {
      const [[head]] = await app.query<mysql.RowDataPacket[]>('SELECT * FROM evidence_records WHERE ticket_key = ? ORDER BY seq DESC LIMIT 1', [key]);
      expect(String(head!.seal)).toMatch(/^hmac-sha256:written:[0-9a-f]{64}$/);
      const body = { ...JSON.parse(String(head!.canonical)), seq: 2, prevHash: String(head!.hash), stepId: 'leaver:forged', recordedAt: new Date().toISOString() } as Record<string, unknown>;
      const canonical = jcs(body);
      const hash = createHash('sha256').update(canonical, 'utf8').digest('hex');
      // The head's own seal, copied: it is over the head's hash, not this one.
      await app.query(
        `INSERT INTO evidence_records (ticket_key, seq, step_id, outcome, action_kind, system, identity, desired_state, observed_state, verified, verification, actor,
           event_received_at, started_at, verified_at, recorded_at, prev_hash, hash, canonical, seal)
         SELECT ticket_key, 2, 'leaver:forged', outcome, action_kind, system, identity, desired_state, observed_state, verified, verification, actor,
           event_received_at, started_at, verified_at, recorded_at, hash, ?, ?, seal FROM evidence_records WHERE ticket_key = ? AND seq = 1`,
        [hash, canonical, key],
      );
    });
    expect(await stack.evidence.verifyChain(key)).toEqual({ valid: false, rows: 2, brokenAt: { seq: 2, reason: 'seal does not verify: the gateway did not write this row with its key' } });
    await refused(number, 'evidence chain is broken at row 2: seal does not verify: the gateway did not write this row with its key');
    // The export states the gateway's check, signed: an offline auditor sees the break without the seal key.
    const res = await axios.get(`${stack.apiUrl}/api/changes/servicenow/${number}/evidence/export`, { headers: { authorization: `Bearer ${TEST_ENV.adminToken}` } });
    expect(res.data.chain).toEqual({ valid: false, rows: 2, brokenAt: { seq: 2, reason: 'seal does not verify: the gateway did not write this row with its key' } });
  });

  it('a row forged through the application account (which may INSERT, never UPDATE) with a made-up hash is reported at its row', async () => {
    const number = await closableTicket();
    await asApplicationAccount(stack.admin, async (app) => {
      const [[last]] = await app.query<mysql.RowDataPacket[]>('SELECT * FROM evidence_records WHERE ticket_key = ? ORDER BY seq DESC LIMIT 1', [`servicenow:${number}`]);
      // A second "revoked" row, linked to the last one, whose hash was made up: its content is not what was hashed.
      const body = { ...JSON.parse(String(last!.canonical)), seq: 2, prevHash: last!.hash, stepId: 'leaver:forged', outcome: 'revoked' };
      await app.query(
        `INSERT INTO evidence_records (ticket_key, seq, step_id, outcome, action_kind, system, identity, desired_state, observed_state, verified, verification, actor,
           event_received_at, started_at, verified_at, recorded_at, prev_hash, hash, canonical)
         SELECT ticket_key, 2, 'leaver:forged', 'revoked', action_kind, system, identity, desired_state, observed_state, 1, verification, actor,
           event_received_at, started_at, verified_at, recorded_at, hash, ?, ? FROM evidence_records WHERE ticket_key = ? AND seq = 1`,
        ['f'.repeat(64), JSON.stringify(body), `servicenow:${number}`],
      );
      // The account cannot cover it up: rows are never updated or deleted by it.
      await expect(app.query('UPDATE evidence_records SET hash = hash WHERE ticket_key = ?', [`servicenow:${number}`])).rejects.toMatchObject({ code: 'ER_TABLEACCESS_DENIED_ERROR' });
    });
    expect(await stack.evidence.verifyChain(`servicenow:${number}`)).toEqual({ valid: false, rows: 2, brokenAt: { seq: 2, reason: 'hash does not match the canonical content' } });
    await refused(number, 'evidence chain is broken at row 2: hash does not match the canonical content');
  });
  it('a chain altered before the gate write lands: the ServiceNow gate is not set to verified, a note says the chain is broken, and the business rule refuses closing', async () => {
    const name = uniqueAccount('tmp');
    await createAccount(stack.admin, name);
    const number = uniqueTicketNumber();
    const key = `servicenow:${number}`;
    // ServiceNow answers 503 to every API call: the step runs and records its evidence, and its write-back waits.
    stack.sim.faults.serverError({ status: 503, retryAfterSeconds: 1 });
    let sysId: string;
    try {
      sysId = stack.sim.createChange({
        number, state: '-1', u_identity_actions: JSON.stringify([{ kind: 'leaver', system: 'mysql-local', identity: { type: 'service_account', name, host: '%' } }]),
      }).sys_id as string;
      await waitFor('the step verified and the passing gate held in the outbox', async () => {
        const s = await stack.workflows.status('servicenow', number);
        return s?.steps[0]?.status === 'verified' && s.outbox?.waiting && s.outbox.pending.some((b) => b.gate?.value === 'verified') ? s : null;
      });
      expect(await stack.evidence.verifyChain(key)).toEqual({ valid: true, rows: 1 });
      expect(stack.sim.journal(sysId, 'work_notes')).toEqual([]);
      // The evidence is altered while the write is held: the steps still say verified, the chain does not.
      await asAdministrator(() => stack.admin.query(`UPDATE ${T} SET canonical = REPLACE(canonical, '"verified":true', '"verified":false') WHERE ticket_key = ? AND seq = 1`, [key]));
    } finally {
      await stack.sim.faults.restore();
    }
    const reason = 'evidence chain is broken at row 1: hash does not match the canonical content';
    const state = await waitFor('the held write-back to be sent', async () => {
      const s = await stack.workflows.status('servicenow', number);
      return s && s.outbox?.pending.length === 0 && !s.outbox.waiting ? s : null;
    }, 30_000);
    expect(state.steps[0]?.status).toBe('verified');
    expect(stack.sim.getChange(sysId)?.u_identity_cleanup).toBe('pending');
    // The workflow heard the passing gate refused, with the reason: its own closure view blocks closure too.
    expect(state.writeBackErrors).toContain(reason);
    const notes = stack.sim.journal(sysId, 'work_notes').map((n) => n.value).join('\n');
    expect(notes).toContain(reason);
    expect(notes.match(/\[changegate chain-broken:/g)).toHaveLength(1);
    expect(notes).not.toMatch(/closure allowed/);
    // The rule installed on the instance reads the gate field: closing the change is refused.
    expect(() => stack.sim.updateChange(sysId, { state: '3', close_code: 'successful', close_notes: 'x' })).toThrow(BusinessRuleAbortError);
    await refused(number, reason);
  }, 60_000);
});
