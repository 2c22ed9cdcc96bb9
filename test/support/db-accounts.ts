import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type mysql from 'mysql2/promise';

const ROOT = resolve(__dirname, '../..');

/**
 * Where deploy/ grants the gateway's two accounts what they hold on `changegate`: with the accounts themselves
 * (mysql-init, before any table exists), and after every migration run (the application account's UPDATE on tables
 * the migrations make). scripts/setup.d/15-mariadb.sh gives the local accounts the same, and so does the test run.
 */
export const DEPLOY_GRANTS = { accounts: 'deploy/mysql-init/01-users.sql', afterMigrations: 'deploy/mysql-grants/changegate-app.sql' } as const;

export type GatewayAccount = 'changegate_app' | 'changegate_migrate';

/** The GRANT statements a deploy/ file gives `account` on `changegate`: the privileges, and `*` or the table. */
export function deployGrants(account: GatewayAccount, file: keyof typeof DEPLOY_GRANTS): Array<{ privileges: string; object: string }> {
  const sql = readFileSync(resolve(ROOT, DEPLOY_GRANTS[file]), 'utf8');
  return [...sql.matchAll(new RegExp(`^GRANT (.+) ON \`changegate\`\\.(\\S+) TO '${account}'@'%';$`, 'gm'))].map((m) => ({ privileges: m[1] as string, object: m[2] as string }));
}

/** The account a mysql:// URL logs in as, on 127.0.0.1 (how the tests reach the server). */
export function accountOf(url: string): { user: string; host: string; password: string; database: string } {
  const u = new URL(url);
  return { user: decodeURIComponent(u.username), host: '127.0.0.1', password: decodeURIComponent(u.password), database: decodeURIComponent(u.pathname.slice(1)) };
}

/** Gives the URL's account what the deploy/ file gives `account` on `changegate`, on the URL's database instead. */
export async function grantAsDeployed(admin: mysql.Connection, account: GatewayAccount, file: keyof typeof DEPLOY_GRANTS, url: string): Promise<void> {
  const { user, host, database } = accountOf(url);
  for (const g of deployGrants(account, file)) {
    // `_` is a wildcard in a database-level grant (escaped, it names this one database); a table-level grant takes
    // the name literally.
    const on = g.object === '*' ? `\`${database.replace(/_/g, '\\_')}\`.*` : `\`${database}\`.${g.object}`;
    await admin.query(`GRANT ${g.privileges} ON ${on} TO ?@?`, [user, host]);
  }
}

/** Makes the URL's account afresh, with what deploy/ gives `account` when it creates it (before any migration). */
export async function createDeployedAccount(admin: mysql.Connection, account: GatewayAccount, url: string): Promise<void> {
  const { user, host, password } = accountOf(url);
  await admin.query('DROP USER IF EXISTS ?@?', [user, host]);
  await admin.query('CREATE USER ?@? IDENTIFIED BY ?', [user, host, password]);
  await grantAsDeployed(admin, account, 'accounts', url);
}
