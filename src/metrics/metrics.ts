import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DataSource } from 'typeorm';

/**
 * What one process counts, in its own registry (not prom-client's global one: tests and benchmarks run several
 * gateways in one process). Labels are bounded sets only — source, system, kind, outcome, status, activity — never a
 * ticket number or an identity's name: those would grow without bound and put names in telemetry.
 */
export interface GatewayMetrics {
  registry: Registry;
  deliveries: Counter<'source' | 'outcome' | 'status'>;
  steps: Counter<'kind' | 'system' | 'outcome'>;
  eventToVerified: Histogram<'kind' | 'system'>;
  retries: Counter<'activity' | 'system'>;
}

// Event to verified spans a revoke that runs at once (seconds) and a grant that waits for authorization (days).
const LATENCY_BUCKETS = [0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3_600, 14_400, 86_400, 604_800];

export function createMetrics(): GatewayMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'changegate_' });
  return {
    registry,
    deliveries: new Counter({
      name: 'changegate_webhook_deliveries_total',
      help: 'Webhook deliveries answered by the API, by source and outcome (accepted, duplicate, ignored, refused) and HTTP status',
      labelNames: ['source', 'outcome', 'status'],
      registers: [registry],
    }),
    steps: new Counter({
      name: 'changegate_steps_total',
      help: 'Identity steps that ended on a target, by action kind, system and outcome (verified, failed, refused)',
      labelNames: ['kind', 'system', 'outcome'],
      registers: [registry],
    }),
    eventToVerified: new Histogram({
      name: 'changegate_event_to_verified_seconds',
      help: 'From the ticket event a step came from to its verified read-back',
      labelNames: ['kind', 'system'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    retries: new Counter({
      name: 'changegate_connector_retries_total',
      help: 'Connector activity attempts after the first (Temporal retrying a transient fault), by activity and system',
      labelNames: ['activity', 'system'],
      registers: [registry],
    }),
  };
}

/**
 * Gauges read from the database at scrape time, registered by the process that serves the API (one process per
 * deployment should, so that a sum across instances does not count a row twice).
 */
export function registerTableGauges(metrics: GatewayMetrics, ds: DataSource): void {
  const { registry } = metrics;
  new Gauge({
    name: 'changegate_open_emergency_exceptions',
    help: 'Emergency exceptions waiting for a security reviewer (open or escalated)',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      this.reset();
      const rows: Array<{ status: string; n: number | string }> = await ds.query(
        "SELECT status, COUNT(*) AS n FROM emergency_exceptions WHERE status IN ('open', 'escalated') GROUP BY status",
      );
      for (const status of ['open', 'escalated']) this.set({ status }, Number(rows.find((r) => r.status === status)?.n ?? 0));
    },
  });
  new Gauge({
    name: 'changegate_open_certifications',
    help: 'Certification items waiting for a decision (open or escalated)',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      this.reset();
      const rows: Array<{ status: string; n: number | string }> = await ds.query(
        "SELECT status, COUNT(*) AS n FROM certification_items WHERE status IN ('open', 'escalated') GROUP BY status",
      );
      for (const status of ['open', 'escalated']) this.set({ status }, Number(rows.find((r) => r.status === status)?.n ?? 0));
    },
  });
  // Both from the newest published closure view of each ticket, in one query: (ticket_key, id) is indexed, so the
  // newest row per ticket is a loose index scan.
  const latestViews = async (): Promise<{ blocked: number; outbox: number }> => {
    const rows: Array<{ blocked: number | string | null; outbox: number | string | null }> = await ds.query(
      `SELECT SUM(v.allowed = 0) AS blocked,
              SUM(JSON_SEARCH(v.body, 'one', 'waiting to deliver%', NULL, '$.reasons') IS NOT NULL) AS outbox
         FROM closure_verdicts v
         JOIN (SELECT ticket_key, MAX(id) AS id FROM closure_verdicts GROUP BY ticket_key) l ON l.id = v.id`,
    );
    return { blocked: Number(rows[0]?.blocked ?? 0), outbox: Number(rows[0]?.outbox ?? 0) };
  };
  // One read serves both gauges of a scrape: the second gauge reuses the first one's answer.
  let pending: Promise<{ blocked: number; outbox: number }> | undefined;
  const once = () => {
    pending ??= latestViews().finally(() => setImmediate(() => (pending = undefined)));
    return pending;
  };
  new Gauge({
    name: 'changegate_blocked_tickets',
    help: 'Tickets whose newest closure view does not allow closure',
    registers: [registry],
    async collect() {
      this.set((await once()).blocked);
    },
  });
  new Gauge({
    name: 'changegate_outbox_backlog_tickets',
    help: 'Tickets whose updates wait to be delivered to their ticket source (the newest closure view says so)',
    registers: [registry],
    async collect() {
      this.set((await once()).outbox);
    },
  });
}

/** The exposition text, for a listener of its own (scrapers) — never on the API's port. */
export async function listenMetrics(metrics: GatewayMetrics, listen: { port: number; host?: string }): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics is served here\n');
      return;
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      // The database's error text stays out of an unauthenticated answer.
      () => res.writeHead(503, { 'content-type': 'text/plain' }).end('metrics unavailable\n'),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host ?? '127.0.0.1', () => resolve());
  });
  const host = listen.host ?? '127.0.0.1';
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${(server.address() as AddressInfo).port}/metrics`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
