import { connect } from 'amqplib';

/**
 * "Do these credentials log in?", asked of the broker over AMQP 0-9-1 with amqplib (the maintained client), for
 * rotation's read-back: the management API only admits users with a management tag. The client opens the default
 * vhost; the broker's answer tells the cases apart:
 * - the connection opens, or the broker refuses the vhost after tuning (530 NOT_ALLOWED on connection.open: the
 *   user authenticated but holds no rights there) → true;
 * - the login is refused (403 ACCESS_REFUSED, sent because amqplib asks for authentication_failure_close) → false;
 * - 320 CONNECTION_FORCED (the broker is shutting down) and network faults (refused, reset, timeout, a hang-up) are
 *   plain errors with a `code`: they may pass;
 * - anything else — another protocol or AMQP version, an unexpected method, another close code — is an
 *   AmqpProtocolError: asking again would get the same answer.
 */
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

const HANDSHAKE_CLOSE = /^Handshake terminated by server: (\d+)/;
/** amqplib's message when the broker closes instead of answering connection.open: authentication had succeeded. */
const CLOSED_ON_OPEN = /^Expected ConnectionOpenOk; got <ConnectionClose/;
const ACCESS_REFUSED = 403;
/** "An operator intervened to close the connection ... The client may retry at some later date" (AMQP 0-9-1). */
const CONNECTION_FORCED = 320;
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN']);

export async function amqpLogin(endpoint: AmqpEndpoint, user: string, password: string): Promise<boolean> {
  let connection: Awaited<ReturnType<typeof connect>>;
  try {
    connection = await connect(
      { protocol: 'amqp', hostname: endpoint.host, port: endpoint.port, username: user, password, vhost: '/', heartbeat: 0 },
      { timeout: endpoint.timeoutMs ?? 5_000 },
    );
  } catch (raw) {
    return classify(raw, password);
  }
  connection.on('error', () => undefined);
  await connection.close().catch(() => undefined);
  return true;
}

function classify(raw: unknown, password: string): boolean {
  const err = raw as Error & { code?: string };
  // A peer may echo what it was sent: the password never leaves in a message.
  const message = password ? String(err.message ?? '').split(password).join('[secret]') : String(err.message ?? '');
  if (CLOSED_ON_OPEN.test(message)) return true;
  const close = HANDSHAKE_CLOSE.exec(message);
  if (close) {
    const code = Number(close[1]);
    if (code === ACCESS_REFUSED) return false;
    if (code === CONNECTION_FORCED) throw Object.assign(new Error(`AMQP: the broker closed the login with ${message}`), { code: 'ECONNFORCED' });
    throw new AmqpProtocolError(`the broker answered the login with ${message}`, code);
  }
  if (err.code && NETWORK_CODES.has(err.code)) throw Object.assign(new Error(`AMQP: ${message}`), { code: err.code });
  if (message === 'connect ETIMEDOUT') throw Object.assign(new Error('AMQP handshake timed out'), { code: 'ETIMEDOUT' });
  if (/^Socket closed abruptly/.test(message)) throw Object.assign(new Error(`AMQP: ${message}`), { code: 'ECONNCLOSED' });
  throw new AmqpProtocolError(`not an AMQP 0-9-1 broker that can answer the login: ${message}`);
}
