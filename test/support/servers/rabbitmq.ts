import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import axios, { type AxiosInstance } from 'axios';
import { connect } from 'amqplib';

/**
 * The machine's RabbitMQ (scripts/setup.d/40-rabbitmq.sh: broker on 5672, management API on 15672, guest/guest
 * from localhost). Tests work in their own vhost and with uniquely named users, and remove both afterwards.
 */
export interface RabbitTestBroker {
  url: string;
  amqpPort: number;
  /** Management API as guest (administrator). Statuses are returned, not thrown. */
  admin: AxiosInstance;
  /** A vhost of this run's own; deleted, with every permission in it, by stop(). */
  vhost: string;
  createUser(name: string, tags: string[]): Promise<string>;
  deleteUser(name: string): Promise<void>;
  /** A real AMQP connection as `name` into this run's vhost, held open until the broker closes it or stop(). */
  connectAs(name: string, password: string): Promise<AmqpClientSession>;
  stop(): Promise<void>;
}

/** An amqplib connection held open by a test. */
export interface AmqpClientSession {
  /** Resolves when the broker has closed the connection (e.g. an administrator or a revoke closed it). */
  closedByBroker(): Promise<void>;
  close(): Promise<void>;
}

export const RABBITMQ_URL = 'http://127.0.0.1:15672';
export const RABBITMQ_AMQP_PORT = 5672;

export async function useRabbitmq(): Promise<RabbitTestBroker> {
  const admin = axios.create({
    baseURL: `${RABBITMQ_URL}/api`,
    auth: { username: 'guest', password: 'guest' },
    timeout: 10_000,
    validateStatus: () => true,
  });
  const overview = await admin.get('/overview').catch((err: Error) => ({ status: 0, statusText: err.message }));
  if (overview.status !== 200) {
    throw new Error(`RabbitMQ management API at ${RABBITMQ_URL} answered ${overview.status} ${overview.statusText}: run bash scripts/setup.sh`);
  }
  const vhost = `cgt-${randomBytes(4).toString('hex')}`;
  const must = async (p: Promise<{ status: number; data: unknown }>, what: string): Promise<void> => {
    const r = await p;
    if (r.status >= 300 && r.status !== 404) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.data)}`);
  };
  await must(admin.put(`/vhosts/${encodeURIComponent(vhost)}`), `create vhost ${vhost}`);
  const sessions: AmqpClientSession[] = [];
  return {
    url: RABBITMQ_URL,
    amqpPort: RABBITMQ_AMQP_PORT,
    admin,
    vhost,
    async createUser(name, tags) {
      const password = randomBytes(18).toString('base64url');
      await must(admin.put(`/users/${encodeURIComponent(name)}`, { password, tags }), `create user ${name}`);
      return password;
    },
    async deleteUser(name) {
      await must(admin.delete(`/users/${encodeURIComponent(name)}`), `delete user ${name}`);
    },
    async connectAs(name, password) {
      const connection = await connect({ protocol: 'amqp', hostname: '127.0.0.1', port: RABBITMQ_AMQP_PORT, username: name, password, vhost, heartbeat: 0 });
      let open = true;
      const closed = new Promise<void>((resolve) => connection.once('close', () => resolve()));
      void closed.then(() => (open = false));
      // The broker closing the connection is what the tests wait for, not a failure.
      connection.on('error', () => undefined);
      const session: AmqpClientSession = {
        closedByBroker: () => closed,
        close: async () => {
          if (open) await connection.close().catch(() => undefined);
        },
      };
      sessions.push(session);
      return session;
    },
    async stop() {
      for (const s of sessions) await s.close();
      await must(admin.delete(`/vhosts/${encodeURIComponent(vhost)}`), `delete vhost ${vhost}`);
    },
  };
}

export interface Relay {
  url: string;
  /** Requests the relay cut off instead of forwarding, as `METHOD /api/...`. */
  cut: string[];
  stop(): Promise<void>;
}

/**
 * The real management API behind a relay that drops the connection, unanswered, for requests `cut` selects: what a
 * load balancer timing out or a broker restarting mid-request looks like to the client. Everything else is
 * forwarded to the broker unchanged.
 */
export async function relayManagementApi(cut: (method: string, path: string) => boolean): Promise<Relay> {
  const target = new URL(RABBITMQ_URL);
  const cutOff: string[] = [];
  const server = createHttpServer((req, res) => {
    if (cut(req.method ?? '', req.url ?? '')) {
      cutOff.push(`${req.method} ${req.url}`);
      req.resume();
      req.socket.destroy();
      return;
    }
    const upstream = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('relay has no address');
  return {
    url: `http://127.0.0.1:${address.port}`,
    cut: cutOff,
    stop: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

export interface ForeignPeer {
  port: number;
  stop(): Promise<void>;
}

/**
 * Something other than an AMQP 0-9-1 broker listening where the connector expects one (a misconfigured amqpPort, an
 * AMQP 1.0-only broker, a broker variant). RabbitMQ itself cannot be made to answer a well-formed login with
 * anything but tune, close 403 or a silent hang-up, so these answers come from here. `answer` gets the client's
 * bytes as they arrive and writes whatever that peer would.
 */
export async function startForeignPeer(answer: (socket: Socket, received: Buffer) => void): Promise<ForeignPeer> {
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let received = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      received = Buffer.concat([received, d]);
      answer(socket, received);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('peer has no address');
  return {
    port: address.port,
    stop: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

/** Method ids of the AMQP 0-9-1 connection class, for a foreign peer to send. */
export const Method = { start: 10, startOk: 11, secure: 20, tune: 30, tuneOk: 31, open: 40, openOk: 41, close: 50, closeOk: 51 } as const;

/** One AMQP 0-9-1 method frame on channel 0 of the connection class, for a foreign peer to send. */
export function connectionMethodFrame(method: number, args: Buffer): Buffer {
  const payload = Buffer.alloc(4 + args.length);
  payload.writeUInt16BE(10, 0);
  payload.writeUInt16BE(method, 2);
  args.copy(payload, 4);
  const header = Buffer.alloc(7);
  header.writeUInt8(1, 0);
  header.writeUInt16BE(0, 1);
  header.writeUInt32BE(payload.length, 3);
  return Buffer.concat([header, payload, Buffer.from([0xce])]);
}

/** connection.start arguments: version 0-9, no server properties, the given mechanisms, locale en_US. */
export function connectionStartArgs(mechanisms: string): Buffer {
  const longstr = (s: string): Buffer => {
    const b = Buffer.from(s, 'latin1');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length, 0);
    return Buffer.concat([len, b]);
  };
  return Buffer.concat([Buffer.from([0, 9]), longstr(''), longstr(mechanisms), longstr('en_US')]);
}

/** connection.close arguments: reply code and text, no failing method. */
export function connectionCloseArgs(code: number, text: string): Buffer {
  const t = Buffer.from(text, 'utf8');
  const head = Buffer.alloc(2);
  head.writeUInt16BE(code, 0);
  return Buffer.concat([head, Buffer.from([t.length]), t, Buffer.alloc(4)]);
}
