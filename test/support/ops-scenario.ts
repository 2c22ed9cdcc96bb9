import { createHmac, randomBytes } from 'node:crypto';
import axios from 'axios';
import type { ConnectorsFile } from '../../src/connectors/registry';
import type { EvidenceView } from '../../src/evidence/evidence-store';
import { type FlakyPort, startFlakyPort } from './flaky-port';
import { type OpenBao, setupVaultFixture, startOpenBao, type VaultFixture, vaultConnectorEntry } from './servers/openbao';
import { postSigned } from './signed-webhook';
import { createAccount, type Stack, uniqueAccount, uniqueTicketNumber, waitFor } from './stack';
import { TEST_ENV } from './test-env';

/**
 * The targets of the dashboard's report tests: a MySQL system of this run's own (a port in front of MariaDB that can be
 * taken away, so a step really retries) and OpenBao for pipeline credentials. The system's name is unique, so the
 * reports filtered by it count only what the scenario did, whatever other suites write into the same database.
 */
export interface OpsTargets {
  system: string;
  connectors: ConnectorsFile['connectors'];
  flaky: FlakyPort;
  bao: OpenBao;
  fx: VaultFixture;
  stop(): Promise<void>;
}

export async function startOpsTargets(): Promise<OpsTargets> {
  const system = `mysql-ops-${randomBytes(3).toString('hex')}`;
  const flaky = await startFlakyPort({ host: '127.0.0.1', port: TEST_ENV.mariadbPort });
  const bao = await startOpenBao();
  const fx = await setupVaultFixture(bao);
  return {
    system,
    flaky,
    bao,
    fx,
    connectors: [
      vaultConnectorEntry(bao, fx, 'CG_TEST_OPS_VAULT_TOKEN'),
      {
        name: system, type: 'mysql', host: '127.0.0.1', port: flaky.port, user: TEST_ENV.connectorUser, passwordEnv: 'CG_TEST_CONNECTOR_PASSWORD',
        policy: { maxTtl: 'P30D', protectedAccounts: ['root', 'mysql', 'mariadb.sys'] },
      },
    ],
    async stop() {
      await flaky.stop();
      await fx.cleanup();
      await bao.stop();
    },
  };
}

/** The webhook secret the scenario's leak reports are signed with (startStack({ leaks: { webhookSecret } })). */
export const OPS_LEAK_SECRET = randomBytes(24).toString('base64url');

/** What the scenario did, for the tests to expect. */
export interface OpsScenario {
  system: string;
  owner: string;
  workload: string;
  joiner: { ticket: string; account: string };
  leaver: { ticket: string; account: string };
  /** The leaver whose first attempt found the target away: Temporal retried it. */
  retried: { ticket: string; account: string; attempt: number };
  mover: { ticket: string; reason: string };
  deploy: { ticket: string; liveRun: string; liveAccount: string };
  /** An account made behind the gateway's back, found by the scan. */
  orphan: string;
  /** The scenario's tickets' evidence rows, read back once it is done. */
  rows: EvidenceView[];
}

const SELECT = 'SELECT ON cgt_billing.*';

/**
 * Real changes on the scenario's system, each through the stack as a ticket source or pipeline delivers it: a joiner
 * (with owner and workload) and a leaver that verify, a leaver retried because the target was away on its first
 * attempt, a mover the target refuses, a deploy with three pipeline runs (one finished, one still live, one whose
 * credential is reported leaked and so revoked), and an account nobody asked for, found by a scan.
 */
export async function runOpsScenario(stack: Stack, targets: OpsTargets): Promise<OpsScenario> {
  const { system, flaky } = targets;
  const tag = randomBytes(3).toString('hex');
  const owner = `team-ops-${tag}`;
  const workload = `billing-${tag}`;
  const change = (actions: unknown[], state = '-1') => {
    const number = uniqueTicketNumber();
    stack.sim.createChange({ number, state, approval: 'approved', u_identity_actions: JSON.stringify(actions) });
    return number;
  };
  const stepStatus = async (number: string, i = 0) => (await stack.closureCheck(number)).data.steps?.[i]?.status as string | undefined;
  const identity = (name: string) => ({ type: 'service_account', name, host: '%' });

  // The target away: the leaver's first attempt cannot connect, Temporal retries it, and it verifies once it is back.
  const retriedAccount = uniqueAccount('opr');
  await createAccount(stack.admin, retriedAccount);
  await flaky.down();
  const retriedTicket = change([{ kind: 'leaver', system, identity: identity(retriedAccount) }]);
  try {
    await waitFor('a second attempt of the leaver', async () => {
      const d = await stack.workflows.client.workflow.getHandle(`change-servicenow-${retriedTicket}`).describe();
      return (d.raw.pendingActivities ?? []).some((a) => Number(a.attempt ?? 0) >= 2);
    }, 30_000, 100);
  } finally {
    await flaky.up();
  }
  await waitFor('the retried leaver verified', async () => (await stepStatus(retriedTicket)) === 'verified', 60_000);

  const joinerAccount = uniqueAccount('opj');
  const joinerTicket = change([{ kind: 'joiner', system, identity: identity(joinerAccount), grants: [SELECT], ttl: 'PT8H', owner, workload }]);
  const leaverAccount = uniqueAccount('opl');
  await createAccount(stack.admin, leaverAccount);
  const leaverTicket = change([{ kind: 'leaver', system, identity: identity(leaverAccount) }]);
  const moverTicket = change([{ kind: 'mover', system, identity: identity(uniqueAccount('opm')), grants: [SELECT] }]);

  const base = uniqueAccount('opd');
  const deployTicket = change([{ kind: 'deploy', system, identity: identity(base), grants: [SELECT], ttl: 'PT30M', deliverTo: { system: 'vault-local', path: `apps/${base}/db` } }]);
  await waitFor('the joiner verified', async () => (await stepStatus(joinerTicket)) === 'verified', 30_000);
  await waitFor('the leaver verified', async () => (await stepStatus(leaverTicket)) === 'verified', 30_000);
  await waitFor('the mover refused', async () => (await stepStatus(moverTicket)) === 'failed', 30_000);
  await waitFor('the deploy step ready', async () => (await stepStatus(deployTicket)) === 'verified', 30_000);

  const run = async (runId: string, event: 'started' | 'finished') => {
    const res = await postSigned(`${stack.apiUrl}/webhooks/deploy`, Buffer.from(JSON.stringify({ ticket: { source: 'servicenow', key: deployTicket }, runId, event, ...(event === 'finished' ? { outcome: 'success' } : {}) })), TEST_ENV.deployWebhookSecret);
    if (res.status >= 300) throw new Error(`deploy ${event} ${runId}: ${res.status} ${JSON.stringify(res.data)}`);
    return res;
  };
  await run('r1', 'started');
  await run('r1', 'finished');
  const live = await run('r2', 'started');
  const liveAccount = String(live.data.credentials[0].identity);
  await run('r3', 'started');
  const leaked = (await targets.bao.root<{ data: { data: { value: string } } }>('GET', `secret/data/${targets.fx.kvPrefix}/apps/${base}/db/r3`)).body.data.data.value;
  const raw = Buffer.from(JSON.stringify({ secret: leaked, type: 'mysql_password', location: 'pipeline log, run r3' }));
  const report = await axios.post(`${stack.apiUrl}/webhooks/secret-scanning`, raw, {
    headers: { 'content-type': 'application/json', 'x-hub-signature-256': `sha256=${createHmac('sha256', OPS_LEAK_SECRET).update(raw).digest('hex')}` },
    validateStatus: () => true,
  });
  if (report.status !== 202) throw new Error(`leak report: ${report.status} ${JSON.stringify(report.data)}`);
  await waitFor('the leaked run revoked, the finished one too', async () => {
    const runs = (await stack.workflows.status('servicenow', deployTicket))?.steps[0]?.deploy?.runs ?? [];
    const status = Object.fromEntries(runs.map((r) => [r.runId, r.status]));
    return status.r1 === 'revoked' && status.r2 === 'live' && status.r3 === 'revoked';
  }, 30_000);

  const orphan = uniqueAccount('opo');
  await createAccount(stack.admin, orphan);
  const operator = (await stack.tokenFor('operator')).token;
  const scan = await axios.post(`${stack.apiUrl}/api/inventory/scan`, { systems: [system] }, { headers: { authorization: `Bearer ${operator}` }, validateStatus: () => true });
  if (scan.status !== 200) throw new Error(`scan: ${scan.status} ${JSON.stringify(scan.data)}`);

  const tickets = [retriedTicket, joinerTicket, leaverTicket, moverTicket, deployTicket];
  const rows = (await Promise.all(tickets.map((t) => stack.evidence.list(`servicenow:${t}`)))).flat();
  const retriedRow = rows.find((r) => r.ticketKey === `servicenow:${retriedTicket}` && r.outcome === 'revoked');
  const attempt = Number((retriedRow?.verification as { attempts?: { activity?: number } } | undefined)?.attempts?.activity);
  return {
    system,
    owner,
    workload,
    joiner: { ticket: joinerTicket, account: joinerAccount },
    leaver: { ticket: leaverTicket, account: leaverAccount },
    retried: { ticket: retriedTicket, account: retriedAccount, attempt },
    mover: { ticket: moverTicket, reason: (await stack.closureCheck(moverTicket)).data.steps[0].detail as string },
    deploy: { ticket: deployTicket, liveRun: 'r2', liveAccount },
    orphan,
    rows,
  };
}

/** Accounts the scenario leaves on MariaDB (the live run's, the orphan, the joiner's): dropped after the suite. */
export async function dropScenarioAccounts(stack: Stack, s: OpsScenario | undefined): Promise<void> {
  if (!s) return;
  for (const name of [s.joiner.account, s.deploy.liveAccount, s.orphan, s.leaver.account, s.retried.account]) {
    await stack.admin.query('DROP USER IF EXISTS ?@?', [name, '%']).catch(() => undefined);
  }
}
