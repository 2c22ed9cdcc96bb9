import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { exportJWK, generateKeyPair } from 'jose';
import { ensureDemoEnv, envRole } from '../auth/demo-env';
import type { OidcSettings } from '../auth/oidc-settings';
import { ROLES, type Role } from '../auth/principal';
import type { Logger } from '../logger';
import type Provider from 'oidc-provider';

/** The audience of the demo provider's access tokens: the API's OIDC_AUDIENCE. */
export const DEMO_AUDIENCE = 'changegate';
/** The API as a resource server at the demo provider (RFC 8707 wants an absolute URI). */
const API_RESOURCE = 'urn:changegate:api';
/** The dashboard's client at the demo provider: public (no secret), authorization code with PKCE. */
export const DEMO_DASHBOARD_CLIENT = 'changegate-dashboard';
/** What the dashboard asks the demo provider for: the ID token's claims and an access token for the API. */
export const DEMO_SCOPE = 'openid profile changegate';

export interface DemoUser {
  role: Role;
  username: string;
  password: string;
}

/**
 * One demo person per role in the demo secrets file (`CHANGEGATE_DEMO_USER_AUDITOR`, `CHANGEGATE_DEMO_PASSWORD_AUDITOR`,
 * …): made once, owner-only, never printed. The user name is the role with a random suffix, so a user name read off a
 * screen says who it stands for without being guessable.
 */
export function ensureDemoUsers(file: string): DemoUser[] {
  const userVar = (role: Role) => `CHANGEGATE_DEMO_USER_${envRole(role)}`;
  const passwordVar = (role: Role) => `CHANGEGATE_DEMO_PASSWORD_${envRole(role)}`;
  const values = ensureDemoEnv(
    file,
    ROLES.flatMap((role) => [
      [userVar(role), () => `${role}-${randomBytes(3).toString('hex')}`],
      [passwordVar(role), () => randomBytes(18).toString('base64url')],
    ] as const),
  );
  return ROLES.map((role) => ({ role, username: values.get(userVar(role)) as string, password: values.get(passwordVar(role)) as string }));
}

export interface DemoIdentityProvider {
  /** The issuer URL (OIDC_ISSUER). */
  issuer: string;
  /** How the API verifies this provider's access tokens: through the ordinary issuer configuration. */
  oidc: OidcSettings;
  /** Registers the dashboard's redirect URI (known once the API listens) and starts answering. */
  serve(dashboardUrl: string): Promise<void>;
  stop(): Promise<void>;
}

/**
 * `npm start` without an issuer: a local OpenID provider (the certified `oidc-provider` package) on its own port, with
 * the demo users, so that the dashboard's login works with no setup. It issues JWT access tokens for the API's
 * audience carrying the user's role in `roles`; the API checks them like any issuer's (discovery, JWKS). The listener
 * is bound first (the API's settings need the issuer URL), the provider made once the dashboard's address is known.
 */
export async function startDemoIdentityProvider(opts: { users: DemoUser[]; port: number; host?: string; log: Logger }): Promise<DemoIdentityProvider> {
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const server: Server = createServer((req, res) => {
    if (handler) return handler(req, res);
    res.writeHead(503, { 'retry-after': '1' }).end();
  });
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, resolve);
  });
  const issuer = `http://${host}:${(server.address() as AddressInfo).port}`;
  return {
    issuer,
    oidc: { issuer, audience: DEMO_AUDIENCE, rolesClaim: 'roles', algorithms: ['ES256'], clockToleranceSeconds: 30 },
    async serve(dashboardUrl) {
      handler = await providerApp(issuer, dashboardUrl, opts.users, opts.log);
    },
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

async function providerApp(issuer: string, dashboardUrl: string, users: DemoUser[], log: Logger) {
  // oidc-provider ships ES modules only; Node loads them through require(esm).
  const { default: OidcProvider, errors } = await import('oidc-provider');
  const byId = new Map(users.map((u) => [u.username, u]));
  // A signing key per start: tokens of an earlier run are refused, and the dashboard logs in again.
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const signingKey = { ...(await exportJWK(privateKey)), alg: 'ES256', use: 'sig', kid: randomBytes(8).toString('hex') };
  const provider = new OidcProvider(issuer, {
    clients: [
      {
        client_id: DEMO_DASHBOARD_CLIENT,
        token_endpoint_auth_method: 'none',
        id_token_signed_response_alg: 'ES256',
        redirect_uris: [dashboardUrl],
        post_logout_redirect_uris: [dashboardUrl],
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
    ],
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    claims: { openid: ['sub'], profile: ['name', 'preferred_username'] },
    findAccount: (_ctx, id) => {
      const user = byId.get(id);
      return user ? { accountId: id, claims: () => ({ sub: id, name: user.username, preferred_username: user.username }) } : undefined;
    },
    features: {
      devInteractions: { enabled: false },
      resourceIndicators: {
        enabled: true,
        // The dashboard names no resource: every access token is for the API.
        defaultResource: () => API_RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => {
          if (resource !== API_RESOURCE) throw new errors.InvalidTarget();
          return { scope: 'changegate', audience: DEMO_AUDIENCE, accessTokenFormat: 'jwt', accessTokenTTL: 3600, jwt: { sign: { alg: 'ES256' } } };
        },
      },
    },
    extraTokenClaims: (_ctx, token) => {
      const user = 'accountId' in token && token.accountId ? byId.get(token.accountId) : undefined;
      return user ? { roles: [user.role], name: user.username } : undefined;
    },
    // The dashboard's own origin may call the token endpoint from the browser; no other.
    clientBasedCORS: (_ctx, origin, client) => client.redirectUris?.some((uri) => new URL(uri).origin === origin) ?? false,
    // A first-party client: the user's login is the consent.
    loadExistingGrant: async (ctx): Promise<InstanceType<Provider['Grant']> | undefined> => {
      const session = ctx.oidc.session;
      const client = ctx.oidc.client;
      if (!session?.accountId || !client) return undefined;
      const existing = session.grantIdFor(client.clientId);
      if (existing) return ctx.oidc.provider.Grant.find(existing);
      const grant = new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
      grant.addOIDCScope('openid profile');
      grant.addResourceScope(API_RESOURCE, 'changegate');
      await grant.save();
      session.grantIdFor(client.clientId, grant.jti);
      return grant;
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    renderError: (ctx, out) => {
      ctx.type = 'html';
      ctx.body = page('Sign-in failed', `<p>${escape(String(out.error_description ?? out.error))}</p>`);
    },
  });
  provider.on('server_error', (_ctx: unknown, err: Error) => log.error('demo identity provider failed', { error: err.message }));

  const app = express();
  app.disable('x-powered-by');
  app.get('/interaction/:uid', async (req, res, next) => {
    try {
      const details = await provider.interactionDetails(req, res);
      if (details.prompt.name !== 'login') return await provider.interactionFinished(req, res, {}, { mergeWithLastSubmission: true });
      res.type('html').send(loginPage(String(req.params.uid)));
    } catch (err) {
      next(err);
    }
  });
  app.post('/interaction/:uid/login', express.urlencoded({ extended: false, limit: '4kb' }), async (req, res, next) => {
    try {
      await provider.interactionDetails(req, res);
      const { username, password } = (req.body ?? {}) as { username?: unknown; password?: unknown };
      const user = typeof username === 'string' ? byId.get(username) : undefined;
      if (!user || typeof password !== 'string' || !sameSecret(password, user.password)) {
        log.warn('demo sign-in refused', { reason: user ? 'wrong password' : 'unknown user' });
        return res.status(401).type('html').send(loginPage(String(req.params.uid), 'Unknown user name or wrong password.'));
      }
      await provider.interactionFinished(req, res, { login: { accountId: user.username } }, { mergeWithLastSubmission: false });
    } catch (err) {
      next(err);
    }
  });
  app.use(provider.callback());
  return app as unknown as (req: IncomingMessage, res: ServerResponse) => void;
}

/** Digests compared, so neither length nor a matching prefix shows in the timing. */
function sameSecret(given: string, expected: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(given), digest(expected));
}

function loginPage(uid: string, error?: string): string {
  return page(
    'Sign in to changegate',
    `${error ? `<p role="alert">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${encodeURIComponent(uid)}/login">
  <label>User name <input name="username" autocomplete="username" required autofocus></label>
  <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
  <button type="submit">Sign in</button>
</form>
<p>Demo users and passwords: <code>.data/demo.env</code> (CHANGEGATE_DEMO_USER_&lt;ROLE&gt;, CHANGEGATE_DEMO_PASSWORD_&lt;ROLE&gt;).</p>`,
  );
}

function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title>
<style>body{font:15px system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}label{display:block;margin:.8rem 0}input{display:block;width:100%;padding:.4rem}button{padding:.5rem 1.2rem}[role=alert]{color:#b00020}</style>
</head><body><h1>${escape(title)}</h1>${body}</body></html>`;
}

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
