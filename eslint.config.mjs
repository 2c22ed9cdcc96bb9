// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.data/**', '.venv/**', 'coverage/**', 'integrations/**', 'test/histories/*.json'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // dashboard/src: the browser app (React, TSX), typed by dashboard/tsconfig.json.
    files: ['**/*.ts', '**/*.tsx'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // Workflow code is replayed: it must be deterministic and reach activities only through proxies.
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: ['fs', 'node:fs', 'crypto', 'node:crypto', 'axios', 'mysql2', 'mysql2/promise', 'typeorm', 'express', 'child_process', 'node:child_process', '@temporalio/client', '@temporalio/worker', '@temporalio/activity'],
          // The domain (src/change) is pure and shared by workflows, activities and the API.
          patterns: [
            {
              group: ['../activities', '../activities/*', '../src/*', '../src/**', '!../src/change', '!../src/change/*'],
              allowTypeImports: true,
              message: 'workflows may only import types from activities and src (values only from src/change)',
            },
          ],
        },
      ],
      'no-restricted-globals': ['error', { name: 'setTimeout', message: 'use sleep() from @temporalio/workflow' }, { name: 'setInterval', message: 'use sleep() in a loop' }],
      'no-restricted-syntax': ['error', { selector: "MemberExpression[object.name='Math'][property.name='random']", message: 'Math.random is replaced in workflows; use uuid4() for ids' }],
    },
  },
  {
    // The domain is pure: the workflow bundle imports it, and it imports nothing above it.
    files: ['src/change/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*', 'fs', 'crypto', 'axios', 'typeorm', 'express', 'zod', '@temporalio/*'], message: 'src/change is pure: no I/O, no runtime dependencies' },
            { group: ['../*', '../**'], allowTypeImports: true, message: 'src/change imports only types from outside itself' },
          ],
        },
      ],
    },
  },
  { files: ['**/*.js', '**/*.mjs'], ...tseslint.configs.disableTypeChecked },
  { files: ['jest.config.js', 'jest.connectors.config.js'], languageOptions: { globals: { module: 'writable' } } },
  // The package's bin: a CommonJS launcher, so that `npx changegate` runs without a build step.
  {
    files: ['bin/*.js'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', __dirname: 'readonly', process: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
