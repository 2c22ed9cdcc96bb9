import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { uniqueAccount, waitFor } from './support/stack';
import { startStatementTap } from './support/statement-tap';
import { TEST_ENV } from './support/test-env';

/**
 * The statement tap in front of the real MariaDB (test/support/statement-tap.ts), as the fault suite uses it to kill
 * a worker while one of its statements is on the way: the statement still reaches the server.
 */
describe('the statement tap', () => {
  it("forwards a statement it held after its sender went away (as the kernel delivers what a killed process wrote), and names each statement's connection", async () => {
    const admin = await mysql.createConnection({ uri: TEST_ENV.adminUrl });
    const name = uniqueAccount('tap');
    let release = () => undefined as void;
    const released = new Promise<void>((r) => (release = r));
    const seen: Array<{ sql: string; connection: number }> = [];
    const tap = await startStatementTap({ host: '127.0.0.1', port: TEST_ENV.mariadbPort }, async (sql, connection) => {
      seen.push({ sql, connection });
      if (sql.startsWith('CREATE USER')) await released;
    });
    try {
      const first = await mysql.createConnection({ host: '127.0.0.1', port: tap.port, user: 'root' });
      await first.query('SELECT 1');
      await first.end();
      const sender = await mysql.createConnection({ host: '127.0.0.1', port: tap.port, user: 'root' });
      void sender.query('CREATE USER ?@? IDENTIFIED BY ?', [name, '%', randomBytes(12).toString('hex')]).catch(() => undefined);
      await waitFor('the statement held', () => seen.some((s) => s.sql.startsWith('CREATE USER')));
      // The sender goes away while its statement is held; once the tap has seen it go, the tap lets the statement go.
      sender.destroy();
      await waitFor('the sender gone', () => tap.clients === 0);
      release();
      await waitFor('the account made', async () => {
        const [rows] = await admin.query<mysql.RowDataPacket[]>('SELECT COUNT(*) AS n FROM mysql.user WHERE User = ?', [name]);
        return Number(rows[0]?.n) > 0;
      });
      expect(seen.filter((s) => s.sql === 'SELECT 1')).toEqual([{ sql: 'SELECT 1', connection: 1 }]);
      expect(seen.find((s) => s.sql.startsWith('CREATE USER'))?.connection).toBe(2);
      expect(tap.errors).toEqual([]);
    } finally {
      release();
      await tap.stop();
      await admin.query('DROP USER IF EXISTS ?@?', [name, '%']);
      await admin.end();
    }
  });
});
