/**
 * Operator command line for API tokens, for when no operator token is at hand yet (or to make a token with a
 * decision role, which the HTTP API refuses). Needs DATABASE_URL only (the application account).
 *
 *   node dist/src/auth/token-cli.js create <name> --role <role> [--role <role> …]   prints the token, once
 *   node dist/src/auth/token-cli.js revoke <name>
 *   node dist/src/auth/token-cli.js list
 *
 * (`npx tsx src/auth/token-cli.ts …` from a checkout.)
 */
import { userInfo } from 'node:os';
import { openDatabase } from '../persistence/data-source';
import { databaseUrlFromEnv } from '../persistence/migrate-config';
import { ApiTokenStore, DEMO_PREFIX, TOKEN_NAME } from './api-tokens';
import { isRole, ROLES, type Role } from './principal';

const USAGE = `usage: token-cli create <name> --role <role> [--role <role> ...] | revoke <name> | list
roles: ${ROLES.join(', ')}`;

class UsageError extends Error {}

export function parseArgs(argv: string[]): { command: 'create'; name: string; roles: Role[] } | { command: 'revoke'; name: string } | { command: 'list' } {
  const [command, ...rest] = argv;
  if (command === 'list' && rest.length === 0) return { command };
  const name = rest[0];
  if (!name || !TOKEN_NAME.test(name)) throw new UsageError('a token name is 1-64 of a-z 0-9 . _ -, starting with a letter or digit');
  if (name.startsWith(DEMO_PREFIX)) throw new UsageError(`names starting with '${DEMO_PREFIX}' belong to the launcher's demo tokens`);
  if (command === 'revoke' && rest.length === 1) return { command, name };
  if (command !== 'create') throw new UsageError(USAGE);
  const roles: Role[] = [];
  for (let i = 1; i < rest.length; i += 2) {
    const role = rest[i + 1];
    if (rest[i] !== '--role' || !isRole(role)) throw new UsageError(`expected --role <${ROLES.join('|')}>, got ${rest.slice(i, i + 2).join(' ')}`);
    roles.push(role);
  }
  if (roles.length === 0) throw new UsageError('a token needs at least one --role');
  return { command, name, roles };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const ds = await openDatabase(databaseUrlFromEnv());
  try {
    const store = new ApiTokenStore(ds);
    const by = `cli:${userInfo().username}`;
    if (args.command === 'create') {
      const { token, info } = await store.create(args.name, args.roles, by);
      process.stderr.write(`created API token ${info.name} (${info.roles.join(', ')}); it is shown once, below:\n`);
      process.stdout.write(`${token}\n`);
    } else if (args.command === 'revoke') {
      const info = await store.revoke(args.name, by);
      if (!info) throw new UsageError(`no API token is named ${args.name}`);
      process.stdout.write(`${info.name} revoked at ${info.revokedAt} by ${info.revokedBy}\n`);
    } else {
      for (const t of await store.list()) {
        process.stdout.write(`${t.name}\t${t.roles.join(',')}\tcreated ${t.createdAt} by ${t.createdBy}${t.revokedAt ? `\trevoked ${t.revokedAt} by ${t.revokedBy}` : ''}\n`);
      }
    }
  } finally {
    await ds.destroy();
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof UsageError ? err.message : `token-cli failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(err instanceof UsageError ? 2 : 1);
  });
}
