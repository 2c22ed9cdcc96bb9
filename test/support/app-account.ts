import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { jcs, sha256Hex } from '../../src/evidence/canonical-json';
import { TEST_ENV } from './test-env';

/**
 * Runs `forge` on a MariaDB connection that holds what the application account holds on the evidence and the
 * closure verdicts (SELECT, INSERT: deploy/mysql-init/01-users.sql; `privileges` adds more, such as the ALTER and
 * INDEX it held before the migrations got an account of their own), on the test database or `database`, as a
 * throwaway user dropped afterwards.
 */
export async function asApplicationAccount(
  admin: mysql.Connection,
  forge: (app: mysql.Connection) => Promise<void>,
  opts: { database?: string; privileges?: string[] } = {},
): Promise<void> {
  const database = opts.database ?? TEST_ENV.database;
  const user = `cg_forge_${randomBytes(4).toString('hex')}`;
  const password = randomBytes(12).toString('hex');
  await admin.query('CREATE USER ?@? IDENTIFIED BY ?', [user, '127.0.0.1', password]);
  await admin.query(`GRANT ${['SELECT', 'INSERT', ...(opts.privileges ?? [])].join(', ')} ON \`${database}\`.* TO ?@?`, [user, '127.0.0.1']);
  const app = await mysql.createConnection({ host: '127.0.0.1', user, password, database });
  try {
    await forge(app);
  } finally {
    await app.end();
    await admin.query('DROP USER IF EXISTS ?@?', [user, '127.0.0.1']);
  }
}

/**
 * Inserts an evidence row as the gateway would write one with this content (`body`: the record with its ticketKey,
 * seq, prevHash and recordedAt): its canonical text hashed with the public algorithm (RFC 8785, SHA-256), and the
 * seal given, if any (a forger has no valid one). Returns the row's hash.
 */
export async function insertEvidenceRow(app: mysql.Connection, body: Record<string, unknown>, seal: string | null = null): Promise<string> {
  const canonical = jcs(body);
  const hash = sha256Hex(canonical);
  const at = (field: string) => (body[field] ? new Date(String(body[field])) : null);
  await app.query(
    `INSERT INTO evidence_records (ticket_key, seq, step_id, outcome, action_kind, system, identity, desired_state, observed_state, verified, verification, actor,
       event_received_at, started_at, verified_at, recorded_at, prev_hash, hash, canonical, seal)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [body.ticketKey, body.seq, body.stepId, body.outcome, body.actionKind, body.system, JSON.stringify(body.identity), JSON.stringify(body.desiredState),
      JSON.stringify(body.observedState), body.verified ? 1 : 0, JSON.stringify(body.verification), body.actor, at('eventReceivedAt'), at('startedAt'), at('verifiedAt'),
      at('recordedAt'), body.prevHash, hash, canonical, seal],
  );
  return hash;
}
