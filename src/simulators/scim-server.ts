import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import express, { type NextFunction, type Request, type Response } from 'express';
import SCIMMY from 'scimmy';
import { SCIMMYRouters } from 'scimmy-routers';

/**
 * A SCIM 2.0 service provider (RFC 7643/7644) for tests and local demos, standing in for a SaaS application's SCIM
 * endpoint (what Okta or Entra ID provisioning pushes to, and what the gateway's SCIM connector talks to).
 * The protocol is SCIMMY's: filter parsing and matching, PatchOp, schema coercion (read-only attributes dropped),
 * list responses and the error envelope; scimmy-routers supplies the express endpoints. What this file adds is what
 * SCIMMY leaves to an implementer: an in-memory store behind ingress/egress/degress, ids and meta (created,
 * lastModified, version as a weak ETag), uniqueness, bearer tokens with scopes, If-Match, a page-size cap, and two
 * behaviour switches that real providers exhibit (see `ScimServerOptions`).
 *
 * SCIMMY keeps its resource handlers and config in process-wide statics, so a process holds one provider.
 */

/** What a token may do. A gateway needs `users:read users:write groups:read groups:members`, nothing else. */
export const SCIM_SCOPES = ['users:read', 'users:write', 'groups:read', 'groups:members', 'groups:write'] as const;
export type ScimScope = (typeof SCIM_SCOPES)[number];

export interface ScimTokenGrant {
  token: string;
  /** The SCIM user this token acts as: created at start-up, returned by /Me. */
  userName: string;
  scopes: ScimScope[];
  /** Requests allowed in any 60-second window; over it the provider answers 429 with Retry-After. */
  ratePerMinute?: number;
}

export interface ScimServerOptions {
  tokens: ScimTokenGrant[];
  /** Largest page a list answers, whatever `count` asks (the provider's filter.maxResults). Default 50. */
  maxPageSize?: number;
  /**
   * Groups whose membership the provider owns (rule-based or synced groups in real SaaS): member writes are answered
   * 2xx and silently dropped. A behaviour switch for showing that a 2xx is not proof; off unless names are given.
   */
  ignoreMemberWritesFor?: string[];
  /**
   * Clients (token user names) whose member writes are answered 2xx and silently dropped, on every group: a provider
   * whose own sync puts memberships back, as the integration sees it. The administrator's writes still land, so a
   * test can seed a membership that the integration then fails to remove. Off unless names are given.
   */
  ignoreMemberWritesBy?: string[];
  /** Whether User resources carry the read-only `groups` attribute (RFC 7643 §4.1.2 makes it optional). Default true. */
  userGroups?: boolean;
}

export interface ListeningScimServer {
  /** Base URL of the SCIM endpoints, e.g. http://127.0.0.1:8095/scim/v2 */
  url: string;
  close(): Promise<void>;
}

export interface ScimServer {
  app: express.Express;
  listen(port?: number, host?: string): Promise<ListeningScimServer>;
}

export const SCIM_BASE_PATH = '/scim/v2';
const ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error';

interface Stored {
  id: string;
  created: Date;
  lastModified: Date;
  version: number;
}
interface StoredUser extends Stored {
  /** Every writable attribute SCIMMY accepted, as plain JSON (no id, meta, groups or password). */
  data: Record<string, unknown>;
}
interface StoredGroup extends Stored {
  displayName: string;
  externalId?: string;
  members: string[];
}

interface Principal {
  userId: string;
  scopes: Set<ScimScope>;
  grant: ScimTokenGrant;
}

let created = false;

export function createScimServer(opts: ScimServerOptions): ScimServer {
  if (created) throw new Error('SCIMMY holds its handlers in process-wide statics: one SCIM provider per process');
  created = true;
  const maxPageSize = opts.maxPageSize ?? 50;
  const ignoredGroups = new Set(opts.ignoreMemberWritesFor ?? []);
  const ignoredWriters = new Set(opts.ignoreMemberWritesBy ?? []);
  // Who is writing, for the handlers SCIMMY calls without the request.
  const writer = new AsyncLocalStorage<string>();
  const users = new Map<string, StoredUser>();
  const groups = new Map<string, StoredGroup>();

  const etag = (r: Stored): string => `W/"${r.version}"`;
  const meta = (r: Stored, resourceType: string) => ({ resourceType, created: r.created, lastModified: r.lastModified, version: etag(r) });
  const touch = (r: Stored): void => {
    r.version++;
    r.lastModified = new Date();
  };
  const groupsOf = (userId: string) =>
    [...groups.values()].filter((g) => g.members.includes(userId)).map((g) => ({ value: g.id, display: g.displayName, type: 'direct' }));
  const userOut = (u: StoredUser) => ({ ...u.data, id: u.id, ...(opts.userGroups === false ? {} : { groups: groupsOf(u.id) }), meta: meta(u, 'User') });
  const groupOut = (g: StoredGroup) => ({
    id: g.id,
    displayName: g.displayName,
    ...(g.externalId ? { externalId: g.externalId } : {}),
    members: g.members.map((value) => ({ value, display: String(users.get(value)?.data.userName ?? ''), type: 'User' })),
    meta: meta(g, 'Group'),
  });
  // SCIMMY's types say scimType is a string; its runtime takes null for "none", which is what a 404 needs.
  const scimError = (status: number, detail: string, scimType?: string) => new SCIMMY.Types.Error(status, scimType ?? (null as unknown as string), detail);

  // SCIMMY hands handlers a coerced schema instance; JSON is its wire form with unknown and read-only attributes gone.
  // The provider keeps no passwords: it authenticates nobody but its API tokens.
  const plain = (instance: unknown): Record<string, unknown> => {
    const data = JSON.parse(JSON.stringify(instance)) as Record<string, unknown>;
    for (const key of ['schemas', 'id', 'meta', 'groups', 'password']) delete data[key];
    return data;
  };

  const findUser = (id: string | undefined): StoredUser => {
    const u = id === undefined ? undefined : users.get(id);
    if (!u) throw scimError(404, `Resource ${id} not found`);
    return u;
  };
  const findGroup = (id: string | undefined): StoredGroup => {
    const g = id === undefined ? undefined : groups.get(id);
    if (!g) throw scimError(404, `Resource ${id} not found`);
    return g;
  };

  function writeUser(id: string | undefined, data: Record<string, unknown>): StoredUser {
    const userName = String(data.userName ?? '');
    // userName is caseExact=false with server uniqueness (RFC 7643 §4.1.1): a case variant is the same name.
    const clash = [...users.values()].find((u) => u.id !== id && String(u.data.userName).toLowerCase() === userName.toLowerCase());
    if (clash) throw scimError(409, `userName '${userName}' is already in use`, 'uniqueness');
    if (id === undefined) {
      const now = new Date();
      const u: StoredUser = { id: randomUUID(), created: now, lastModified: now, version: 1, data };
      users.set(u.id, u);
      return u;
    }
    const u = findUser(id);
    if (!isDeepStrictEqual(u.data, data)) {
      u.data = data;
      touch(u);
    }
    return u;
  }

  // Handlers return plain objects, which SCIMMY coerces through its schema classes; its typings want those classes,
  // hence `as never` on what the handlers return.
  SCIMMY.Resources.declare(SCIMMY.Resources.User)
    .egress((resource) => {
      if (resource.id) return userOut(findUser(resource.id)) as never;
      const all = [...users.values()].map(userOut);
      return (resource.filter ? resource.filter.match(all) : all) as never;
    })
    .ingress((resource, instance) => userOut(writeUser(resource.id, plain(instance))) as never)
    .degress((resource) => {
      const u = findUser(resource.id);
      users.delete(u.id);
      // RFC 7644 §3.6: the provider removes a deleted user from its groups.
      for (const g of groups.values()) {
        if (g.members.includes(u.id)) {
          g.members = g.members.filter((m) => m !== u.id);
          touch(g);
        }
      }
    });

  SCIMMY.Resources.declare(SCIMMY.Resources.Group)
    .egress((resource) => {
      if (resource.id) return groupOut(findGroup(resource.id)) as never;
      const all = [...groups.values()].map(groupOut);
      return (resource.filter ? resource.filter.match(all) : all) as never;
    })
    .ingress((resource, instance) => {
      const data = plain(instance);
      const displayName = String(data.displayName ?? '');
      const clash = [...groups.values()].find((g) => g.id !== resource.id && g.displayName.toLowerCase() === displayName.toLowerCase());
      if (clash) throw scimError(409, `displayName '${displayName}' is already in use`, 'uniqueness');
      const asked = [...new Set(((data.members as { value?: unknown }[] | undefined) ?? []).map((m) => String(m.value)))];
      for (const value of asked) {
        if (!users.has(value)) throw scimError(400, `member '${value}' is not a User of this provider`, 'invalidValue');
      }
      const existing = resource.id === undefined ? undefined : findGroup(resource.id);
      const dropped = ignoredGroups.has(displayName) || ignoredWriters.has(writer.getStore() ?? '');
      const members = dropped ? (existing?.members ?? []) : asked;
      const externalId = typeof data.externalId === 'string' ? data.externalId : undefined;
      if (!existing) {
        const now = new Date();
        const g: StoredGroup = { id: randomUUID(), created: now, lastModified: now, version: 1, displayName, externalId, members };
        groups.set(g.id, g);
        return groupOut(g) as never;
      }
      const next = { displayName, externalId, members };
      if (!isDeepStrictEqual({ displayName: existing.displayName, externalId: existing.externalId, members: existing.members }, next)) {
        Object.assign(existing, next);
        touch(existing);
      }
      return groupOut(existing) as never;
    })
    .degress((resource) => {
      groups.delete(findGroup(resource.id).id);
    });

  const principals = opts.tokens.map((grant) => {
    const u = writeUser(undefined, { userName: grant.userName, active: true });
    return { grant, userId: u.id, scopes: new Set(grant.scopes), secret: Buffer.from(grant.token, 'utf8') };
  });
  const authenticate = (header: string | undefined): Principal | undefined => {
    const match = /^Bearer ([^\s]+)$/i.exec(header ?? '');
    if (!match?.[1]) return undefined;
    const offered = Buffer.from(match[1], 'utf8');
    return principals.find((p) => p.secret.length === offered.length && timingSafeEqual(p.secret, offered));
  };

  const routers = new SCIMMYRouters({
    type: 'bearer',
    handler: (req) => principalOf(req).userId,
    context: (req) => ({ principal: principalOf(req) }),
  });
  // Set after the routers, which switch bulk on: this provider offers no /Bulk (one write per request keeps If-Match exact).
  SCIMMY.Config.set({ bulk: false, etag: true, changePassword: false, filter: maxPageSize });

  const app = express();
  app.disable('x-powered-by');
  // Express's own ETag is a hash of the body; SCIM's is meta.version, set below for single resources.
  app.set('etag', false);
  app.use(SCIM_BASE_PATH, express.json({ type: ['application/scim+json', 'application/json'], limit: '1mb' }));
  // Express 5 re-parses req.query on every read, so scimmy-routers' cast of startIndex/count to numbers is lost and
  // SCIMMY then ignores both (every page starts at 1). Pin a parsed copy with numbers, and cap a list's page size.
  app.use(SCIM_BASE_PATH, (req: Request, _res: Response, next: NextFunction) => {
    const search = req.originalUrl.includes('?') ? req.originalUrl.slice(req.originalUrl.indexOf('?') + 1) : '';
    const list = req.method === 'GET' && /^\/(Users|Groups)\/?$/i.test(req.path);
    Object.defineProperty(req, 'query', { value: scimQuery(search, list ? maxPageSize : undefined), writable: true, configurable: true, enumerable: true });
    next();
  });
  app.use(SCIM_BASE_PATH, (req: Request, res: Response, next: NextFunction) => {
    const principal = authenticate(req.header('authorization'));
    if (!principal) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="scim"');
      return sendError(res, 401, 'a valid bearer token is required');
    }
    res.locals.principal = principal;
    if (principal.grant.ratePerMinute !== undefined) {
      const retryAfter = rateLimited(principal, principal.grant.ratePerMinute);
      if (retryAfter !== null) {
        res.setHeader('Retry-After', String(retryAfter));
        return sendError(res, 429, `rate limit of ${principal.grant.ratePerMinute} requests per minute exceeded`);
      }
    }
    const needed = requiredScope(req);
    if (needed === 'unsupported') return sendError(res, 501, `${req.method} ${req.path} is not offered by this provider`);
    if (needed !== null && !principal.scopes.has(needed)) {
      return sendError(res, 403, `token for '${principal.grant.userName}' lacks scope ${needed} needed for ${req.method} ${req.path}`);
    }
    writer.run(principal.grant.userName, next);
  });
  app.use(SCIM_BASE_PATH, serialiseWrites());
  app.use(SCIM_BASE_PATH, (req: Request, res: Response, next: NextFunction) => {
    // Case-insensitive and trailing slash tolerated, as the routers behind it are (see requiredScope).
    const target = /^\/(Users|Groups)\/([^/]+)\/?$/i.exec(req.path);
    const ifMatch = req.header('if-match');
    if (target && ifMatch !== undefined && ['PUT', 'PATCH', 'DELETE'].includes(req.method)) {
      const current = (target[1]?.toLowerCase() === 'users' ? users : groups).get(decodeURIComponent(target[2] ?? ''));
      // An absent resource falls through to SCIMMY's 404.
      if (current && !etagMatches(ifMatch, etag(current))) {
        return sendError(res, 412, `If-Match ${ifMatch} does not match the current version ${etag(current)}`);
      }
    }
    const send = res.send.bind(res);
    res.send = (body?: unknown) => {
      const version = (body as { meta?: { version?: unknown } } | null)?.meta?.version;
      if (typeof version === 'string' && !res.headersSent) res.setHeader('ETag', version);
      return send(body);
    };
    next();
  });
  app.use(SCIM_BASE_PATH, routers);
  // scimmy-routers has already answered a 5xx with a SCIM envelope and passes the error on for logging.
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    console.error('scim-server: request failed', err);
    if (!res.headersSent) sendError(res, 500, 'internal error');
  });

  function principalOf(req: Request): Principal {
    const p = (req.res?.locals as { principal?: Principal } | undefined)?.principal;
    if (!p) throw new Error('not authenticated');
    return p;
  }

  const windows = new Map<string, number[]>();
  function rateLimited(p: Principal, limit: number): number | null {
    const now = Date.now();
    const recent = (windows.get(p.userId) ?? []).filter((t) => t > now - 60_000);
    if (recent.length >= limit) {
      windows.set(p.userId, recent);
      return Math.max(1, Math.ceil(((recent[0] ?? now) + 60_000 - now) / 1000));
    }
    recent.push(now);
    windows.set(p.userId, recent);
    return null;
  }

  return {
    app,
    listen: (port = 0, host = '127.0.0.1') =>
      new Promise((resolve, reject) => {
        const server: http.Server = app.listen(port, host, (err?: Error) => {
          if (err) return reject(err);
          const addr = server.address() as AddressInfo;
          resolve({
            url: `http://${host}:${addr.port}${SCIM_BASE_PATH}`,
            close: () => new Promise<void>((done, fail) => server.close((e) => (e ? fail(e) : done()))),
          });
        });
        server.once('error', reject);
      }),
  };
}

/**
 * The scope a request needs; null for discovery endpoints any authenticated caller may read. Express routes
 * case-insensitively, scimmy-routers' routers included, so `PATCH /users/<id>` is served by the Users endpoint: the
 * collection is compared case-insensitively here, or such a request would pass as "not a collection" and a read-only
 * token could write. Anything that is not a read and not a known collection is refused rather than waved through.
 */
function requiredScope(req: Request): ScimScope | null | 'unsupported' {
  const [, collection = '', rest = ''] = /^\/([^/]*)(.*)$/.exec(req.path) ?? [];
  const reading = req.method === 'GET' || req.method === 'HEAD' || (req.method === 'POST' && rest.toLowerCase() === '/.search');
  switch (collection.toLowerCase()) {
    case 'users':
      return reading ? 'users:read' : 'users:write';
    case 'groups':
      if (reading) return 'groups:read';
      return req.method === 'PATCH' && touchesOnlyMembers(req.body) ? 'groups:members' : 'groups:write';
    case 'bulk':
    case '.search':
      // Root search spans every resource type; one-collection search keeps scopes exact.
      return 'unsupported';
    default:
      return req.method === 'GET' || req.method === 'HEAD' ? null : 'unsupported';
  }
}

/** A PatchOp whose every operation targets `members` (add/remove/replace), and nothing else about the group. */
function touchesOnlyMembers(body: unknown): boolean {
  const ops = (body as { Operations?: unknown } | undefined)?.Operations;
  if (!Array.isArray(ops) || ops.length === 0) return false;
  return ops.every((op: { path?: unknown; value?: unknown }) => {
    if (typeof op.path === 'string') return /^members(\[[^\]]*\])?(\.value)?$/i.test(op.path.trim());
    const value = op.value;
    return value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).every((k) => k.toLowerCase() === 'members');
  });
}

function etagMatches(header: string, current: string): boolean {
  return header
    .split(',')
    .map((t) => t.trim())
    .some((t) => t === '*' || t === current);
}

function scimQuery(text: string, maxPageSize: number | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of new URLSearchParams(text)) {
    const prior = out[key];
    out[key] = prior === undefined ? value : [...(Array.isArray(prior) ? prior : [prior]), value];
  }
  for (const key of ['startIndex', 'count']) {
    const v = out[key];
    if (typeof v === 'string' && /^-?\d+$/.test(v)) out[key] = Number(v);
  }
  if (maxPageSize !== undefined) out.count = typeof out.count === 'number' ? Math.min(out.count, maxPageSize) : maxPageSize;
  return out;
}

/**
 * One write at a time. SCIMMY's PATCH is read, apply, write back the whole resource; two interleaved PATCHes on one
 * group would each write back their own copy of `members` and one change would be lost.
 */
function serialiseWrites() {
  let tail: Promise<void> = Promise.resolve();
  return (req: Request, res: Response, next: NextFunction) => {
    if (req.method === 'GET') return next();
    const prior = tail;
    let release!: () => void;
    tail = new Promise((r) => (release = r));
    res.once('finish', release);
    res.once('close', release);
    void prior.then(() => next());
  };
}

function sendError(res: Response, status: number, detail: string): void {
  res.status(status).type('application/scim+json').send(JSON.stringify({ schemas: [ERROR_SCHEMA], status: String(status), detail }));
}
