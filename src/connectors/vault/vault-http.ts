import axios, { type AxiosInstance } from 'axios';
import { ConnectorRefusal, FailureType } from '../connector-errors';

/** Vault's own words for a failed request: the `errors[]` of its JSON body, kept as the `cause` of what we throw. */
export class VaultError extends Error {
  constructor(
    readonly status: number,
    readonly errors: string[],
  ) {
    super(errors.length > 0 ? errors.join('; ') : `HTTP ${status}`);
    this.name = 'VaultError';
  }
}

export interface VaultResponse<D = Record<string, unknown>> {
  data?: D;
  lease_id?: string;
  warnings?: string[] | null;
}

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface CallOptions {
  body?: unknown;
  /** A Vault LIST (sent as GET ?list=true, which needs no custom HTTP method). */
  list?: boolean;
  /** 404 means "absent" here: resolve to null instead of refusing. */
  absentOk?: boolean;
  /** End the URL with a slash (Vault's lease-prefix listing is keyed on it). */
  trailingSlash?: boolean;
  contentType?: string;
}

/** Statuses worth retrying: rate limits, a sealed/standby/overloaded server, Vault's own eventual-consistency 412. */
const TRANSIENT_STATUS = (s: number): boolean => s === 412 || s === 429 || s >= 500 || (s >= 300 && s < 400);

/**
 * The one way this connector talks to Vault. Every path part is URI-encoded here, after the grammar has already
 * restricted it. Axios errors carry the request config, token header included, so none of them is ever thrown or
 * kept: errors are rebuilt from the HTTP status, Vault's `errors[]` and the network error code only.
 */
export class VaultHttp {
  private readonly http: AxiosInstance;
  readonly #token: string;

  constructor(
    private readonly name: string,
    address: string,
    token: string,
    timeoutMs: number,
  ) {
    this.#token = token;
    this.http = axios.create({
      baseURL: `${address.replace(/\/+$/, '')}/v1/`,
      timeout: timeoutMs,
      // A standby node answers with a redirect; following it would resend the token to wherever it points.
      maxRedirects: 0,
      // The token must not travel through whatever proxy the environment happens to name.
      proxy: false,
      validateStatus: () => true,
      transitional: { clarifyTimeoutError: true },
    });
  }

  async call<D = Record<string, unknown>>(method: Method, path: string[], opts: CallOptions & { absentOk: true }): Promise<VaultResponse<D> | null>;
  async call<D = Record<string, unknown>>(method: Method, path: string[], opts?: CallOptions): Promise<VaultResponse<D>>;
  async call<D = Record<string, unknown>>(method: Method, path: string[], opts: CallOptions = {}): Promise<VaultResponse<D> | null> {
    const url = path.map((p) => encodeURIComponent(p)).join('/') + (opts.trailingSlash ? '/' : '');
    const shown = `${opts.list ? 'LIST' : method} ${url}`;
    let res;
    try {
      res = await this.http.request({
        method,
        url,
        params: opts.list ? { list: 'true' } : undefined,
        data: opts.body,
        headers: {
          'X-Vault-Token': this.#token,
          'X-Vault-Request': 'true',
          ...(opts.body !== undefined ? { 'Content-Type': opts.contentType ?? 'application/json' } : {}),
        },
        responseType: 'json',
      });
    } catch (raw) {
      const code = (raw as { code?: string }).code ?? 'network error';
      const cause = Object.assign(new Error(`${code} reaching Vault`), { code });
      throw Object.assign(new Error(`${this.name}: ${shown}: cannot reach Vault (${code})`, { cause }), { transient: true });
    }
    if (res.status >= 200 && res.status < 300) return (res.data && typeof res.data === 'object' ? res.data : {}) as VaultResponse<D>;
    if (res.status === 404 && opts.absentOk) return null;
    const body = res.data as { errors?: unknown } | undefined;
    const errors = Array.isArray(body?.errors) ? body.errors.map((e) => String(e).replace(/\s+/g, ' ').trim()).filter((e) => e !== '') : [];
    const cause = new VaultError(res.status, errors);
    const text = `${this.name}: ${shown}: ${cause.message} (HTTP ${res.status})`;
    if (TRANSIENT_STATUS(res.status)) throw Object.assign(new Error(text, { cause }), { transient: true });
    throw new ConnectorRefusal(FailureType.TargetRefused, text, { cause });
  }
}

export function vaultErrorOf(err: unknown): VaultError | undefined {
  const cause = (err as { cause?: unknown } | undefined)?.cause;
  return cause instanceof VaultError ? cause : undefined;
}

/** A mount, prefix or lease id as URL path segments (each is URI-encoded by VaultHttp). */
export const segments = (p: string): string[] => p.split('/').filter((s) => s !== '');
