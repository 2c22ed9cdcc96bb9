import { resolve } from 'node:path';
import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import mysql from 'mysql2/promise';
import { type Gateway, startGateway } from '../../src/gateway';
import type { ServiceNowSimulator } from '../../src/itsm/servicenow/servicenow-simulator';
import { createLogger } from '../../src/logger';
import { SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';
import { connectorsFile, quietRuntime } from './stack';
import { TEST_ENV } from './test-env';

export interface TimeSkippingGateway {
  /** Temporal's time-skipping test server: `env.sleep()` moves workflow time, `env.currentTimeMs()` reads it. */
  env: TestWorkflowEnvironment;
  gw: Gateway;
  sim: ServiceNowSimulator;
  /** MariaDB as root, for the test's own reads and set-ups. */
  admin: mysql.Connection;
  stop(): Promise<void>;
}

/**
 * Temporal's time-skipping test server from `.venv/`, with the gateway's search attributes registered as the dev
 * server registers them at start (the test server has no schedules).
 */
export async function startTimeSkippingServer(): Promise<TestWorkflowEnvironment> {
  quietRuntime();
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: resolve(__dirname, '../../.venv/bin/temporal-test-server') } },
  });
  await env.connection.operatorService.addSearchAttributes({
    namespace: 'default',
    searchAttributes: Object.fromEntries(Object.values(SEARCH_ATTRIBUTES).map((k) => [k.name, temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD])),
  });
  return env;
}

/**
 * The same gateway the other suites run (webhook, workflow, activities against the real MariaDB, the ServiceNow
 * simulator, the production back-off), on Temporal's time-skipping test server from `.venv/`: hours of workflow
 * time pass in seconds. The test server has no schedules, and its search attributes are registered here as the dev
 * server registers them at start.
 */
export async function startTimeSkippingGateway(taskQueuePrefix: string): Promise<TimeSkippingGateway> {
  const env = await startTimeSkippingServer();
  const gw = await startGateway({
    temporal: { address: env.address },
    taskQueue: `${taskQueuePrefix}-${Date.now()}`,
    discovery: false,
    databaseUrl: TEST_ENV.databaseUrl,
    connectors: connectorsFile(),
    servicenow: { simulator: { username: TEST_ENV.snUser, password: TEST_ENV.snPassword } },
    webhookSecret: TEST_ENV.webhookSecret,
    deployWebhookSecret: TEST_ENV.deployWebhookSecret,
    adminToken: TEST_ENV.adminToken,
    evidenceSealKey: TEST_ENV.evidenceSealKey,
    maxBodyBytes: 64 * 1024,
    worker: { workflowBundle: { codePath: process.env.CG_TEST_BUNDLE as string } },
    log: createLogger('test', 'error'),
  });
  const admin = await mysql.createConnection({ uri: TEST_ENV.adminUrl });
  return {
    env,
    gw,
    sim: gw.sim as ServiceNowSimulator,
    admin,
    async stop() {
      await gw.stop();
      await admin.end();
      await env.teardown();
    },
  };
}
