import axios, { type AxiosInstance } from 'axios';
import { serverRetryDelay } from '../retry-timing';

/**
 * OAuth 2.0 access tokens from ServiceNow's `/oauth_token.do` (an Application Registry entry): a form-encoded POST
 * with the `password` grant (the integration user as resource owner) or `client_credentials` (only where the
 * instance enables it), then the `refresh_token` grant before the access token expires. The tokens live in this
 * object only: never logged, never in an error message, never in an error's cause.
 */
export interface OAuthSettings {
  clientId: string;
  clientSecret: string;
  grant: 'password' | 'client_credentials';
  /** The resource owner, for the password grant. */
  username?: string;
  password?: string;
}

/** Why a token could not be had, without the token request (which carries the secrets) as a cause. */
export class OAuthTokenError extends Error {
  constructor(
    message: string,
    readonly kind: 'refused' | 'transient' | 'rate_limited',
    readonly status?: number,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'OAuthTokenError';
  }
}

interface Token {
  access: string;
  refresh?: string;
  /** When to get a new one: ahead of the expiry the server announced. */
  renewAt: number;
}

const REFRESH_AHEAD_MS = 60_000;
const TOKEN_PATH = '/oauth_token.do';

export class ServiceNowTokens {
  private token?: Token;
  private inFlight?: Promise<Token>;

  constructor(
    private readonly http: AxiosInstance,
    private readonly settings: OAuthSettings,
    private readonly now: () => number = Date.now,
  ) {
    if (settings.grant === 'password' && (!settings.username || !settings.password)) {
      throw new Error('the ServiceNow OAuth password grant needs the integration user and password');
    }
  }

  /** A valid access token: the current one, or a new one (refreshed when a refresh token is held). One request at a time. */
  async accessToken(): Promise<string> {
    const token = this.token;
    if (token && this.now() < token.renewAt) return token.access;
    return (await this.renew()).access;
  }

  /** The server refused `access` (HTTP 401): forget it, so the next call gets another. */
  invalidate(access: string): void {
    if (this.token?.access === access) this.token = { ...this.token, renewAt: 0 };
  }

  private renew(): Promise<Token> {
    this.inFlight ??= this.obtain().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async obtain(): Promise<Token> {
    const refresh = this.token?.refresh;
    if (refresh) {
      try {
        return (this.token = await this.request({ grant_type: 'refresh_token', refresh_token: refresh }));
      } catch (err) {
        // An expired or revoked refresh token: start again from the grant; anything else is the caller's to retry.
        if (!(err instanceof OAuthTokenError) || err.kind !== 'refused') throw err;
        this.token = undefined;
      }
    }
    const grant: Record<string, string> =
      this.settings.grant === 'password'
        ? { grant_type: 'password', username: this.settings.username ?? '', password: this.settings.password ?? '' }
        : { grant_type: 'client_credentials' };
    return (this.token = await this.request(grant));
  }

  private async request(fields: Record<string, string>): Promise<Token> {
    const body = new URLSearchParams({ ...fields, client_id: this.settings.clientId, client_secret: this.settings.clientSecret });
    const grant = fields.grant_type;
    let response;
    try {
      response = await this.http.post(TOKEN_PATH, body.toString(), {
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
        validateStatus: () => true,
        // No basic auth on the token endpoint: the client credentials are in the form.
        auth: undefined,
      });
    } catch (err) {
      // Network failure: the axios error holds the form body, so only its code travels on.
      throw new OAuthTokenError(`ServiceNow OAuth ${grant} grant failed: no response (${axios.isAxiosError(err) ? (err.code ?? 'network error') : 'error'})`, 'transient');
    }
    const status = response.status;
    const data: unknown = response.data;
    if (status === 200 && typeof data === 'object' && data !== null) {
      const { access_token, refresh_token, expires_in } = data as Record<string, unknown>;
      const lifetimeMs = Number(expires_in) * 1000;
      if (typeof access_token === 'string' && access_token !== '' && Number.isFinite(lifetimeMs) && lifetimeMs > 0) {
        const ahead = Math.min(REFRESH_AHEAD_MS, lifetimeMs / 5);
        return {
          access: access_token,
          ...(typeof refresh_token === 'string' && refresh_token !== '' ? { refresh: refresh_token } : {}),
          renewAt: this.now() + lifetimeMs - ahead,
        };
      }
      throw new OAuthTokenError(`ServiceNow OAuth ${grant} grant answered without an access token and its lifetime`, 'transient', status);
    }
    // ServiceNow answers {"error": "...", "error_description": "..."}: codes, never secrets, so they are kept.
    const code = typeof data === 'object' && data !== null ? String((data as Record<string, unknown>).error_description ?? (data as Record<string, unknown>).error ?? '') : '';
    const message = `ServiceNow OAuth ${grant} grant refused with HTTP ${status}${code ? ` (${code.slice(0, 80)})` : ''}`;
    if (status === 429) throw new OAuthTokenError(message, 'rate_limited', status, serverRetryDelay((n) => headerOf(response.headers, n), this.now()));
    if (status >= 500) throw new OAuthTokenError(message, 'transient', status, serverRetryDelay((n) => headerOf(response.headers, n), this.now()));
    throw new OAuthTokenError(message, 'refused', status);
  }
}

function headerOf(headers: unknown, name: string): string | undefined {
  const v = (headers as Record<string, unknown>)[name];
  return typeof v === 'string' ? v : undefined;
}
