import type { DataSource } from 'typeorm';
import { ensureDemoEnv, envRole } from './demo-env';
import { ApiTokenStore, DEMO_PREFIX, generateToken, tokenSha256 } from './api-tokens';
import { ROLES, type Role } from './principal';

export function demoTokenVariable(role: Role): string {
  return `CHANGEGATE_DEMO_TOKEN_${envRole(role)}`;
}

/**
 * Zero configuration: one API token per role in the demo secrets file (`CHANGEGATE_DEMO_TOKEN_OPERATOR=…`), made
 * once and never printed, so `npm start` can be tried with every role without an identity provider. Missing lines
 * are appended, other lines are left exactly as they were, and the file is kept readable by its owner only.
 */
export function ensureDemoTokenFile(file: string): Record<Role, string> {
  const values = ensureDemoEnv(file, ROLES.map((role) => [demoTokenVariable(role), generateToken] as const));
  return Object.fromEntries(ROLES.map((role) => [role, values.get(demoTokenVariable(role)) as string])) as Record<Role, string>;
}

/**
 * Registers the demo file's tokens (`demo-<role>-<first 8 hex of the hash>`, so a regenerated file gets new rows)
 * and revokes demo tokens whose value is no longer in the file. A demo token someone revoked stays revoked.
 */
export async function ensureDemoTokens(file: string, ds: DataSource): Promise<{ registered: string[]; revoked: string[] }> {
  const tokens = ensureDemoTokenFile(file);
  const store = new ApiTokenStore(ds);
  const current = new Set<string>();
  const registered: string[] = [];
  for (const role of ROLES) {
    const sha = tokenSha256(tokens[role]);
    const name = `${DEMO_PREFIX}${role}-${sha.slice(0, 8)}`;
    current.add(name);
    if (await store.findByHash(sha)) continue;
    await store.register(name, tokens[role], [role], 'launcher');
    registered.push(name);
  }
  const revoked: string[] = [];
  for (const t of await store.list()) {
    if (t.name.startsWith(DEMO_PREFIX) && !t.revokedAt && !current.has(t.name)) {
      await store.revoke(t.name, 'launcher');
      revoked.push(t.name);
    }
  }
  return { registered, revoked };
}
