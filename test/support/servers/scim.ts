import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ScimScope, ScimTokenGrant } from '../../../src/simulators/scim-server';
import { freePort, type SpawnedServer, spawnServer } from './process';

/**
 * The SCIM service provider (src/simulators/scim-server.ts, SCIMMY underneath) started as its own process on a free
 * port, with freshly generated tokens. Tests reach it only over HTTP: as the gateway, as a read-only client, and as
 * an administrator for seeding and read-back.
 */
export const GATEWAY_SCOPES: ScimScope[] = ['users:read', 'users:write', 'groups:read', 'groups:members'];
export const GATEWAY_USER = 'changegate-scim';
export const ADMIN_USER = 'scim-admin';

export interface ScimProviderOptions {
  maxPageSize?: number;
  ignoreMemberWritesFor?: string[];
  /** Token user names whose member writes the provider drops (e.g. GATEWAY_USER): the integration's revokes go nowhere. */
  ignoreMemberWritesBy?: string[];
  userGroups?: boolean;
}

export interface ScimResponse {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

export interface ScimTarget {
  /** Base URL of the SCIM endpoints, e.g. http://127.0.0.1:41234/scim/v2 */
  url: string;
  tokens: { admin: string; gateway: string; readOnly: string; rateLimited: string };
  /** A raw request with a given token (default: the administrator's). */
  request(method: string, path: string, opts?: { body?: unknown; token?: string; headers?: Record<string, string> }): Promise<ScimResponse>;
  admin: ScimAdmin;
  stop(): Promise<void>;
}

export interface ScimAdmin {
  createUser(userName: string, extra?: Record<string, unknown>): Promise<string>;
  createGroup(displayName: string): Promise<string>;
  findUser(userName: string): Promise<Record<string, unknown> | null>;
  findGroup(displayName: string): Promise<{ id: string; displayName: string; members?: { value: string }[] } | null>;
  addMember(groupId: string, userId: string): Promise<void>;
  deleteUser(userName: string): Promise<void>;
  deleteGroup(id: string): Promise<void>;
  /** Every resource of a collection, paged the way the provider pages. */
  list(collection: 'Users' | 'Groups'): Promise<Record<string, unknown>[]>;
}

const USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
const GROUP_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Group';
const PATCH_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const token = () => randomBytes(24).toString('base64url');

export async function startScimProvider(opts: ScimProviderOptions = {}): Promise<ScimTarget> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/scim/v2`;
  const tokens = { admin: token(), gateway: token(), readOnly: token(), rateLimited: token() };
  const grants: ScimTokenGrant[] = [
    { token: tokens.admin, userName: ADMIN_USER, scopes: ['users:read', 'users:write', 'groups:read', 'groups:members', 'groups:write'] },
    { token: tokens.gateway, userName: GATEWAY_USER, scopes: GATEWAY_SCOPES },
    { token: tokens.readOnly, userName: 'scim-auditor', scopes: ['users:read', 'groups:read'] },
    { token: tokens.rateLimited, userName: 'scim-throttled', scopes: GATEWAY_SCOPES, ratePerMinute: 2 },
  ];

  const request: ScimTarget['request'] = async (method, path, o = {}) => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${o.token ?? tokens.admin}`,
        Accept: 'application/scim+json',
        ...(o.body !== undefined ? { 'Content-Type': 'application/scim+json' } : {}),
        ...o.headers,
      },
      body: o.body === undefined ? undefined : JSON.stringify(o.body),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  };
  const expectStatus = (res: ScimResponse, ...ok: number[]): ScimResponse => {
    if (!ok.includes(res.status)) throw new Error(`SCIM admin request answered ${res.status}: ${JSON.stringify(res.body)}`);
    return res;
  };
  const filterQuery = (filter: string) => `filter=${encodeURIComponent(filter)}`;

  const admin: ScimAdmin = {
    createUser: async (userName, extra = {}) =>
      String(expectStatus(await request('POST', '/Users', { body: { schemas: [USER_SCHEMA], userName, active: true, ...extra } }), 201).body.id),
    createGroup: async (displayName) =>
      String(expectStatus(await request('POST', '/Groups', { body: { schemas: [GROUP_SCHEMA], displayName } }), 201).body.id),
    findUser: async (userName) => {
      const res = expectStatus(await request('GET', `/Users?${filterQuery(`userName eq ${JSON.stringify(userName)}`)}`), 200);
      return ((res.body.Resources as Record<string, unknown>[] | undefined) ?? []).find((u) => u.userName === userName) ?? null;
    },
    findGroup: async (displayName) => {
      const res = expectStatus(await request('GET', `/Groups?${filterQuery(`displayName eq ${JSON.stringify(displayName)}`)}`), 200);
      const found = ((res.body.Resources as { id: string; displayName: string; members?: { value: string }[] }[] | undefined) ?? []).find((g) => g.displayName === displayName);
      return found ?? null;
    },
    addMember: async (groupId, userId) => {
      expectStatus(
        await request('PATCH', `/Groups/${groupId}`, { body: { schemas: [PATCH_SCHEMA], Operations: [{ op: 'add', path: 'members', value: [{ value: userId }] }] } }),
        200,
        204,
      );
    },
    deleteUser: async (userName) => {
      const user = await admin.findUser(userName);
      if (user) expectStatus(await request('DELETE', `/Users/${String(user.id)}`), 204, 404);
    },
    deleteGroup: async (id) => {
      expectStatus(await request('DELETE', `/Groups/${id}`), 204, 404);
    },
    list: async (collection) => {
      const out: Record<string, unknown>[] = [];
      for (let start = 1; ; ) {
        const res = expectStatus(await request('GET', `/${collection}?startIndex=${start}&count=1000`), 200);
        const page = (res.body.Resources as Record<string, unknown>[] | undefined) ?? [];
        out.push(...page);
        start += page.length;
        if (page.length === 0 || start > Number(res.body.totalResults)) return out;
      }
    },
  };

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SCIM_PORT: String(port),
    SCIM_HOST: '127.0.0.1',
    SCIM_TOKENS: JSON.stringify(grants),
    SCIM_MAX_PAGE_SIZE: String(opts.maxPageSize ?? 50),
    SCIM_USER_GROUPS: opts.userGroups === false ? 'omit' : 'report',
    ...(opts.ignoreMemberWritesFor ? { SCIM_IGNORE_MEMBER_WRITES_FOR: JSON.stringify(opts.ignoreMemberWritesFor) } : {}),
    ...(opts.ignoreMemberWritesBy ? { SCIM_IGNORE_MEMBER_WRITES_BY: JSON.stringify(opts.ignoreMemberWritesBy) } : {}),
  };
  const server: SpawnedServer = await spawnServer(
    'SCIM provider',
    process.execPath,
    ['--import', 'tsx', 'src/simulators/scim-server-main.ts'],
    async () => (await request('GET', '/ServiceProviderConfig')).status === 200,
    { env },
  );
  return { url, tokens, request, admin, stop: () => server.stop() };
}

export interface ProxiedRequest {
  method: string;
  /** Path and query as the client sent them. */
  path: string;
  status: number;
}

export interface RecordingProxy {
  /** Base URL to give a connector instead of the provider's. */
  url: string;
  log: ProxiedRequest[];
  close(): Promise<void>;
}

/** What the provider's front end answers in its place (a load balancer's 503 while the provider restarts). */
export interface FrontEndAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

/**
 * A pass-through HTTP proxy in front of the provider that records every request. `before` runs ahead of forwarding
 * (another administrator acting concurrently); `rewrite` changes the forwarded path (to play a provider that ignores
 * a parameter). Every response is the provider's, except where `frontEnd` answers a request itself, without
 * forwarding it: the failures a SaaS provider's gateway produces and a healthy local provider cannot.
 */
export async function recordingProxy(
  target: string,
  hooks: {
    before?: (method: string, path: string) => Promise<void>;
    rewrite?: (path: string) => string;
    frontEnd?: (method: string, path: string) => FrontEndAnswer | undefined;
  } = {},
): Promise<RecordingProxy> {
  const origin = new URL(target).origin;
  const basePath = new URL(target).pathname;
  const log: ProxiedRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const method = req.method ?? 'GET';
        const path = req.url ?? '/';
        try {
          const answer = hooks.frontEnd?.(method, path);
          if (answer) {
            log.push({ method, path: path.startsWith(basePath) ? path.slice(basePath.length) : path, status: answer.status });
            const body = answer.body === undefined ? '' : JSON.stringify(answer.body);
            res.writeHead(answer.status, { ...(body ? { 'content-type': 'application/scim+json' } : {}), ...answer.headers }).end(body);
            return;
          }
          await hooks.before?.(method, path);
          const headers: Record<string, string> = {};
          for (const name of ['authorization', 'content-type', 'accept', 'if-match']) {
            const v = req.headers[name];
            if (typeof v === 'string') headers[name] = v;
          }
          const upstream = await fetch(`${origin}${hooks.rewrite ? hooks.rewrite(path) : path}`, {
            method,
            headers,
            body: chunks.length > 0 ? Buffer.concat(chunks) : undefined,
          });
          const body = Buffer.from(await upstream.arrayBuffer());
          log.push({ method, path: path.startsWith(basePath) ? path.slice(basePath.length) : path, status: upstream.status });
          const out: Record<string, string> = {};
          for (const name of ['content-type', 'etag', 'retry-after', 'www-authenticate']) {
            const v = upstream.headers.get(name);
            if (v !== null) out[name] = v;
          }
          res.writeHead(upstream.status, out).end(upstream.status === 204 ? undefined : body);
        } catch (err) {
          res.writeHead(502).end(String(err));
        }
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}${basePath}`,
    log,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
