/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json', isolatedModules: true }],
    // jose, oidc-provider (the demo identity provider) and canonicalize (the JCS reference the canonical-JSON test
    // compares with) ship ES modules only. Node (>= 20.19) loads them through require(esm); Jest's own loader does
    // not, so for the tests alone they are compiled to CommonJS.
    '^.+/node_modules/(jose|canonicalize|oidc-provider)/.+\\.js$': ['ts-jest', { tsconfig: { allowJs: true }, isolatedModules: true }],
  },
  transformIgnorePatterns: ['/node_modules/(?!jose/|canonicalize/|oidc-provider/)'],
  testTimeout: 60_000,
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
};
