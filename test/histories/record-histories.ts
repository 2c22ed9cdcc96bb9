/**
 * Records the workflow histories that test/replay.test.ts replays. Run it after a deliberate, versioned change to
 * workflows/change-workflow.ts (or to add a scenario), review the diff and commit the JSON:
 *
 *   npx tsx test/histories/record-histories.ts [fixture ...]
 *
 * With fixture names, only those scenarios are recorded: a history recorded before a patch() must stay as it was,
 * so that the replay keeps proving the old branch. `pre-normalised--*.json` were recorded when the workflow took
 * ServiceNow-shaped input and snapshots (`sysId`, `state`, `modCount`); they are never re-recorded, and keep
 * proving that runs started then still replay (workflows/legacy-ticket.ts).
 * It starts its own gateway through startGateway so it never touches a jest run: a Temporal dev server on port 7255,
 * the database `changegate_histories` (dropped and recreated; with CG_TEST_SLOT=<n>, port 7255 + 10n and
 * `changegate_histories_<n>`, so checkouts side by side can record at once), the ServiceNow simulator, the API in process, a worker
 * that bundles workflows/ from source, and an OpenBao dev server for the rotation scenario. The MariaDB connector
 * runs as root (no password, as on the dev machine).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DefaultLogger, Runtime, makeTelemetryFilterString } from '@temporalio/worker';
import mysql from 'mysql2/promise';
import type { ConnectorsFile } from '../../src/connectors/registry';
import { workflowIdFor } from '../../src/change';
import { startGateway } from '../../src/gateway';
import { identityActionsDigest } from '../../src/itsm/servicenow/servicenow-gate';
import { postSigned } from '../support/signed-webhook';
import type { ServiceNowSimulator } from '../../src/itsm/servicenow/servicenow-simulator';
import { createLogger } from '../../src/logger';
import { startFlakyPort } from '../support/flaky-port';
import { setupVaultFixture, startOpenBao } from '../support/servers/openbao';
import { createAccount, leaverActions, uniqueAccount, uniqueTicketNumber, waitFor } from '../support/stack';
import { startStatementTap } from '../support/statement-tap';
import { TEST_ENV } from '../support/test-env';
import { historyToJson } from './history-json';

// Beside the slot's test server (7244 + 10n), never on it.
const TEMPORAL_PORT = TEST_ENV.temporalPort + 11;
const SERVER_URL = 'mysql://root@127.0.0.1:3306/';
const DATABASE = TEST_ENV.database.replace('changegate_test', 'changegate_histories');
const TARGET_DATABASES = ['cgt_billing', 'cgt_reporting'];
const PASSWORD_ENV = 'CG_HISTORIES_ROOT_PASSWORD';
const SN = { username: 'changegate-int', password: 'sn-histories-password' };
const WEBHOOK_SECRET = 'histories-webhook-secret-0123456789';
const DEPLOY_SECRET = 'histories-deploy-secret-0123456789';
const OUT_DIR = __dirname;

const localMariadb = (name: string): ConnectorsFile['connectors'][number] => ({
  name,
  type: 'mysql',
  host: '127.0.0.1',
  port: 3306,
  user: 'root',
  passwordEnv: PASSWORD_ENV,
  policy: { maxTtl: 'P30D', protectedAccounts: ['root', 'mysql', 'mariadb.sys'] },
});

const connectors: ConnectorsFile = {
  // A second system on the same server, for the saga scenario.
  connectors: [localMariadb('mysql-local'), localMariadb('mysql-second')],
};

const leaver = leaverActions;
const joiner = (name: string, ttl: string) =>
  JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name, host: '%' }, grants: ['SELECT ON cgt_billing.*', 'INSERT ON cgt_billing.invoices'], ttl }]);

async function main(): Promise<void> {
  process.env[PASSWORD_ENV] = '';
  Runtime.install({ logger: new DefaultLogger('WARN'), telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }) } } });

  const logDir = mkdtempSync(join(tmpdir(), 'cg-histories-'));
  const admin = await mysql.createConnection({ uri: SERVER_URL });
  await admin.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``);
  for (const db of TARGET_DATABASES) {
    await admin.query(`CREATE DATABASE IF NOT EXISTS \`${db}\``);
    await admin.query(`CREATE TABLE IF NOT EXISTS \`${db}\`.invoices (id INT PRIMARY KEY)`);
  }
  // The rotation scenario delivers to a real OpenBao, started like the tests start theirs.
  const bao = await startOpenBao();
  const vault = await setupVaultFixture(bao);
  process.env.CG_HISTORIES_VAULT_TOKEN = vault.gatewayToken;
  connectors.connectors.push({ name: 'vault-local', type: 'vault', address: bao.address, tokenEnv: 'CG_HISTORIES_VAULT_TOKEN', kvPrefix: vault.kvPrefix, policy: { protectedAccounts: [] } });
  // Two more systems on the same server, each behind a tap that can hold one statement at the server's door (the
  // scenario in which a grant lands while the rollback runs): an account's DROP USER on the first, its GRANT on the second.
  const held = { dropOf: '', grantOf: '', dropHeld: false, grantHeld: false, releaseDrop: () => {}, releaseGrant: () => {} };
  const taps = [
    await startStatementTap({ host: '127.0.0.1', port: 3306 }, async (sql) => {
      if (held.dropOf && sql === `DROP USER IF EXISTS '${held.dropOf}'@'%'`) {
        held.dropHeld = true;
        await new Promise<void>((resolve) => (held.releaseDrop = resolve));
      }
    }),
    await startStatementTap({ host: '127.0.0.1', port: 3306 }, async (sql) => {
      if (held.grantOf && sql.startsWith('GRANT ') && sql.endsWith(` TO '${held.grantOf}'@'%'`)) {
        held.grantHeld = true;
        await new Promise<void>((resolve) => (held.releaseGrant = resolve));
      }
    }),
  ];
  connectors.connectors.push({ ...localMariadb('mysql-held-undo'), port: taps[0]!.port }, { ...localMariadb('mysql-held-grant'), port: taps[1]!.port });
  // One more, behind a port that can be taken away (the scenario in which a deploy run's revocation fails).
  const flaky = await startFlakyPort({ host: '127.0.0.1', port: 3306 });
  connectors.connectors.push({ ...localMariadb('mysql-flaky'), port: flaky.port });

  // The same wiring as `npm start`, the tests and the benchmarks; the worker bundles workflows/ from source.
  const gw = await startGateway({
    temporal: { devServer: { port: TEMPORAL_PORT, logFile: join(logDir, 'temporal.log') } },
    taskQueue: `cg-histories-${randomUUID()}`,
    databaseUrl: `${SERVER_URL}${DATABASE}`,
    migrationDatabaseUrl: `${SERVER_URL}${DATABASE}`,
    connectors,
    servicenow: { simulator: SN },
    webhookSecret: WEBHOOK_SECRET,
    deployWebhookSecret: DEPLOY_SECRET,
    // Emergency grants on mysql-local open exceptions with a short window (the exception scenario).
    policy: { version: 1, emergency: [{ system: 'mysql-local', kinds: ['joiner'] }], exceptions: { window: 'PT6S', escalateAfter: 0.5 } },
    adminToken: randomUUID(),
    // The database is made afresh for each recording, so a key of its own is enough.
    evidenceSealKey: randomBytes(32).toString('hex'),
    log: createLogger('histories', 'error'),
  });
  const { workflows } = gw;
  const sim = gw.sim as ServiceNowSimulator;

  const accountExists = async (name: string) => {
    const [rows] = await admin.query<mysql.RowDataPacket[]>("SELECT COUNT(*) AS n FROM mysql.user WHERE User = ? AND Host = '%'", [name]);
    return Number(rows[0]?.n) > 0;
  };
  const gateSet = (sysId: string) => sim.getChange(sysId)?.u_identity_cleanup === 'verified';
  const gateFor = (sysId: string, actions: string) => sim.getChange(sysId)?.u_identity_cleanup_digest === identityActionsDigest(actions);

  /** Waits for the ticket's workflow to complete and writes its history as `<fixture>.json`. */
  async function record(fixture: string, number: string): Promise<void> {
    const handle = workflows.client.workflow.getHandle(workflowIdFor('servicenow', number));
    await handle.result();
    const history = await handle.fetchHistory();
    writeFileSync(resolve(OUT_DIR, `${fixture}.json`), historyToJson(history));
    console.log(`recorded ${fixture}.json (${history.events?.length ?? 0} events)`);
  }

  async function leaverRevokedThenClosed(fixture: string): Promise<void> {
    const account = uniqueAccount('rec');
    await createAccount(admin, account);
    const number = uniqueTicketNumber();
    const sysId = sim.createChange({ number, state: '-5', u_identity_actions: leaver(account) }).sys_id as string;
    await waitFor('account dropped', async () => !(await accountExists(account)));
    await waitFor('gate set', () => gateSet(sysId));
    sim.updateChange(sysId, { state: '3', close_code: 'successful' });
    await record(fixture, number);
  }

  /**
   * Joiners on two systems; the second grant is held at its target while the first is verified and the change is
   * cancelled; the first grant's undo is held at its target while the second grant lands; then both are let through.
   */
  async function grantedDuringRollback(fixture: string): Promise<void> {
    const early = uniqueAccount('rec');
    const late = uniqueAccount('rec');
    Object.assign(held, { dropOf: early, grantOf: late, dropHeld: false, grantHeld: false });
    const number = uniqueTicketNumber();
    const actions = JSON.stringify(
      [['mysql-held-undo', early], ['mysql-held-grant', late]].map(([system, name]) => ({
        kind: 'joiner', system, identity: { type: 'service_account', name, host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'PT8H',
      })),
    );
    const sysId = sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: actions }).sys_id as string;
    const stepOn = async (system: string) => (await workflows.status('servicenow', number))?.steps.find((st) => st.action.system === system);
    await waitFor('first grant verified, second held', async () => held.grantHeld && (await stepOn('mysql-held-undo'))?.status === 'verified');
    sim.updateChange(sysId, { state: '4' });
    await waitFor("first grant's undo held", () => held.dropHeld);
    held.releaseGrant();
    await waitFor('second grant verified', async () => (await stepOn('mysql-held-grant'))?.status === 'verified');
    held.releaseDrop();
    await record(fixture, number);
    if ((await accountExists(early)) || (await accountExists(late))) throw new Error('the rollback left an account behind');
  }

  /** A pipeline's signed run event, as test/deploy.e2e.test.ts sends it. */
  async function deployEvent(body: unknown): Promise<number> {
    return (await postSigned(`${gw.apiUrl}/webhooks/deploy`, Buffer.from(JSON.stringify(body)), DEPLOY_SECRET)).status;
  }

  /** An authorized change with one deploy action on `system`, its step ready for pipeline runs. */
  async function readyDeploy(system: string, ttl: string): Promise<{ number: string; sysId: string; ticket: { source: string; key: string } }> {
    const base = uniqueAccount('rec');
    const number = uniqueTicketNumber();
    const actions = JSON.stringify([
      { kind: 'deploy', system, identity: { type: 'service_account', name: base, host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl, deliverTo: { system: 'vault-local', path: `apps/${base}/deploy` } },
    ]);
    const sysId = sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: actions }).sys_id as string;
    await waitFor('deploy step ready', async () => (await workflows.status('servicenow', number))?.steps[0]?.status === 'verified', 60_000);
    return { number, sysId, ticket: { source: 'servicenow', key: number } };
  }

  const scenarios: Record<string, () => Promise<void>> = {
    // (a) Leaver: revoked, verified, gate set, then the ticket is closed.
    'leaver-revoked-then-closed': () => leaverRevokedThenClosed('leaver-revoked-then-closed'),

    // (b) Joiner: waits for authorization, is granted on approval in Implement, expires on its TTL, then closes.
    'joiner-granted-expired-then-closed': async () => {
      const account = uniqueAccount('rec');
      const number = uniqueTicketNumber();
      const sysId = sim.createChange({ number, state: '-3', approval: 'requested', u_identity_actions: joiner(account, 'PT2S') }).sys_id as string;
      await waitFor('workflow waiting for authorization', async () => (await workflows.status('servicenow', number))?.steps[0]?.status === 'waiting-authorization');
      sim.updateChange(sysId, { state: '-1', approval: 'approved' });
      await waitFor('account created', () => accountExists(account));
      await waitFor('expiry verified', async () => (await workflows.status('servicenow', number))?.steps[0]?.expiry?.status === 'verified');
      await waitFor('gate set', () => gateSet(sysId));
      sim.updateChange(sysId, { state: '3', close_code: 'successful' });
      await record('joiner-granted-expired-then-closed', number);
    },

    // (c) Leaver of an account that is already gone: succeeds, says so, ticket closes.
    'leaver-already-absent-then-closed': async () => {
      const number = uniqueTicketNumber();
      const sysId = sim.createChange({ number, state: '-1', u_identity_actions: leaver(uniqueAccount('gone')) }).sys_id as string;
      await waitFor('gate set', () => gateSet(sysId));
      sim.updateChange(sysId, { state: '3', close_code: 'successful' });
      await record('leaver-already-absent-then-closed', number);
    },

    // (d) Joiner granted with a long TTL, then the change is cancelled: the expiry runs at once from the main loop.
    'joiner-granted-then-cancelled': async () => {
      const account = uniqueAccount('rec');
      const number = uniqueTicketNumber();
      const sysId = sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: joiner(account, 'PT8H') }).sys_id as string;
      await waitFor('account created', () => accountExists(account));
      await waitFor('grant verified', async () => (await workflows.status('servicenow', number))?.steps[0]?.status === 'verified');
      sim.updateChange(sysId, { state: '4' });
      await record('joiner-granted-then-cancelled', number);
    },

    // (e) No identity actions: the gate is written as not_applicable for the empty text, then the ticket closes.
    'no-identity-actions-then-closed': async () => {
      const number = uniqueTicketNumber();
      const sysId = sim.createChange({ number, state: '-1' }).sys_id as string;
      await waitFor('not_applicable gate', () => sim.getChange(sysId)?.u_identity_cleanup === 'not_applicable' && gateFor(sysId, ''));
      sim.updateChange(sysId, { state: '3', close_code: 'successful' });
      await record('no-identity-actions-then-closed', number);
    },

    // (f) Leaver verified, then the actions are edited (the gate goes back to pending), the new leaver is verified
    // and the gate written for the new text, then the ticket closes.
    'leaver-actions-edited-then-reverified-then-closed': async () => {
      const number = uniqueTicketNumber();
      const first = leaver(uniqueAccount('gone'));
      const sysId = sim.createChange({ number, state: '-1', u_identity_actions: first }).sys_id as string;
      await waitFor('gate set for the first actions', () => gateSet(sysId) && gateFor(sysId, first));
      const edited = leaver(uniqueAccount('gone'));
      sim.updateChange(sysId, { u_identity_actions: edited });
      await waitFor('gate set for the edited actions', () => gateSet(sysId) && gateFor(sysId, edited));
      sim.updateChange(sysId, { state: '3', close_code: 'successful' });
      await record('leaver-actions-edited-then-reverified-then-closed', number);
    },

    // (h) Joiners on two systems, both granted, then the change is cancelled: the saga takes the grants back one
    // after the other, newest verification first (saga-reverse-order; each step one activity, one-activity-per-step).
    'joiners-on-two-systems-granted-then-cancelled': async () => {
      const first = uniqueAccount('rec');
      const second = uniqueAccount('rec');
      const number = uniqueTicketNumber();
      const actions = JSON.stringify(
        [['mysql-local', first], ['mysql-second', second]].map(([system, name]) => ({
          kind: 'joiner', system, identity: { type: 'service_account', name, host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'PT8H',
        })),
      );
      const sysId = sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: actions }).sys_id as string;
      await waitFor('both grants verified', async () => (await workflows.status('servicenow', number))?.steps.every((s) => s.status === 'verified') === true);
      sim.updateChange(sysId, { state: '4' });
      await record('joiners-on-two-systems-granted-then-cancelled', number);
      if ((await accountExists(first)) || (await accountExists(second))) throw new Error('the saga left an account behind');
    },

    // (i) Leaver with each step one activity (one-activity-per-step): revoked, read back and recorded by
    // applyVerifyRecord, gate set, then the ticket is closed.
    'leaver-revoked-in-one-activity-then-closed': () => leaverRevokedThenClosed('leaver-revoked-in-one-activity-then-closed'),

    // (j) Deploy: one pipeline run ended by `finished`, another by its ttl (each its own credential, minted and
    // revoked through the deployRun update and its timer), then the ticket closes.
    'deploy-runs-finished-and-expired-then-closed': async () => {
      const { number, sysId, ticket } = await readyDeploy('mysql-local', 'PT3S');
      if ((await deployEvent({ ticket, runId: 'run-1', event: 'started' })) !== 201) throw new Error('run-1 was not minted');
      if ((await deployEvent({ ticket, runId: 'run-1', event: 'finished', outcome: 'success' })) !== 200) throw new Error('run-1 was not revoked');
      if ((await deployEvent({ ticket, runId: 'run-2', event: 'started' })) !== 201) throw new Error('run-2 was not minted');
      await waitFor('run-2 revoked at its ttl', async () => (await workflows.status('servicenow', number))?.steps[0]?.deploy?.runs.every((r) => r.status === 'revoked') === true, 30_000);
      await waitFor('gate set', () => gateSet(sysId));
      sim.updateChange(sysId, { state: '3', close_code: 'successful' });
      await record('deploy-runs-finished-and-expired-then-closed', number);
    },
    // (k) Leaver with one write-back per loop turn (one-write-back-per-turn): the delivery shows the gate pending, so
    // nothing is written until the step is verified; then the gate and both notes go back in one activity.
    'leaver-revoked-with-one-write-back-then-closed': () => leaverRevokedThenClosed('leaver-revoked-with-one-write-back-then-closed'),

    // (l) Joiner until the ticket closes, recorded before ticket-closed-ends-at-review: granted, closure allowed while
    // the grant lasts, the change moves to Review with the grant still there, and it is taken back once the ticket
    // has closed. Re-record it only from a checkout before that patch.
    'joiner-until-ticket-closed-granted-then-closed': async () => {
      const account = uniqueAccount('rec');
      const number = uniqueTicketNumber();
      const actions = JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' }, grants: ['SELECT ON cgt_billing.*'], until: 'ticket-closed' }]);
      const sysId = sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: actions }).sys_id as string;
      await waitFor('account created', () => accountExists(account));
      await waitFor('gate set', () => gateSet(sysId));
      sim.updateChange(sysId, { state: '0' });
      await waitFor('the Review delivery in the workflow', async () => (await workflows.status('servicenow', number))?.phase === 'review');
      sim.updateChange(sysId, { state: '3', close_code: 'successful' });
      await record('joiner-until-ticket-closed-granted-then-closed', number);
      if (await accountExists(account)) throw new Error('the grant was not taken back at closure');
    },

    // (o) An emergency joiner granted before authorization opens an exception (ledger, review task, note); undecided it
    // is escalated and, at the deadline, the policy revokes it (the take-back verified); the gate opens, then the
    // change closes.
    'emergency-joiner-exception-revoked-by-policy-then-closed': async () => {
      const account = uniqueAccount('rec');
      const number = uniqueTicketNumber();
      const sysId = sim.createChange({ number, type: 'emergency', state: '-3', u_identity_actions: joiner(account, 'PT8H') }).sys_id as string;
      await waitFor('account created', () => accountExists(account));
      await waitFor('the review task', () => sim.tasks(sysId).length === 1);
      await waitFor('gate set after the policy revoked', () => gateSet(sysId), 30_000);
      if (await accountExists(account)) throw new Error('the exception was not revoked at its deadline');
      if (sim.tasks(sysId)[0]?.close_code !== 'unsuccessful') throw new Error('the review task was not closed unsuccessful');
      sim.updateChange(sysId, { state: '3', close_code: 'successful' });
      await record('emergency-joiner-exception-revoked-by-policy-then-closed', number);
    },

    // (p) An emergency joiner's exception accepted by a security reviewer (the decision update, as the API sends it):
    // the review task closes successful, the gate opens, and the change closes after its grant expired.
    'emergency-joiner-exception-accepted-then-closed': async () => {
      const account = uniqueAccount('rec');
      const number = uniqueTicketNumber();
      const sysId = sim.createChange({ number, type: 'emergency', state: '-3', u_identity_actions: joiner(account, 'PT3S') }).sys_id as string;
      const handle = workflows.client.workflow.getHandle(workflowIdFor('servicenow', number));
      const state = await waitFor('the exception opened', async () => {
        const s = await workflows.status('servicenow', number);
        return s?.steps[0]?.exception?.status === 'open' ? s : null;
      });
      await handle.executeUpdate('decideException', {
        args: [{
          exceptionId: state.steps[0]!.exception!.id, decision: 'accept', justification: 'incident INC0001 needed it',
          principal: { actor: { kind: 'token', id: '1', name: 'recorder-reviewer' }, roles: ['security-reviewer'], ticketUsers: [] }, requestedAt: new Date().toISOString(),
        }],
      });
      await waitFor('the review task closed', () => sim.tasks(sysId)[0]?.state === '3');
      await waitFor('the grant expired', async () => !(await accountExists(account)), 30_000);
      await waitFor('gate set', () => gateSet(sysId));
      sim.updateChange(sysId, { state: '3', close_code: 'successful' });
      await record('emergency-joiner-exception-accepted-then-closed', number);
    },

    // (m) Leaver verified; once the gate says verified the evidence bundle is attached to the change
    // (attach-evidence-bundle), then the ticket is closed.
    'leaver-revoked-evidence-attached-then-closed': async () => {
      const account = uniqueAccount('rec');
      await createAccount(admin, account);
      const number = uniqueTicketNumber();
      const sysId = sim.createChange({ number, state: '-1', u_identity_actions: leaver(account) }).sys_id as string;
      await waitFor('gate set', () => gateSet(sysId));
      await waitFor('evidence bundle attached', () => sim.attachments(sysId).length === 1);
      sim.updateChange(sysId, { state: '3', close_code: 'successful' });
      await record('leaver-revoked-evidence-attached-then-closed', number);
    },

    // (n) A joiner whose grant the target refuses (a table that does not exist) fails; the change is closed on an
    // instance without the block-close rule, the gateway reopens it to Review with the reasons
    // (reopen-closed-without-cleanup) and waits; then the change is cancelled.
    'joiner-failed-closed-without-rule-reopened-then-cancelled': async () => {
      const number = uniqueTicketNumber();
      const actions = JSON.stringify([
        { kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: uniqueAccount('rec'), host: '%' }, grants: ['SELECT ON cgt_billing.no_such_table'], ttl: 'PT1H' },
      ]);
      sim.setRuleActive('changegate: block close without identity cleanup', false);
      try {
        const sysId = sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: actions }).sys_id as string;
        await waitFor('joiner failed', async () => (await workflows.status('servicenow', number))?.steps[0]?.status === 'failed', 60_000);
        sim.updateChange(sysId, { state: '3', close_code: 'successful' });
        await waitFor('reopened to Review', async () => (await workflows.status('servicenow', number))?.phase === 'review');
        sim.updateChange(sysId, { state: '4' });
        await record('joiner-failed-closed-without-rule-reopened-then-cancelled', number);
      } finally {
        sim.setRuleActive('changegate: block close without identity cleanup', true);
      }
    },

    // (o) Leaver through the ticket outbox (ticket-outbox) while ServiceNow is unavailable: 503s with Retry-After while
    // the first leaver is verified, then a second leaver added and verified while still unavailable, then ServiceNow
    // is back, the notes and the gate for the edited actions land, and the ticket closes.
    'leaver-delivered-through-outbox-after-outage-then-closed': async () => {
      const account = uniqueAccount('rec');
      await createAccount(admin, account);
      const number = uniqueTicketNumber();
      sim.faults.serverError({ status: 503, retryAfterSeconds: 1 });
      const sysId = sim.createChange({ number, type: 'emergency', state: '-1', u_identity_actions: leaver(account) }).sys_id as string;
      await waitFor('account dropped', async () => !(await accountExists(account)));
      await waitFor('delivery retried', async () => ((await workflows.status('servicenow', number))?.outbox?.waiting?.attempts ?? 0) >= 2);
      const both = JSON.stringify([...JSON.parse(leaver(account)), ...JSON.parse(leaver(uniqueAccount('gone')))]);
      sim.updateChange(sysId, { u_identity_actions: both });
      await waitFor('both leavers verified', async () => (await workflows.status('servicenow', number))?.steps.filter((st) => st.status === 'verified').length === 2);
      await sim.faults.restore();
      await waitFor('gate set for the edited actions', () => gateSet(sysId) && gateFor(sysId, both), 30_000);
      sim.updateChange(sysId, { state: '3', close_code: 'successful' });
      await record('leaver-delivered-through-outbox-after-outage-then-closed', number);
    },

    // (p) A joiner granted while the rollback of a cancelled change runs, recorded before saga-one-chain: its undo
    // starts at once, alongside the undo in progress. Re-record it only from a checkout before that patch.
    'joiner-granted-during-rollback-undone-alongside-then-cancelled': () => grantedDuringRollback('joiner-granted-during-rollback-undone-alongside-then-cancelled'),

    // (q) The same since saga-one-chain: its undo waits for the one in progress, in the one chain.
    'joiner-granted-during-rollback-undone-after-then-cancelled': () => grantedDuringRollback('joiner-granted-during-rollback-undone-after-then-cancelled'),

    // (r) Deploy whose revocations fail (recorded with deploy-revoke-failure-evidence and deploy-revoke-retried): two
    // runs, then the target's port goes away before their ttl; each revocation fails and is recorded as failed. A
    // 'finished' for one while the port is away is tried at once and fails (502); once the port is back, a second
    // 'finished' revokes it at once and the other is revoked by its retry timer; then the ticket closes.
    'deploy-revocations-failed-then-retried-then-closed': async () => {
      const { number, sysId, ticket } = await readyDeploy('mysql-flaky', 'PT5S');
      for (const runId of ['timed', 'told']) if ((await deployEvent({ ticket, runId, event: 'started' })) !== 201) throw new Error(`${runId} was not minted`);
      await flaky.down();
      const runs = async () => (await workflows.status('servicenow', number))?.steps[0]?.deploy?.runs ?? [];
      await waitFor('both revocations failed, to be retried', async () => (await runs()).filter((r) => r.status === 'failed' && r.retrying).length === 2, 180_000, 500);
      const early = await deployEvent({ ticket, runId: 'told', event: 'finished', outcome: 'success' });
      if (early !== 502) throw new Error(`'finished' while the target is away answered ${early}, not 502`);
      await flaky.up();
      const done = await deployEvent({ ticket, runId: 'told', event: 'finished', outcome: 'success' });
      if (done !== 200) throw new Error(`'finished' once the target is back answered ${done}, not 200`);
      await waitFor('the timed run revoked by its retry', async () => (await runs()).every((r) => r.status === 'revoked'), 90_000, 500);
      await waitFor('gate set', () => gateSet(sysId), 30_000);
      sim.updateChange(sysId, { state: '3', close_code: 'successful' });
      await record('deploy-revocations-failed-then-retried-then-closed', number);
    },

    // (g) Rotation: a MariaDB account's password rotated into OpenBao KV, verified on both sides, then closed.
    'rotation-delivered-then-closed': async () => {
      const account = uniqueAccount('rec');
      await createAccount(admin, account);
      const number = uniqueTicketNumber();
      const actions = JSON.stringify([
        { kind: 'rotate', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' }, deliverTo: { system: 'vault-local', path: `apps/${account}/db` } },
      ]);
      const sysId = sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: actions }).sys_id as string;
      await waitFor('gate set', () => gateSet(sysId), 60_000);
      sim.updateChange(sysId, { state: '3', close_code: 'successful' });
      await record('rotation-delivered-then-closed', number);
    },
  };

  const wanted = process.argv.slice(2);
  for (const name of wanted) if (!scenarios[name]) throw new Error(`no scenario ${name}; known: ${Object.keys(scenarios).join(', ')}`);
  try {
    for (const [name, run] of Object.entries(scenarios)) if (wanted.length === 0 || wanted.includes(name)) await run();
  } finally {
    held.releaseDrop();
    held.releaseGrant();
    await gw.stop();
    for (const tap of taps) await tap.stop();
    await flaky.stop();
    await admin.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``);
    await admin.end();
    await vault.cleanup();
    await bao.stop();
    rmSync(logDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
