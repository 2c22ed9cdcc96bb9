import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ConnectorsFile } from '../../src/connectors/registry';
import { type Stack, connectorsFile } from './stack';
import { TEST_ENV, temporalAddress } from './test-env';

/**
 * Starts the real worker entry point (src/worker-main.ts) as its own process, and resolves once it polls. `via`: the
 * worker reaches its own database (`databasePort`) and the mysql-local target (`mysqlLocalPort`) through these ports
 * on loopback (a relay in front of MariaDB) instead of MariaDB's own.
 */
export function startWorkerProcess(
  stack: Stack,
  extra: ConnectorsFile['connectors'] = [],
  via: { databasePort?: number; mysqlLocalPort?: number } = {},
  env: Record<string, string> = {},
): Promise<ChildProcess> {
  const configPath = resolve(__dirname, '../../.data/test', `connectors-${stack.taskQueue}.json`);
  const file = connectorsFile();
  file.connectors = file.connectors.map((c) => (c.type === 'mysql' && c.name === 'mysql-local' && via.mysqlLocalPort ? { ...c, port: via.mysqlLocalPort } : c));
  file.connectors.push(...extra);
  const databaseUrl = new URL(TEST_ENV.databaseUrl);
  if (via.databasePort) databaseUrl.port = String(via.databasePort);
  writeFileSync(configPath, JSON.stringify(file));
  const child = spawn(process.execPath, ['--import', 'tsx', resolve(__dirname, '../../src/worker-main.ts')], {
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl.toString(),
      TEMPORAL_ADDRESS: temporalAddress,
      TEMPORAL_NAMESPACE: 'default',
      TEMPORAL_TASK_QUEUE: stack.taskQueue,
      SERVICENOW_URL: stack.simUrl,
      SERVICENOW_USERNAME: TEST_ENV.snUser,
      SERVICENOW_PASSWORD: TEST_ENV.snPassword,
      SERVICENOW_WEBHOOK_SECRET: TEST_ENV.webhookSecret,
      // The stack's Jira simulator as the worker's Jira site (comments, the gate property, changes it opens).
      JIRA_URL: stack.jiraUrl,
      JIRA_USERNAME: TEST_ENV.jiraEmail,
      JIRA_API_TOKEN: TEST_ENV.jiraApiToken,
      JIRA_WEBHOOK_SECRET: TEST_ENV.jiraWebhookSecret,
      CHANGEGATE_ADMIN_TOKEN: TEST_ENV.adminToken,
      // The key every stack checks evidence with: the worker seals the rows it writes with it.
      CHANGEGATE_EVIDENCE_SEAL_KEY: TEST_ENV.evidenceSealKey,
      CONNECTORS_CONFIG: configPath,
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let started = false;
  return new Promise((res, rej) => {
    // A worker that neither starts nor exits within two minutes is killed and reported, never waited on for ever.
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      rej(new Error(`worker did not start within ${START_TIMEOUT_MS} ms: ${output.slice(-2000)}`));
    }, START_TIMEOUT_MS);
    const collect = (b: Buffer) => {
      // Only what start-up says is kept; a running worker's output is read and dropped.
      if (started) return;
      output += b.toString();
      if (output.includes('"worker started"')) {
        started = true;
        output = '';
        clearTimeout(timer);
        res(child);
      }
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    child.once('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`worker exited early (${code}): ${output.slice(-2000)}`));
    });
  });
}

const START_TIMEOUT_MS = 120_000;

export function killHard(child: ChildProcess): Promise<void> {
  return new Promise((res) => {
    if (child.exitCode !== null || child.signalCode !== null) return res();
    child.once('exit', () => res());
    child.kill('SIGKILL');
  });
}

