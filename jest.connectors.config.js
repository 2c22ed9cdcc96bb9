/**
 * Connector tests alone, without the Temporal/MariaDB global setup: each connector test file starts or reaches its
 * own target. `npm test` runs these too, through jest.config.js.
 */
/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test/connectors'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json', isolatedModules: true }] },
  testTimeout: 60_000,
};
