/** The API, from the dashboard's own origin, with the logged-in person's access token. */

export interface DashboardConfig {
  login: { issuer: string; clientId: string; scope: string } | null;
  temporalUi: { url: string; namespace: string } | null;
  ticketLinks: Record<string, string>;
  kinds: string[];
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
  receivedAt: string;
  updatedAt: string;
}

export interface Ageing {
  basis: 'first-delivery';
  at: string;
  brackets: Array<{
    bracket: string;
    label: string;
    count: number;
    tickets: Array<{ source: string; ticket: string; state: GateState; kinds: string[]; receivedAt: string; ageDays: number }>;
  }>;
}

export interface Actor {
  kind: string;
  id: string;
  name: string;
}

/** An emergency exception as GET /api/exceptions lists it. */
export interface ExceptionItem {
  id: string;
  source: string;
  ticket: string;
  actionKind: string;
  system: string;
  identity: { name?: string; host?: string; type?: string };
  grants: string[];
  requester: string | null;
  implementer: string | null;
  grantedAt: string;
  deadline: string;
  onDeadline: string;
  status: string;
  overdue: boolean;
  timeLeftMs: number | null;
  current: { exists: boolean; stillGranted: string[] } | { error: string };
  decision: { decision: string; by: Actor; byPolicy: boolean; at: string; justification: string } | null;
}

/** A certification item as GET /api/certifications lists it. */
export interface CertificationItem {
  id: string;
  system: string;
  name: string;
  owner: string | null;
  grants: string[];
  trigger: string;
  reference: string;
  detail: string;
  reviewer: { kind: 'role'; role: string } | { kind: 'group'; group: string } | { kind: 'manager'; user: string; directory: string };
  dueAt: string;
  onTimeout: string;
  status: string;
  openedAt: string;
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

export function getJson<T>(path: string, token?: string): Promise<T> {
  return call<T>(path, { headers: { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } });
}

export function postJson<T>(path: string, body: unknown, token: string): Promise<T> {
  return call<T>(path, { method: 'POST', body: JSON.stringify(body), headers: { accept: 'application/json', 'content-type': 'application/json', authorization: `Bearer ${token}` } });
}

async function call<T>(path: string, init: RequestInit): Promise<T> {
  const res = await fetch(path, init);
  if (!res.ok) {
    const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
    throw new ApiError(res.status, body?.error?.message ?? `${path} answered ${res.status}`);
  }
  return (await res.json()) as T;
}
