/**
 * Fixed facts of the test environment; ports and names chosen not to collide with `npm start`. CG_TEST_SLOT (0–9,
 * default 0) shifts the Temporal port and the database/account names so that two checkouts on one machine can run
 * their suites at the same time without sharing state.
 */
const slot = (() => {
  const raw = process.env.CG_TEST_SLOT ?? '0';
  if (!/^[0-9]$/.test(raw)) throw new Error(`CG_TEST_SLOT must be one digit 0-9, got ${JSON.stringify(raw)}`);
  return Number(raw);
})();
const suffix = slot === 0 ? '' : `_${slot}`;
/** The MariaDB server the suite uses: the machine's (3306), or one a run brings up itself (the fault suite's own). */
const mariadbPort = (() => {
  const raw = process.env.CG_TEST_MARIADB_PORT ?? '3306';
  if (!/^[1-9]\d{0,4}$/.test(raw) || Number(raw) > 65_535) throw new Error(`CG_TEST_MARIADB_PORT must be a TCP port, got ${JSON.stringify(raw)}`);
  return Number(raw);
})();

export const TEST_ENV = {
  temporalPort: 7244 + slot * 10,
  mariadbPort,
  adminUrl: `mysql://root@127.0.0.1:${mariadbPort}/`,
  database: `changegate_test${suffix}`,
  /**
   * The slot's application and migration accounts (@127.0.0.1), made by global-setup with the grants deploy/ gives
   * changegate_app and changegate_migrate: the stacks run as the first, the run's migrations as the second. Local
   * test accounts on the test database alone, so their passwords are fixed like the other test secrets.
   */
  appUser: `cg_test_app${suffix}`,
  migrateUser: `cg_test_migrate${suffix}`,
  databaseUrl: `mysql://cg_test_app${suffix}:test-app-password-0123456789@127.0.0.1:${mariadbPort}/changegate_test${suffix}`,
  migrationDatabaseUrl: `mysql://cg_test_migrate${suffix}:test-migrate-password-0123456789@127.0.0.1:${mariadbPort}/changegate_test${suffix}`,
  connectorUser: `cg_test_connector${suffix}`,
  targetDatabases: ['cgt_billing', 'cgt_reporting'],
  webhookSecret: 'test-webhook-secret-0123456789',
  deployWebhookSecret: 'test-deploy-secret-0123456789',
  adminToken: 'test-admin-token-0123456789abcdef',
  /** Every stack's (and every worker process's) evidence seal key: the test database keeps its rows across runs. */
  evidenceSealKey: 'test-evidence-seal-key-0123456789abcdef',
  snUser: 'changegate-int',
  snPassword: 'sn-test-password-42',
  jiraEmail: 'changegate-int@example.com',
  jiraApiToken: 'jira-test-api-token-42',
  jiraWebhookSecret: 'test-jira-webhook-secret-0123456789',
} as const;

export const temporalAddress = `127.0.0.1:${TEST_ENV.temporalPort}`;
