import { createConnection, type Socket } from 'node:net';

/**
 * The upstream half of a relay for one accepted client: a connection to `target` whose answers are piped back, both
 * sockets tracked in `sockets` while open, an error on either ending it, and either side closing closing the other.
 * What the client sends is the caller's to forward (held, inspected, or written straight through).
 */
export function relayUpstream(client: Socket, target: { host: string; port: number }, sockets: Set<Socket>): Socket {
  const upstream = createConnection(target);
  for (const sock of [client, upstream]) {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => sock.destroy());
  }
  upstream.pipe(client);
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
  return upstream;
}
