/** Fixed facts of the test environment; ports and names chosen not to collide with `npm start`. */
export const TEST_ENV = {
  temporalPort: 7244,
  adminUrl: 'mysql://root@127.0.0.1:3306/',
  database: 'changegate_test',
  databaseUrl: 'mysql://root@127.0.0.1:3306/changegate_test',
  connectorUser: 'cg_test_connector',
  targetDatabases: ['cgt_billing', 'cgt_reporting'],
  webhookSecret: 'test-webhook-secret-0123456789',
  adminToken: 'test-admin-token-0123456789abcdef',
  snUser: 'changegate-int',
  snPassword: 'sn-test-password-42',
} as const;

export const temporalAddress = `127.0.0.1:${TEST_ENV.temporalPort}`;
