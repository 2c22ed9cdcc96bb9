/** The report routes' answers (src/api/openapi.ts documents them), and how the ops views show their numbers. */
import type { KindShare, LatencyPoint, LiveCredential, TargetHealth } from '../../../src/reports/shapes';

export type { KindShare, TargetHealth };

export interface LatencyReport {
  since: string;
  until: string;
  bucket: 'hour' | 'day';
  overall: { verified: number; p50Ms: number | null; p95Ms: number | null };
  points: LatencyPoint[];
}

export interface DeployCredentials {
  minted: number;
  revoked: number;
  live: number;
  failedRevocations: number;
  bySystem: Array<{ system: string; minted: number; revoked: number; live: number }>;
  credentials: LiveCredential[];
}

export interface InventoryItem {
  id: string;
  system: string;
  name: string;
  host: string;
  type: string;
  owner: string | null;
  workload: string | null;
  grants: Array<{ grant: string; tickets: string[] }>;
  status: string;
  changedAt: string;
}

/** The windows a report can be asked for, each with the bucket its chart uses. */
export const WINDOWS = {
  '24h': { label: 'last 24 hours', ms: 86_400_000, bucket: 'hour' },
  '7d': { label: 'last 7 days', ms: 7 * 86_400_000, bucket: 'day' },
  '30d': { label: 'last 30 days', ms: 30 * 86_400_000, bucket: 'day' },
} as const;
export type WindowName = keyof typeof WINDOWS;

export function windowQuery(name: WindowName, extra: Record<string, string> = {}): URLSearchParams {
  const w = WINDOWS[name];
  const params = new URLSearchParams({ since: new Date(Date.now() - w.ms).toISOString(), ...extra });
  for (const [k, v] of [...params]) if (v === '') params.delete(k);
  return params;
}

export const percent = (r: number | null) => (r === null ? '–' : `${Math.round(r * 1000) / 10} %`);

export function duration(ms: number | null): string {
  if (ms === null) return '–';
  if (ms < 1_000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

export const ticketHref = (source: string, ticket: string) => `#/changes/${encodeURIComponent(source)}/${encodeURIComponent(ticket)}`;
