import { randomBytes } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { evidenceSealer } from '../src/evidence/evidence-seal';
import { type EvidenceInput, EvidenceStore } from '../src/evidence/evidence-store';
import { openDatabase } from '../src/persistence/data-source';
import { TEST_ENV } from './support/test-env';

/** The fields every row had before principals existed, in the order canonical JSON sorts them. */
const PRE_PRINCIPAL_KEYS = [
  'actionKind', 'actor', 'desiredState', 'eventReceivedAt', 'identity', 'observedState', 'outcome', 'prevHash',
  'recordedAt', 'seq', 'startedAt', 'stepId', 'system', 'ticketKey', 'verification', 'verified', 'verifiedAt',
];

describe('evidence: the principal is a new field of new rows only', () => {
  let ds: DataSource;
  beforeAll(async () => {
    ds = await openDatabase(TEST_ENV.databaseUrl);
  });
  afterAll(async () => {
    await ds.destroy();
  });

  const row = (ticketKey: string, stepId: string): EvidenceInput => ({
    ticketKey, stepId, outcome: 'revoked', actionKind: 'leaver', system: 'mysql-local',
    identity: { type: 'service_account', name: 'svc_x', host: '%' }, desiredState: { exists: false }, observedState: { exists: false },
    verified: true, verification: { mismatches: [] }, actor: 'changegate-worker@test',
    eventReceivedAt: new Date().toISOString(), startedAt: new Date().toISOString(), verifiedAt: new Date().toISOString(),
  });

  it('a row without a principal hashes exactly the fields rows had before, and a chain mixing both kinds verifies', async () => {
    const evidence = new EvidenceStore(ds, evidenceSealer(TEST_ENV.evidenceSealKey));
    const ticketKey = `servicenow:CHG${randomBytes(5).toString('hex')}`;
    await evidence.append(row(ticketKey, 'step-1'));
    await evidence.append({ ...row(ticketKey, 'step-2'), principal: { kind: 'person', id: 'u-1', name: 'Pat Example' } });
    const [old, next] = await ds.query('SELECT canonical FROM evidence_records WHERE ticket_key = ? ORDER BY seq', [ticketKey]);
    expect(Object.keys(JSON.parse(old.canonical))).toEqual(PRE_PRINCIPAL_KEYS);
    expect(JSON.parse(next.canonical).principal).toEqual({ kind: 'person', id: 'u-1', name: 'Pat Example' });
    expect(await evidence.verifyChain(ticketKey)).toEqual({ valid: true, rows: 2 });
    expect((await evidence.list(ticketKey)).map((r) => r.principal)).toEqual([undefined, { kind: 'person', id: 'u-1', name: 'Pat Example' }]);
  });

  it('appending a step already recorded (a retried activity) returns the recorded row, with or without work alongside, and adds nothing', async () => {
    const evidence = new EvidenceStore(ds, evidenceSealer(TEST_ENV.evidenceSealKey));
    const ticketKey = `servicenow:CHG${randomBytes(5).toString('hex')}`;
    const first = await evidence.append(row(ticketKey, 'step-1'));
    let alongside = 0;
    const again = await evidence.append({ ...row(ticketKey, 'step-1'), startedAt: new Date(Date.now() + 1000).toISOString() }, async () => {
      alongside++;
    });
    expect(again).toMatchObject({ seq: first.seq, hash: first.hash });
    await evidence.append(row(ticketKey, 'step-2'));
    expect((await evidence.list(ticketKey)).map((r) => [r.stepId, r.seq])).toEqual([['step-1', 1], ['step-2', 2]]);
    expect(await evidence.verifyChain(ticketKey)).toEqual({ valid: true, rows: 2 });
    // The work alongside ran in the transaction the unique index rolled back: it committed nothing.
    expect(alongside).toBe(1);
  });
});
