/** The API, from the dashboard's own origin, with the logged-in person's access token. */

export interface DashboardConfig {
  login: { issuer: string; clientId: string; scope: string } | null;
  temporalUi: { url: string; namespace: string } | null;
  ticketLinks: Record<string, string>;
}

export const GATE_STATES = ['waiting-authorization', 'running', 'blocked', 'allowed', 'closed'] as const;
export type GateState = (typeof GATE_STATES)[number];

export interface ChangeSummary {
  source: string;
  ticket: string;
  state: GateState;
  ticketState: string;
  phase: string | null;
  reasons: string[];
  systems: string[];
  kinds: string[];
  steps: number;
  updatedAt: string;
}

export interface ClosureCheck {
  ticket: string;
  allowed: boolean;
  reasons: string[];
  ticketState: string;
  phase?: string;
  steps: Array<{ stepId: string; kind: string; system: string; status: string; detail?: string; verifiedAt?: string }>;
  evidence: { rows: number; chainValid: boolean };
}

export interface EvidenceBundle {
  ticket: string;
  chain: { valid: boolean; rows: number; brokenAt?: { seq: number; reason: string } };
  rows: Array<{ seq: number; hash: string; stepId: string; outcome: string; verified: boolean; recordedAt?: string; actionKind?: string; system?: string }>;
}

/** An answer other than 2xx, with the API's error envelope when it sent one. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function getJson<T>(path: string, token?: string): Promise<T> {
  const res = await fetch(path, { headers: { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } });
  if (!res.ok) {
    const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
    throw new ApiError(res.status, body?.error?.message ?? `${path} answered ${res.status}`);
  }
  return (await res.json()) as T;
}
