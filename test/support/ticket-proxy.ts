import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request the proxy saw, with the status it was answered with (none when its answer was lost). */
export interface ProxiedRequest {
  method: string;
  path: string;
  body: Record<string, unknown>;
  status?: number;
}

export type ProxyFault = 'refuse' | 'lose-answer' | undefined;

/**
 * A proxy in front of a ticket system's API (the ServiceNow simulator) that forwards every request and, for each one
 * `fault` picks, either refuses it (403, as an ACL would: nothing lands) or lets it land and loses the answer (the
 * connection is cut after the write reached the simulator). `seen` lists every request in order.
 */
export async function ticketProxy(target: string, fault: (req: ProxiedRequest) => ProxyFault) {
  const seen: ProxiedRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const entry: ProxiedRequest = { method: req.method ?? '', path: req.url ?? '', body: raw.length > 0 ? (JSON.parse(raw.toString('utf8')) as Record<string, unknown>) : {} };
      seen.push(entry);
      const what = fault(entry);
      if (what === 'refuse') {
        entry.status = 403;
        res.writeHead(403, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'User Not Authorized', detail: 'ACL Exception Update Failed due to security constraints' }, status: 'failure' }));
        return;
      }
      const upstream = http.request(`${target}${req.url ?? ''}`, { method: req.method, headers: req.headers }, (answer) => {
        const body: Buffer[] = [];
        answer.on('data', (c: Buffer) => body.push(c));
        answer.on('end', () => {
          // The write has landed in the simulator; the caller never hears so.
          if (what === 'lose-answer') {
            req.socket.destroy();
            return;
          }
          entry.status = answer.statusCode ?? 502;
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          res.end(Buffer.concat(body));
        });
      });
      upstream.end(raw);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
