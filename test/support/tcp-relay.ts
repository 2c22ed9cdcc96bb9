import { createConnection, type Socket } from 'node:net';

/**
 * The upstream half of a relay for one accepted client: a connection to `target` whose answers are piped back, both
 * sockets tracked in `sockets` while open, an error on either ending it, and either side closing closing the other.
 * What the client sends is the caller's to forward (held, inspected, or written straight through).
 *
 * `flushed`: when the client goes away, the upstream connection is ended only once it resolves (the caller has
 * forwarded what it still held), as the kernel delivers what a process wrote before it was killed; without it, the
 * upstream connection is cut at once.
 */
export function relayUpstream(client: Socket, target: { host: string; port: number }, sockets: Set<Socket>, flushed?: () => Promise<void>): Socket {
  const upstream = createConnection(target);
  for (const sock of [client, upstream]) {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => sock.destroy());
  }
  upstream.pipe(client);
  client.on('close', () => {
    if (!flushed) return upstream.destroy();
    void flushed().finally(() => upstream.end());
  });
  upstream.on('close', () => client.destroy());
  return upstream;
}
