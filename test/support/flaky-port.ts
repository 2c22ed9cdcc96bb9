import { createServer, type Server, type Socket } from 'node:net';
import { relayUpstream } from './tcp-relay';

/**
 * A TCP port in front of a real server that can be taken away and given back: while it is down, connections are
 * refused and the ones open are cut, as when a target system's host goes away. While it is held, connections are
 * accepted and what the server says reaches the client, but nothing the client sends reaches the server: a call in
 * flight hangs, as behind a stalled network. The real server is never touched.
 */
export interface FlakyPort {
  port: number;
  down(): Promise<void>;
  up(): Promise<void>;
  /** From now on, nothing any client sends is forwarded (it is kept, and forwarded on release). */
  hold(): void;
  release(): void;
  stop(): Promise<void>;
}

export async function startFlakyPort(target: { host: string; port: number }): Promise<FlakyPort> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  let held = false;
  const waiting = new Set<() => void>();
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer((client) => {
        const upstream = relayUpstream(client, target, sockets);
        client.on('data', (chunk: Buffer) => {
          const send = () => {
            if (!upstream.destroyed) upstream.write(chunk);
          };
          if (!held) return send();
          // Kept in order behind anything held before it.
          client.pause();
          const resume = () => {
            waiting.delete(resume);
            send();
            client.resume();
          };
          waiting.add(resume);
        });
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        port = (s.address() as { port: number }).port;
        server = s;
        resolve();
      });
    });
  const down = async () => {
    const s = server;
    server = undefined;
    for (const sock of sockets) sock.destroy();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  await listen();
  return {
    get port() {
      return port;
    },
    down,
    up: async () => {
      if (!server) await listen();
    },
    hold: () => {
      held = true;
    },
    release: () => {
      held = false;
      for (const resume of [...waiting]) resume();
    },
    stop: down,
  };
}
