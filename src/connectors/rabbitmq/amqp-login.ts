import { connect, type Socket } from 'node:net';

/**
 * Just enough AMQP 0-9-1 to ask a broker "do these credentials log in?": protocol header, connection.start →
 * start-ok (PLAIN), then connection.tune means yes and connection.close (403 ACCESS_REFUSED) means no. Nothing is
 * opened: the check needs no vhost permission, so a user without any still authenticates. Used by rotation's
 * read-back, because the management API only admits users with a management tag.
 */
const PROTOCOL_HEADER = Buffer.from([0x41, 0x4d, 0x51, 0x50, 0, 0, 9, 1]);
const FRAME_METHOD = 1;
const FRAME_END = 0xce;
const CONNECTION = 10;
export const Method = { start: 10, startOk: 11, tune: 30, tuneOk: 31, open: 40, openOk: 41, close: 50, closeOk: 51 } as const;

export interface AmqpEndpoint {
  host: string;
  port: number;
  timeoutMs?: number;
}

/** True when the broker accepts the credentials, false when it refuses them; anything else throws (transient). */
export async function amqpLogin(endpoint: AmqpEndpoint, user: string, password: string): Promise<boolean> {
  const session = await AmqpSession.open(endpoint);
  try {
    return await session.login(user, password);
  } finally {
    await session.close();
  }
}

/** One connection's method frames on channel 0. Exported for tests that hold a real client connection open. */
export class AmqpSession {
  private buffered = Buffer.alloc(0);
  private waiting?: { resolve: (f: MethodFrame) => void; reject: (e: Error) => void };
  private failure?: Error;
  private tune?: Buffer;
  private readonly frames: MethodFrame[] = [];

  private constructor(private readonly socket: Socket) {
    socket.on('data', (d: Buffer) => this.receive(d));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(Object.assign(new Error('the broker closed the connection'), { code: 'ECONNCLOSED' })));
  }

  static open(endpoint: AmqpEndpoint): Promise<AmqpSession> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: endpoint.host, port: endpoint.port });
      socket.setTimeout(endpoint.timeoutMs ?? 5_000, () => socket.destroy(Object.assign(new Error('AMQP handshake timed out'), { code: 'ETIMEDOUT' })));
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new AmqpSession(socket));
      });
    });
  }

  async login(user: string, password: string): Promise<boolean> {
    this.socket.write(PROTOCOL_HEADER);
    const start = await this.next();
    if (start.method !== Method.start) throw new Error(`AMQP: expected connection.start, got method ${start.method}`);
    // Without this capability a broker refuses bad credentials by hanging up, indistinguishable from a fault.
    const clientProperties = table([['capabilities', { table: [['authentication_failure_close', true]] }]]);
    const response = Buffer.concat([Buffer.from([0]), Buffer.from(user, 'utf8'), Buffer.from([0]), Buffer.from(password, 'utf8')]);
    this.send(Method.startOk, Buffer.concat([clientProperties, shortstr('PLAIN'), longstr(response), shortstr('en_US')]));
    const reply = await this.next();
    if (reply.method === Method.tune) {
      this.tune = reply.args;
      return true;
    }
    if (reply.method === Method.close && reply.args.readUInt16BE(0) === 403) return false;
    throw new Error(`AMQP: unexpected reply to start-ok (method ${reply.method})`);
  }

  /** After a successful login: finishes the handshake into `vhost`, leaving a connection the broker tracks. */
  async openVhost(vhost: string): Promise<void> {
    if (!this.tune) throw new Error('AMQP: log in first');
    this.socket.setTimeout(0);
    const tuneOk = Buffer.alloc(8);
    tuneOk.writeUInt16BE(this.tune.readUInt16BE(0), 0);
    tuneOk.writeUInt32BE(this.tune.readUInt32BE(2), 2);
    tuneOk.writeUInt16BE(0, 6); // no heartbeats: the connection is short-lived
    this.send(Method.tuneOk, tuneOk);
    this.send(Method.open, Buffer.concat([shortstr(vhost), shortstr(''), Buffer.from([0])]));
    const reply = await this.next();
    if (reply.method !== Method.openOk) throw new Error(`AMQP: connection.open refused (method ${reply.method})`);
  }

  /** Resolves when the broker has closed the connection (e.g. an administrator or a revoke closed it). */
  closedByBroker(): Promise<void> {
    return new Promise((resolve) => (this.socket.destroyed ? resolve() : this.socket.once('close', () => resolve())));
  }

  async close(): Promise<void> {
    if (this.socket.destroyed) return;
    await new Promise<void>((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.end();
      this.socket.destroySoon();
    });
  }

  private send(method: number, args: Buffer): void {
    const payload = Buffer.alloc(4 + args.length);
    payload.writeUInt16BE(CONNECTION, 0);
    payload.writeUInt16BE(method, 2);
    args.copy(payload, 4);
    const header = Buffer.alloc(7);
    header.writeUInt8(FRAME_METHOD, 0);
    header.writeUInt16BE(0, 1);
    header.writeUInt32BE(payload.length, 3);
    this.socket.write(Buffer.concat([header, payload, Buffer.from([FRAME_END])]));
  }

  private next(): Promise<MethodFrame> {
    const frame = this.frames.shift();
    if (frame) return Promise.resolve(frame);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
  }

  private receive(data: Buffer): void {
    this.buffered = Buffer.concat([this.buffered, data]);
    while (this.buffered.length >= 7) {
      const size = this.buffered.readUInt32BE(3);
      if (this.buffered.length < 7 + size + 1) return;
      const type = this.buffered.readUInt8(0);
      const payload = this.buffered.subarray(7, 7 + size);
      this.buffered = this.buffered.subarray(8 + size);
      if (type !== FRAME_METHOD || payload.readUInt16BE(0) !== CONNECTION) continue;
      this.deliver({ method: payload.readUInt16BE(2), args: payload.subarray(4) });
    }
  }

  private deliver(frame: MethodFrame): void {
    const w = this.waiting;
    this.waiting = undefined;
    if (w) w.resolve(frame);
    else this.frames.push(frame);
  }

  private fail(err: Error): void {
    this.failure ??= err;
    const w = this.waiting;
    this.waiting = undefined;
    w?.reject(this.failure);
  }
}

interface MethodFrame {
  method: number;
  args: Buffer;
}

type FieldValue = boolean | { table: [string, FieldValue][] };

function shortstr(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  return Buffer.concat([Buffer.from([b.length]), b]);
}

function longstr(b: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length, 0);
  return Buffer.concat([len, b]);
}

function table(entries: [string, FieldValue][]): Buffer {
  const body = Buffer.concat(
    entries.map(([k, v]) => Buffer.concat([shortstr(k), typeof v === 'boolean' ? Buffer.from([0x74, v ? 1 : 0]) : Buffer.concat([Buffer.from([0x46]), table(v.table)])])),
  );
  return longstr(body);
}
