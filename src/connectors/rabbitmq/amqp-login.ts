import { connect, type Socket } from 'node:net';

/**
 * Just enough AMQP 0-9-1 to ask a broker "do these credentials log in?": protocol header, connection.start →
 * start-ok (PLAIN), then connection.tune means yes and connection.close (403 ACCESS_REFUSED) means no. Nothing is
 * opened: the check needs no vhost permission, so a user without any still authenticates. Used by rotation's
 * read-back, because the management API only admits users with a management tag.
 *
 * Anything else the peer says is an AmqpProtocolError: a protocol header back (it speaks another AMQP version), bytes
 * that are not AMQP frames (another service on the port), an unexpected method, or a close with another code. Asking
 * again would get the same answer, so callers treat it as final. Network failures (refused, reset, timeout, a silent
 * hang-up) stay plain errors: they may pass.
 */
const PROTOCOL_HEADER = Buffer.from([0x41, 0x4d, 0x51, 0x50, 0, 0, 9, 1]);
const FRAME_METHOD = 1;
const FRAME_HEARTBEAT = 8;
const FRAME_END = 0xce;
/** Far above what a broker sends before tuning (RabbitMQ's connection.start is ~500 bytes; frame_min_size is 4096). */
const MAX_HANDSHAKE_FRAME = 131_072;
const CONNECTION = 10;
export const Method = { start: 10, startOk: 11, secure: 20, tune: 30, tuneOk: 31, open: 40, openOk: 41, close: 50, closeOk: 51 } as const;
const ACCESS_REFUSED = 403;
/** "An operator intervened to close the connection ... The client may retry at some later date" (AMQP 0-9-1). */
const CONNECTION_FORCED = 320;

/** The peer is not an AMQP 0-9-1 broker that can answer the question, or broke the protocol: retrying cannot help. */
export class AmqpProtocolError extends Error {
  constructor(message: string, readonly replyCode?: number) {
    super(message);
    this.name = 'AmqpProtocolError';
  }
}

export interface AmqpEndpoint {
  host: string;
  port: number;
  timeoutMs?: number;
}

/**
 * True when the broker accepts the credentials, false when it refuses them (403). Throws AmqpProtocolError when the
 * peer answers anything else, and a plain error (with the socket's `code`) when the network fails.
 */
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
  /** Cut out of every protocol error's text, in case a peer echoes the start-ok back. */
  private password?: string;
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
    this.password = password;
    this.socket.write(PROTOCOL_HEADER);
    const start = await this.next();
    if (!isConnectionMethod(start, Method.start)) throw this.protocolError(`expected connection.start, got ${describe(start)}`);
    const mechanisms = startMechanisms(start.args);
    if (mechanisms === null) throw this.protocolError('connection.start is malformed');
    if (!mechanisms.includes('PLAIN')) throw this.protocolError(`the broker offers no PLAIN login (mechanisms: ${mechanisms.join(' ').slice(0, 100)})`);
    // Without this capability a broker refuses bad credentials by hanging up, indistinguishable from a fault.
    const clientProperties = table([['capabilities', { table: [['authentication_failure_close', true]] }]]);
    const response = Buffer.concat([Buffer.from([0]), Buffer.from(user, 'utf8'), Buffer.from([0]), Buffer.from(password, 'utf8')]);
    this.send(Method.startOk, Buffer.concat([clientProperties, shortstr('PLAIN'), longstr(response), shortstr('en_US')]));
    const reply = await this.next();
    if (isConnectionMethod(reply, Method.tune) && reply.args.length >= 8) {
      this.tune = reply.args;
      return true;
    }
    if (isConnectionMethod(reply, Method.close)) {
      const close = closeReason(reply.args);
      if (close?.code === ACCESS_REFUSED) return false;
      const text = close ? `connection.close ${close.code} ${close.text}` : 'a malformed connection.close';
      if (close?.code === CONNECTION_FORCED) throw Object.assign(new Error(`AMQP: the broker closed the login with ${this.redact(text)}`), { code: 'ECONNFORCED' });
      throw this.protocolError(`the broker answered the login with ${text}`, close?.code);
    }
    throw this.protocolError(`unexpected reply to connection.start-ok: ${describe(reply)}`);
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
    if (!isConnectionMethod(reply, Method.openOk)) throw this.protocolError(`connection.open refused: ${describe(reply)}`);
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
    if (this.failure) return;
    this.buffered = Buffer.concat([this.buffered, data]);
    // A broker that does not speak 0-9-1 answers with the protocol header it does speak, then hangs up.
    const head = this.buffered.subarray(0, 4).toString('latin1');
    if ('AMQP'.startsWith(head)) {
      if (this.buffered.length < 8) return;
      this.abort(this.protocolError(`the peer does not speak AMQP 0-9-1: it answered with protocol header AMQP ${[...this.buffered.subarray(4, 8)].join('-')}`));
      return;
    }
    while (this.buffered.length > 0) {
      const type = this.buffered.readUInt8(0);
      const size = this.buffered.length >= 7 ? this.buffered.readUInt32BE(3) : 0;
      if ((type !== FRAME_METHOD && type !== FRAME_HEARTBEAT) || size > MAX_HANDSHAKE_FRAME || (type === FRAME_METHOD && this.buffered.length >= 7 && size < 4)) {
        this.abort(this.protocolError(`the peer's answer is not an AMQP 0-9-1 handshake frame (starts with ${this.snippet()})`));
        return;
      }
      if (this.buffered.length < 7 + size + 1) return;
      const channel = this.buffered.readUInt16BE(1);
      const payload = this.buffered.subarray(7, 7 + size);
      const end = this.buffered.readUInt8(7 + size);
      this.buffered = this.buffered.subarray(8 + size);
      if (end !== FRAME_END) {
        this.abort(this.protocolError(`AMQP frame without its frame-end octet (got 0x${end.toString(16)})`));
        return;
      }
      if (type === FRAME_HEARTBEAT) continue;
      this.deliver({ channel, classId: payload.readUInt16BE(0), method: payload.readUInt16BE(2), args: payload.subarray(4) });
    }
  }

  private deliver(frame: MethodFrame): void {
    const w = this.waiting;
    this.waiting = undefined;
    if (w) w.resolve(frame);
    else this.frames.push(frame);
  }

  private protocolError(message: string, replyCode?: number): AmqpProtocolError {
    return new AmqpProtocolError(`AMQP: ${this.redact(message)}`, replyCode);
  }

  /** The first bytes of an unexpected answer, printable characters kept and the rest as `.`: enough to recognise it. */
  private snippet(): string {
    return JSON.stringify(this.redact(this.buffered.subarray(0, 256).toString('utf8')).slice(0, 24).replace(/[^\x20-\x7e]/g, '.'));
  }

  private redact(text: string): string {
    return this.password ? text.split(this.password).join('[secret]') : text;
  }

  /** Records a protocol failure (it wins over the hang-up that follows) and drops the connection. */
  private abort(err: Error): void {
    this.fail(err);
    this.socket.destroy();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    const w = this.waiting;
    this.waiting = undefined;
    w?.reject(this.failure);
  }
}

interface MethodFrame {
  channel: number;
  classId: number;
  method: number;
  args: Buffer;
}

function isConnectionMethod(f: MethodFrame, method: number): boolean {
  return f.channel === 0 && f.classId === CONNECTION && f.method === method;
}

function describe(f: MethodFrame): string {
  return `method ${f.classId}.${f.method} on channel ${f.channel}`;
}

/** connection.start: version octets, server-properties table, mechanisms (longstr), locales (longstr). */
function startMechanisms(args: Buffer): string[] | null {
  if (args.length < 6) return null;
  const mechanismsAt = 6 + args.readUInt32BE(2);
  if (args.length < mechanismsAt + 4) return null;
  const length = args.readUInt32BE(mechanismsAt);
  if (args.length < mechanismsAt + 4 + length) return null;
  return args.subarray(mechanismsAt + 4, mechanismsAt + 4 + length).toString('latin1').split(' ').filter(Boolean);
}

/** connection.close: reply-code (short), reply-text (shortstr), class-id, method-id. */
function closeReason(args: Buffer): { code: number; text: string } | null {
  if (args.length < 3) return null;
  const length = args.readUInt8(2);
  if (args.length < 3 + length) return null;
  return { code: args.readUInt16BE(0), text: args.subarray(3, 3 + length).toString('utf8') };
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
