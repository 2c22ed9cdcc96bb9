import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomInt } from 'node:crypto';
import axios from 'axios';
import type { Role } from '../src/auth/principal';
import { type Stack, startStack } from './support/stack';
import { TEST_ENV } from './support/test-env';

/** schemathesis from the project's venv (scripts/setup.d/85-schemathesis.sh); SCHEMATHESIS_BIN points elsewhere. */
const SCHEMATHESIS = process.env.SCHEMATHESIS_BIN ?? resolve(__dirname, '../.venv/bin/schemathesis');
/**
 * Generated requests per operation and phase: enough to reach every refusal path, few enough for a minute or two.
 * CG_FUZZ_EXAMPLES raises it for a deeper local run.
 */
const MAX_EXAMPLES = Number(process.env.CG_FUZZ_EXAMPLES ?? 12);

/**
 * The property-based fuzzer against the running stack, driven by /openapi.json: every operation gets generated valid
 * and invalid requests (schemathesis' examples, coverage and fuzzing phases) with a token that passes its gate. No
 * answer may be a 5xx (`not_a_server_error`), and each must have a status, content type and body the document gives
 * for it. The seed is random and printed on failure, to replay it.
 */
describe('schemathesis against /openapi.json', () => {
  let stack: Stack;
  let dir: string;
  beforeAll(async () => {
    stack = await startStack();
    dir = mkdtempSync(join(tmpdir(), 'cg-fuzz-'));
  });
  afterAll(async () => {
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function fuzz(token: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; output: string }> {
    return new Promise((res) => {
      execFile(
        SCHEMATHESIS,
        [
          'run', `${stack.apiUrl}/openapi.json`,
          '--header', `Authorization: Bearer ${token}`,
          // No 5xx; and every answer's status, content type and body as the document says.
          '--checks', 'not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance',
          '--phases', 'examples,coverage,fuzzing',
          '--max-examples', String(MAX_EXAMPLES),
          '--workers', '1',
          '--request-timeout', '30',
          '--suppress-health-check', 'all',
          '--no-color',
          ...args,
        ],
        // Its own working directory: schemathesis writes its cache (.hypothesis) where it runs.
        { cwd: dir, timeout: 170_000, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, NO_COLOR: '1', ...env } },
        (err, stdout, stderr) => res({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, output: `${stdout}\n${stderr}` }),
      );
    });
  }

  it('finds no server error and no answer the document does not describe, with a token each operation admits', async () => {
    if (!existsSync(SCHEMATHESIS)) throw new Error(`${SCHEMATHESIS} is missing: npm run setup installs it (scripts/setup.d/85-schemathesis.sh)`);
    const doc = (await axios.get(`${stack.apiUrl}/openapi.json`)).data as { paths: Record<string, Record<string, { 'x-changegate-roles'?: Role[] }>> };
    const operations = Object.values(doc.paths).reduce((n, ops) => n + Object.keys(ops).length, 0);
    // An operator passes most gates; the routes it does not pass are fuzzed again with the first role they admit.
    const runs: Array<{ role: Role; args: string[]; env?: Record<string, string> }> = [{ role: 'operator', args: [] }];
    const others = new Map<Role, Set<string>>();
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const roles of Object.values(ops).map((op) => op['x-changegate-roles'])) {
        if (roles && !roles.includes('operator')) others.set(roles[0]!, (others.get(roles[0]!) ?? new Set()).add(path));
      }
    }
    for (const [role, paths] of others) runs.push({ role, args: [...paths].flatMap((p) => ['--include-path', p]) });
    // The webhooks again, each delivery signed as its sender signs it (test/support/fuzz_hooks.py), so that generated
    // bodies get past the signature check to the parsers and the workflow engine.
    runs.push({
      role: 'operator',
      args: ['--include-path', '/webhooks/{source}', '--include-path', '/webhooks/deploy'],
      env: {
        SCHEMATHESIS_HOOKS: resolve(__dirname, 'support/fuzz_hooks.py'),
        CG_FUZZ_SERVICENOW_SECRET: TEST_ENV.webhookSecret,
        CG_FUZZ_JIRA_SECRET: TEST_ENV.jiraWebhookSecret,
        CG_FUZZ_DEPLOY_SECRET: TEST_ENV.deployWebhookSecret,
      },
    });
    for (const run of runs) {
      const seed = randomInt(1, 2 ** 31);
      const { token } = await stack.tokenFor(run.role);
      const { code, output } = await fuzz(token, [...run.args, '--seed', String(seed)], run.env);
      expect({ role: run.role, seed, code, output: code === 0 ? '' : output.slice(-6000) }).toEqual({ role: run.role, seed, code: 0, output: '' });
      // Every selected operation was exercised (none skipped as untestable), and the operator run selected them all
      // but GET /openapi.json, which schemathesis leaves out when it loads the document from that URL.
      const selected = /Selected: (\d+)\/(\d+)/.exec(output);
      const tested = /Tested: (\d+)/.exec(output);
      expect({ role: run.role, selected: Number(selected?.[1]), tested: Number(tested?.[1]) }).toEqual({ role: run.role, selected: Number(selected?.[1]), tested: Number(selected?.[1]) });
      if (run.args.length === 0) expect(Number(selected?.[1])).toBe(operations - 1);
      // Signed, the webhooks answer more than 401: the generated bodies reached the parsers.
      if (run.env) expect({ role: run.role, unauthenticated: /Authentication failed.*/.exec(output)?.[0] }).toEqual({ role: run.role, unauthenticated: undefined });
    }
  }, 400_000);
});
