import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import type { DataSource } from 'typeorm';
import type { ClosureView } from '../src/change/closure';
import { ClosureVerdictStore } from '../src/closure/verdict-store';
import { GENESIS_HASH } from '../src/evidence/canonical-json';
import { SEAL_INVALID, SEAL_MISSING, evidenceSealer } from '../src/evidence/evidence-seal';
import { type EvidenceInput, EvidenceStore, ForgedEvidenceInTheWay, identityKey } from '../src/evidence/evidence-store';
import { migrateDatabase, openDatabase } from '../src/persistence/data-source';
import { asApplicationAccount, insertEvidenceRow } from './support/app-account';
import { collectingLogger } from './support/collecting-logger';
import { TEST_ENV } from './support/test-env';

/**
 * Each reader of the evidence and of the closure verdicts, on a real MariaDB database of this test's own, facing rows a
 * forger inserted with the application account (SELECT and INSERT; ALTER and INDEX where said, which it held before
 * the migrations got an account of their own): well chained and hashed with the public algorithm, but not sealed with the gateway's key. A reader passes
 * such a row over and logs it, or refuses where passing over would be wrong. Decisions built on these readers (an
 * inventory scan, closure-check, the ServiceNow and Jira close guards, a pipeline run's mint) are in
 * forged-rows.e2e.test.ts and deploy.e2e.test.ts.
 */
describe('rows the application account forges are not read as the gateway\'s', () => {
  const database = `${TEST_ENV.database}_forged`;
  const sealer = evidenceSealer(TEST_ENV.evidenceSealKey);
  const logs: string[] = [];
  let admin: mysql.Connection;
  let ds: DataSource;
  let evidence: EvidenceStore;
  let verdicts: ClosureVerdictStore;

  beforeAll(async () => {
    admin = await mysql.createConnection({ uri: TEST_ENV.adminUrl });
    await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
    await migrateDatabase(`mysql://root@127.0.0.1:3306/${database}`, { evidenceSealer: sealer });
    ds = await openDatabase(`mysql://root@127.0.0.1:3306/${database}`);
    evidence = new EvidenceStore(ds, sealer, collectingLogger(logs));
    verdicts = new ClosureVerdictStore(ds, sealer, collectingLogger(logs));
  });
  afterAll(async () => {
    await ds?.destroy();
    await admin?.query(`DROP DATABASE IF EXISTS \`${database}\``);
    await admin?.end();
  });

  const forger = (forge: (app: mysql.Connection) => Promise<void>, privileges?: string[]) => asApplicationAccount(admin, forge, { database, ...(privileges ? { privileges } : {}) });
  const ticket = () => `servicenow:CHG${randomBytes(4).toString('hex')}`;
  const name = () => `svc_${randomBytes(4).toString('hex')}`;

  /** A step's record as the worker writes it. */
  function record(ticketKey: string, stepId: string, outcome: string, fields: Partial<EvidenceInput> = {}): EvidenceInput {
    const at = new Date().toISOString();
    return {
      ticketKey, stepId, outcome, actionKind: 'leaver', system: 'mysql-local', identity: { type: 'service_account', name: 'svc', host: '%' }, desiredState: {},
      observedState: {}, verified: true, verification: { mismatches: [] }, actor: 'changegate-worker@test', eventReceivedAt: at, startedAt: at, verifiedAt: at, ...fields,
    };
  }

  /** The forger's row: content as the gateway writes it, linked to the ticket's head (or first), hashed, unsealed. */
  async function forgeNext(app: mysql.Connection, input: EvidenceInput, seal: string | null = null): Promise<string> {
    const [[head]] = await app.query<mysql.RowDataPacket[]>('SELECT seq, hash FROM evidence_records WHERE ticket_key = ? ORDER BY seq DESC LIMIT 1', [input.ticketKey]);
    return insertEvidenceRow(app, { ...input, seq: head ? Number(head.seq) + 1 : 1, prevHash: head ? String(head.hash) : GENESIS_HASH, recordedAt: new Date().toISOString() }, seal);
  }

  const logged = (reason: string, fields: Record<string, unknown>) => logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.reason === reason && Object.entries(fields).every(([k, v]) => l[k] === v));

  it("a ticket's rows, as activities and the ticket's gate read them (deploy claims and mints, certification decisions, the Jira gate's evidence head), leave out forged rows and log each", async () => {
    const key = ticket();
    const genuine = await evidence.append(record(key, 'leaver:a', 'revoked'));
    await forger(async (app) => {
      await forgeNext(app, record(key, 'deploy:x:run:1', 'claimed'));
      // The genuine row's seal, copied: it is over the genuine row's hash, not this one's.
      const [[first]] = await app.query<mysql.RowDataPacket[]>('SELECT seal FROM evidence_records WHERE ticket_key = ? AND seq = 1', [key]);
      await forgeNext(app, record(key, 'deploy:x:run:1', 'minted', { observedState: { fingerprint: 'sha256:0123456789abcdef0123456789abcdef' } }), String(first!.seal));
    });
    // The gateway goes on writing its own rows after them.
    const later = await evidence.append(record(key, 'leaver:b', 'revoked'));
    expect((await evidence.list(key)).map((r) => [r.seq, r.stepId, r.outcome, r.hash])).toEqual([[1, 'leaver:a', 'revoked', genuine.hash], [4, 'leaver:b', 'revoked', later.hash]]);
    // The chain check still reports the first of them.
    expect(await evidence.verifyChain(key)).toEqual({ valid: false, rows: 4, brokenAt: { seq: 2, reason: SEAL_MISSING } });
    expect(logged(SEAL_MISSING, { ticketKey: key, seq: 2, msg: 'evidence row left out: the gateway did not write it' })).not.toEqual([]);
    expect(logged(SEAL_INVALID, { ticketKey: key, seq: 3 })).not.toEqual([]);
    // The log names the row and why, never a seal.
    expect(logs.join('\n')).not.toMatch(/hmac-sha256:/);
  });

  it("a retried append that finds a forged row in its record's place refuses it, instead of answering with it as the gateway's", async () => {
    const key = ticket();
    await forger((app) => forgeNext(app, record(key, 'joiner:z', 'granted')).then(() => undefined));
    const refused = evidence.append(record(key, 'joiner:z', 'granted'));
    await expect(refused).rejects.toBeInstanceOf(ForgedEvidenceInTheWay);
    await expect(refused).rejects.toThrow(`evidence for ${key} cannot be recorded: row 1, which holds its place, is not the gateway's (${SEAL_MISSING})`);
    expect(logged(SEAL_MISSING, { ticketKey: key, seq: 1, level: 'error' })).not.toEqual([]);
    // Nothing was written in its stead.
    expect((await evidence.verifyChain(key)).rows).toBe(1);
  });

  it('the delivery a leaked fingerprint names is the newest one the gateway recorded, never a forged one', async () => {
    const fingerprint = `sha256:${randomBytes(16).toString('hex')}`;
    const alone = `sha256:${randomBytes(16).toString('hex')}`;
    const owner = name();
    const delivered = { outcome: 'rotated', actionKind: 'rotate', identity: { type: 'service_account', name: owner, host: '%' }, desiredState: { deliveredTo: { system: 'vault-local', path: `apps/${owner}` } } };
    await evidence.append(record(ticket(), 'rotate:a', 'rotated', { ...delivered, observedState: { fingerprint } }));
    await forger(async (app) => {
      // Newer, and naming another identity as the one the value belongs to: a leak report would rotate that one.
      await forgeNext(app, record(ticket(), 'rotate:b', 'rotated', { ...delivered, identity: { type: 'service_account', name: 'victim', host: '%' }, observedState: { fingerprint } }));
      await forgeNext(app, record(ticket(), 'rotate:c', 'minted', { ...delivered, observedState: { partFingerprints: { secretAccessKey: alone } } }));
    });
    expect((await evidence.deliveryByFingerprint(fingerprint))?.identity).toEqual({ type: 'service_account', name: owner, host: '%' });
    expect(await evidence.deliveryByFingerprint(alone)).toBeNull();
  });

  it("the inventory's latest outcome per identity counts no forged grant, nor a copy of a sealed grant set after the revoke that followed it", async () => {
    const granted = name();
    const forged = name();
    const identity = { type: 'service_account', name: granted, host: '%' };
    const key = ticket();
    await evidence.append(record(key, 'joiner:g', 'granted', { actionKind: 'joiner', identity }));
    await evidence.append(record(key, 'leaver:g', 'revoked', { identity }));
    await forger(async (app) => {
      await forgeNext(app, record(ticket(), 'joiner:f', 'granted', { actionKind: 'joiner', identity: { type: 'service_account', name: forged, host: '%' } }));
      // With ALTER and INDEX (the account's until the migrations got their own): with the unique keys gone, the sealed
      // grant is inserted again, verbatim but for its recorded_at column, which now says it came after the revoke.
      await app.query('ALTER TABLE evidence_records DROP INDEX uq_evidence_ticket_seq, DROP INDEX uq_evidence_ticket_step');
      await app.query(
        `INSERT INTO evidence_records (ticket_key, seq, step_id, outcome, action_kind, system, identity, desired_state, observed_state, verified, verification, actor,
           event_received_at, started_at, verified_at, recorded_at, prev_hash, hash, canonical, seal)
         SELECT ticket_key, seq, step_id, outcome, action_kind, system, identity, desired_state, observed_state, verified, verification, actor,
           event_received_at, started_at, verified_at, NOW(3) + INTERVAL 1 DAY, prev_hash, hash, canonical, seal FROM evidence_records WHERE ticket_key = ? AND seq = 1`,
        [key],
      );
    }, ['ALTER', 'INDEX']);
    const latest = await evidence.latestOutcomes();
    expect(latest.get(identityKey('mysql-local', granted))).toMatchObject({ outcome: 'revoked', ticketKey: key });
    expect(latest.has(identityKey('mysql-local', forged))).toBe(false);
    expect(logged('a copy of an earlier row', { ticketKey: key, seq: 1 })).not.toEqual([]);
  });

  describe('closure verdicts', () => {
    const view = (allowed: boolean, reasons: string[]): ClosureView => ({ ticket: 'CHG', allowed, reasons, ticketState: '-1', phase: 'implement', steps: [] });

    /** The forger's verdict row; `seal` copied from a genuine one, or none. */
    const forgeVerdict = (app: mysql.Connection, ticketKey: string, version: number, v: ClosureView, seal: string | null = null) =>
      app.query('INSERT INTO closure_verdicts (ticket_key, evaluated_version, allowed, body, created_at, seal) VALUES (?, ?, ?, ?, NOW(3), ?)', [ticketKey, version, v.allowed ? 1 : 0, JSON.stringify(v), seal]);

    it('the newest verdict the gateway published answers: a newer forged one, one under a copied seal, and a copy of an older sealed one are passed over and logged', async () => {
      const number = `CHG${randomBytes(4).toString('hex')}`;
      const key = `servicenow:${number}`;
      await verdicts.publish(key, 3, view(true, []));
      await verdicts.publish(key, 3, view(false, ['leaver of svc on mysql-local failed: refused']));
      expect(await verdicts.latest('servicenow', number)).toEqual({ view: view(false, ['leaver of svc on mysql-local failed: refused']), evaluatedVersion: 3, newestDelivery: -1 });
      await forger(async (app) => {
        const [[first, second]] = await app.query<mysql.RowDataPacket[]>('SELECT seal FROM closure_verdicts WHERE ticket_key = ? ORDER BY id', [key]);
        // The earlier verdict put back on top: the same row again, seal and all.
        await app.query('INSERT INTO closure_verdicts (ticket_key, evaluated_version, allowed, body, created_at, seal) SELECT ticket_key, evaluated_version, allowed, body, created_at, seal FROM closure_verdicts WHERE seal = ?', [first!.seal]);
        await forgeVerdict(app, key, 9, view(true, []), String(second!.seal));
        await forgeVerdict(app, key, 9, view(true, []));
      });
      expect(await verdicts.latest('servicenow', number)).toEqual({ view: view(false, ['leaver of svc on mysql-local failed: refused']), evaluatedVersion: 3, newestDelivery: -1 });
      const passed = logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.ticketKey === key && l.msg === 'closure verdict passed over: the gateway did not publish it');
      expect(passed.map((l) => l.reason)).toEqual([SEAL_MISSING, SEAL_INVALID, 'a copy of an earlier verdict']);
    });

    it('a ticket whose verdicts are all forged (or published before sealing) has none', async () => {
      const number = `CHG${randomBytes(4).toString('hex')}`;
      await forger((app) => forgeVerdict(app, `servicenow:${number}`, 1, view(true, [])).then(() => undefined));
      expect(await verdicts.latest('servicenow', number)).toBeNull();
    });
  });
});
