import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import mysql from 'mysql2/promise';
import { evidenceSealer } from '../../src/evidence/evidence-seal';
import { migrateDatabase } from '../../src/persistence/data-source';
import { startDevServer } from '../../src/temporal/dev-server';
import { createDeployedAccount, grantAsDeployed } from './db-accounts';
import { TEST_ENV } from './test-env';

/**
 * One real Temporal dev server (own port, in memory), one fresh MariaDB database (with the gateway's two accounts) and
 * one workflow bundle per run.
 * Ports differ from `npm start`'s so the two never collide.
 */
export default async function globalSetup(): Promise<void> {
  const root = resolve(__dirname, '../..');
  const dataDir = resolve(root, '.data/test');
  mkdirSync(dataDir, { recursive: true });

  const admin = await mysql.createConnection({ uri: TEST_ENV.adminUrl });
  await admin.query(`DROP DATABASE IF EXISTS \`${TEST_ENV.database}\``);
  for (const db of TEST_ENV.targetDatabases) {
    await admin.query(`CREATE DATABASE IF NOT EXISTS \`${db}\``);
    await admin.query(`CREATE TABLE IF NOT EXISTS \`${db}\`.invoices (id INT PRIMARY KEY)`);
  }
  // The gateway's two accounts as deploy/ makes them: the run's migrations go through the migration account (from an
  // empty database), every stack runs as the application account, which gets its UPDATE grants once the tables exist.
  await createDeployedAccount(admin, 'changegate_migrate', TEST_ENV.migrationDatabaseUrl);
  await createDeployedAccount(admin, 'changegate_app', TEST_ENV.databaseUrl);
  await migrateDatabase(TEST_ENV.migrationDatabaseUrl, { evidenceSealer: evidenceSealer(TEST_ENV.evidenceSealKey) });
  await grantAsDeployed(admin, 'changegate_app', 'afterMigrations', TEST_ENV.databaseUrl);
  await admin.end();

  // The connector runs with the same least-privilege account shape as production, under a fresh password.
  const connectorPassword = randomBytes(18).toString('base64url').replace(/[^A-Za-z0-9]/g, 'x');
  execFileSync('bash', [resolve(root, 'scripts/mysql-connector-account.sh'), TEST_ENV.connectorUser, ...TEST_ENV.targetDatabases], {
    env: { ...process.env, CONNECTOR_PASSWORD: connectorPassword, ...(TEST_ENV.mariadbPort !== 3306 ? { MARIADB_PORT: String(TEST_ENV.mariadbPort) } : {}) },
    stdio: 'inherit',
  });
  process.env.CG_TEST_CONNECTOR_PASSWORD = connectorPassword;
  // Worker processes a test starts itself (src/worker-main.ts) seal evidence with the key every stack checks it with.
  process.env.CHANGEGATE_EVIDENCE_SEAL_KEY = TEST_ENV.evidenceSealKey;

  const server = await startDevServer({ port: TEST_ENV.temporalPort, logFile: resolve(dataDir, 'temporal.log') });
  (globalThis as { __temporal?: typeof server }).__temporal = server;

  const { code } = await bundleWorkflowCode({ workflowsPath: resolve(root, 'workflows'), logger: quietLogger });
  const bundlePath = resolve(dataDir, 'workflow-bundle.js');
  writeFileSync(bundlePath, code);
  process.env.CG_TEST_BUNDLE = bundlePath;
}

const noop = () => undefined;
const quietLogger = { trace: noop, debug: noop, info: noop, warn: noop, error: console.error, log: noop };
