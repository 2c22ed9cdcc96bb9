import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DevServer, startDevServer } from '../src/temporal/dev-server';
import type { DeployRunRecord } from '../src/change/change-state';
import { type FlakyPort, startFlakyPort } from './support/flaky-port';
import { type OpenBao, setupVaultFixture, startOpenBao, type VaultFixture, vaultConnectorEntry } from './support/servers/openbao';
import { postSigned } from './support/signed-webhook';
import { dropRunAccounts, runAccounts, type Stack, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { TEST_ENV } from './support/test-env';

/**
 * A change workflow that continues as new carries its deploy runs with their clocks: a live run's ttl and a failed
 * revocation's retry are timers of the run that set them, so the next run must set them again from the carried state.
 * Real Temporal (a dev server of this file's own that suggests continuing as new after a few dozen events), MariaDB
 * behind a port that can be taken away, OpenBao for the runs' secrets.
 */
describe('a change workflow that continues as new keeps its deploy runs’ clocks', () => {
  let logDir: string;
  let server: DevServer;
  let bao: OpenBao;
  let fx: VaultFixture;
  let flaky: FlakyPort;
  let stack: Stack;
  const FLAKY = 'mysql-can-flaky';
  let base = '';

  beforeAll(async () => {
    logDir = mkdtempSync(join(tmpdir(), 'cg-can-'));
    server = await startDevServer({ port: TEST_ENV.temporalPort + 8, logFile: join(logDir, 'temporal.log'), dynamicConfig: ['limit.historyCount.suggestContinueAsNew=40'] });
    bao = await startOpenBao();
    fx = await setupVaultFixture(bao);
    flaky = await startFlakyPort({ host: '127.0.0.1', port: TEST_ENV.mariadbPort });
    stack = await startStack({
      temporalAddress: server.address,
      extraConnectors: [
        vaultConnectorEntry(bao, fx, 'CG_TEST_CAN_VAULT_TOKEN'),
        { name: FLAKY, type: 'mysql', host: '127.0.0.1', port: flaky.port, user: TEST_ENV.connectorUser, passwordEnv: 'CG_TEST_CONNECTOR_PASSWORD', policy: { protectedAccounts: ['root', 'mysql', 'mariadb.sys'] } },
      ],
    });
  }, 120_000);
  afterAll(async () => {
    if (base && stack) await dropRunAccounts(stack.admin, base);
    await stack?.stop();
    await flaky?.stop();
    await fx?.cleanup();
    await bao?.stop();
    await server?.stop();
    rmSync(logDir, { recursive: true, force: true });
  });

  it("a failed revocation's retry and a live run's ttl, carried into the next run, fire there: both credentials revoked and closure allowed", async () => {
    base = uniqueAccount('can');
    const number = uniqueTicketNumber();
    const sysId = stack.sim.createChange({
      number, state: '-1', approval: 'approved',
      u_identity_actions: JSON.stringify([{ kind: 'deploy', system: FLAKY, identity: { type: 'service_account', name: base, host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'PT120S', deliverTo: { system: 'vault-local', path: `apps/${base}/db` } }]),
    }).sys_id as string;
    await waitFor('the deploy step to be ready', async () => (await stack.closureCheck(number)).data.steps?.[0]?.status === 'verified', 30_000);
    const event = (runId: string, what: 'started' | 'finished') =>
      postSigned(`${stack.apiUrl}/webhooks/deploy`, Buffer.from(JSON.stringify({ ticket: { source: 'servicenow', key: number }, runId, event: what, ...(what === 'finished' ? { outcome: 'success' } : {}) })), TEST_ENV.deployWebhookSecret);
    const handle = stack.workflows.client.workflow.getHandle(`change-servicenow-${number}`);
    const runs = async () => ((await stack.workflows.status('servicenow', number))?.steps[0]?.deploy?.runs ?? []) as DeployRunRecord[];
    const runOf = async (runId: string) => (await runs()).find((r) => r.runId === runId);
    const accounts = () => runAccounts(stack.admin, base);

    // Two runs: `failing` is told it finished while its target is away, `lasting` is left to its ttl.
    const starts = [await event('failing', 'started'), await event('lasting', 'started')];
    expect(starts.map((r) => r.status)).toEqual([201, 201]);
    expect(await accounts()).toHaveLength(2);
    await flaky.down();
    const early = await event('failing', 'finished');
    expect([early.status, early.data.error?.code]).toEqual([502, 'DEPLOY_FAILED']);
    const failed = await runOf('failing');
    expect(failed).toMatchObject({ status: 'failed', retrying: expect.objectContaining({ attempts: expect.any(Number) }) });
    const lasting = await runOf('lasting');
    expect(lasting?.status).toBe('live');

    // Events add to the history (a repeated 'started' of the live run changes nothing but its history) until the
    // server suggests continuing as new; the workflow does so the next time its loop turns, which an edit of the
    // ticket brings about (reconciliation delivers it). A timer's revocation turns the loop too, so a run may be handed `failing` while its retry
    // is under way (`revoking`, and it revokes it again); until one is handed it waiting for its retry, go on.
    const runBefore = (await handle.describe()).runId;
    const handed: string[] = [];
    let carried: DeployRunRecord[] = [];
    for (let runId = runBefore; !carried.some((r) => r.runId === 'failing' && r.status === 'failed'); ) {
      expect(handed.length).toBeLessThan(4);
      await waitFor('the failing run failed, its retry waiting', async () => (await runOf('failing'))?.status === 'failed', 120_000, 200);
      const previous = runId;
      let edits = 0;
      runId = await waitFor('the workflow to continue as new', async () => {
        const now = (await handle.describe()).runId;
        if (now !== previous) return now;
        for (let i = 0; i < 5; i += 1) expect((await event('lasting', 'started')).status).toBeLessThan(300);
        // An edit no webhook is sent for (the rule fires on state, approval, type and actions), taken in by reconciliation.
        stack.sim.updateChange(sysId, { description: `edited ${(edits += 1)}` });
        await stack.reconcile();
        return null;
      }, 60_000, 100);
      const started = (await stack.workflows.client.workflow.getHandle(handle.workflowId, runId).fetchHistory()).events?.[0]?.workflowExecutionStartedEventAttributes;
      const input = JSON.parse(new TextDecoder().decode(started?.input?.payloads?.[0]?.data ?? new Uint8Array())) as { carried?: { steps: Array<{ deploy?: { runs: DeployRunRecord[] } }> } };
      carried = input.carried?.steps[0]?.deploy?.runs ?? [];
      handed.push(String(carried.find((r) => r.runId === 'failing')?.status));
    }
    // The run was handed both as they stood: one failed and to be tried again, one live with its ttl.
    expect(carried.find((r) => r.runId === 'failing')).toMatchObject({ status: 'failed', retrying: expect.objectContaining({ nextAttemptAt: expect.any(String) }) });
    expect(carried.find((r) => r.runId === 'lasting')).toMatchObject({ status: 'live', expiresAt: lasting?.expiresAt });
    expect(await accounts()).toHaveLength(2);

    // Back: the retry timer the next run set revokes `failing` without another 'finished'.
    await flaky.up();
    await waitFor('the failing run revoked by its retry', async () => (await runOf('failing'))?.status === 'revoked', 90_000, 500);
    expect((await accounts()).length).toBe(1);
    // The ttl timer the next run set revokes `lasting` when its ttl ends, not before.
    const expiresAt = Date.parse(lasting?.expiresAt ?? '');
    const revoked = await waitFor('the lasting run revoked at its ttl', async () => {
      const r = await runOf('lasting');
      return r?.status === 'revoked' ? r : null;
    }, 150_000, 500);
    expect(revoked.endedBy).toBe('ttl');
    expect(Date.parse(revoked.revokedAt ?? '')).toBeGreaterThanOrEqual(expiresAt);
    expect(await accounts()).toEqual([]);
    const rows = (await stack.evidence.list(`servicenow:${number}`)).filter((r) => r.stepId.endsWith(':revoke'));
    expect(rows.filter((r) => r.outcome === 'revoked' && r.verified).map((r) => (r.desiredState as { run?: string }).run).sort()).toEqual(['failing', 'lasting']);
    await waitFor('closure allowed', async () => (await stack.closureCheck(number)).data.allowed === true, 30_000);
    // Both were revoked by a run later than the one that started them.
    expect((await handle.describe()).runId).not.toBe(runBefore);
  }, 360_000);
});
