import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';

/** The machine's MariaDB, reached as root over the socket-equivalent TCP account (empty password, as installed). */
export const MARIADB_ADMIN_URL = process.env.CG_TEST_MYSQL_ADMIN_URL ?? 'mysql://root@127.0.0.1:3306/mysql';

export interface MariadbTarget {
  admin: mysql.Connection;
  /** Schemas the connector may grant on. */
  schemas: string[];
  connectorUser: string;
  connectorPassword: string;
  dispose(): Promise<void>;
}

/**
 * Fresh managed schemas and a least-privilege connector account made by the project's own
 * scripts/mysql-connector-account.sh — the same script setup uses for the demo account.
 */
export async function mariadbTarget(): Promise<MariadbTarget> {
  const tag = randomBytes(4).toString('hex');
  const admin = await mysql.createConnection({ uri: MARIADB_ADMIN_URL });
  const schemas = [`cgc${tag}a`, `cgc${tag}b`];
  for (const s of schemas) {
    await admin.query(`CREATE DATABASE \`${s}\``);
    await admin.query(`CREATE TABLE \`${s}\`.t (id INT)`);
  }
  const connectorUser = `cgcconn${tag}`;
  const connectorPassword = randomBytes(18).toString('base64url').replace(/[^A-Za-z0-9]/g, 'x');
  execFileSync('bash', ['scripts/mysql-connector-account.sh', connectorUser, ...schemas], {
    env: { ...process.env, CONNECTOR_PASSWORD: connectorPassword },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return {
    admin,
    schemas,
    connectorUser,
    connectorPassword,
    dispose: async () => {
      for (const s of schemas) await admin.query(`DROP DATABASE IF EXISTS \`${s}\``);
      await admin.query('DROP USER IF EXISTS ?@?, ?@?', [connectorUser, 'localhost', connectorUser, '127.0.0.1']);
      await admin.end();
    },
  };
}
