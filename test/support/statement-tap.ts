import { createServer, type Server, type Socket } from 'node:net';
import { relayUpstream } from './tcp-relay';

/**
 * A TCP port in front of a real MySQL/MariaDB server that reads the statements clients send (plain-text protocol,
 * COM_QUERY) and lets a test act just before one reaches the server: `onStatement` is awaited before that statement
 * is forwarded, and the client's later bytes wait behind it. Bytes are forwarded unchanged; the server is real and
 * answers everything itself. This is how a test gets between two statements of a connector deterministically (an
 * administrator's change lands after the revoke and before the read-back), with no hook in the product code.
 *
 * `onStatement` is told which client connection sent the statement (1, 2, … in the order they connected), for a test
 * that follows one connection's transaction. A client that goes away while a statement of its is held (killed, say)
 * still has it forwarded once `onStatement` is done, before the server's connection is closed: the kernel would
 * have delivered what it wrote, so the server carries out a statement whose sender never reads the answer.
 *
 * Not for TLS connections (statements would be unreadable): the connector under test must use plain TCP to loopback.
 */
export interface StatementTap {
  port: number;
  /** Every statement forwarded so far, in the order the server received them. */
  statements: string[];
  /** What onStatement threw (the statement was forwarded all the same). */
  errors: unknown[];
  /** Client connections open now (a client gone while its statement is held no longer counts). */
  readonly clients: number;
  stop(): Promise<void>;
}

const COM_QUERY = 0x03;
const HEADER = 4;

export async function startStatementTap(
  target: { host: string; port: number },
  onStatement: (sql: string, connection: number) => void | Promise<void>,
): Promise<StatementTap> {
  const sockets = new Set<Socket>();
  const statements: string[] = [];
  const errors: unknown[] = [];
  let connections = 0;
  const clients = new Set<Socket>();
  const server: Server = createServer((client) => {
    const connection = ++connections;
    clients.add(client);
    client.on('close', () => clients.delete(client));
    // Client bytes are cut into protocol packets (3-byte length, 1-byte sequence id); each packet is forwarded in
    // order, a command packet that is a query only after onStatement has finished.
    let pending = Buffer.alloc(0);
    let chain: Promise<void> = Promise.resolve();
    const upstream = relayUpstream(client, target, sockets, () => chain);
    client.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= HEADER) {
        const length = pending.readUIntLE(0, 3);
        if (pending.length < HEADER + length) break;
        const packet = pending.subarray(0, HEADER + length);
        pending = pending.subarray(HEADER + length);
        const isQuery = packet[3] === 0 && packet[HEADER] === COM_QUERY;
        chain = chain.then(async () => {
          if (isQuery) {
            const sql = packet.subarray(HEADER + 1).toString('utf8');
            client.pause();
            try {
              await onStatement(sql, connection);
            } catch (err) {
              errors.push(err);
            } finally {
              client.resume();
            }
            statements.push(sql);
          }
          if (!upstream.destroyed) upstream.write(packet);
        });
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as { port: number }).port,
    statements,
    errors,
    get clients() {
      return clients.size;
    },
    stop: async () => {
      for (const sock of sockets) sock.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
