import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ConnectorsFile } from '../../src/connectors/registry';
import { type Stack, connectorsFile } from './stack';
import { TEST_ENV, temporalAddress } from './test-env';

/** Starts the real worker entry point (src/worker-main.ts) as its own process, and resolves once it polls. */
export function startWorkerProcess(stack: Stack, extra: ConnectorsFile['connectors'] = []): Promise<ChildProcess> {
  const configPath = resolve(__dirname, '../../.data/test', `connectors-${stack.taskQueue}.json`);
  const file = connectorsFile();
  file.connectors.push(...extra);
  writeFileSync(configPath, JSON.stringify(file));
  const child = spawn(process.execPath, ['--import', 'tsx', resolve(__dirname, '../../src/worker-main.ts')], {
    env: {
      ...process.env,
      DATABASE_URL: TEST_ENV.databaseUrl,
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
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  return new Promise((res, rej) => {
    const onData = (b: Buffer) => {
      output += b.toString();
      if (output.includes('"worker started"')) res(child);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (b: Buffer) => {
      output += b.toString();
    });
    child.once('exit', (code) => rej(new Error(`worker exited early (${code}): ${output.slice(-2000)}`)));
  });
}

export function killHard(child: ChildProcess): Promise<void> {
  return new Promise((res) => {
    child.once('exit', () => res());
    child.kill('SIGKILL');
  });
}

