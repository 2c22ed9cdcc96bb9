import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload } from 'jose';
import { z } from 'zod';
import type { OidcSettings } from './oidc-settings';
import { isRole, type Principal } from './principal';

export type { OidcSettings } from './oidc-settings';


/** The token is bad: expired, wrong issuer or audience, bad signature, unknown key, refused algorithm. */
export class InvalidToken extends Error {
  constructor(
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`bearer token refused: ${reason}`, options);
    this.name = 'InvalidToken';
  }
}

/** The issuer could not be asked (discovery or JWKS unreachable): not the caller's fault. */
export class IssuerUnavailable extends Error {}

/** jose codes that mean the token, not the issuer, is at fault. */
const TOKEN_FAULTS = new Set<string>([
  errors.JWTExpired.code,
  errors.JWTClaimValidationFailed.code,
  errors.JWTInvalid.code,
  errors.JWSInvalid.code,
  errors.JWSSignatureVerificationFailed.code,
  errors.JOSEAlgNotAllowed.code,
  errors.JOSENotSupported.code,
  errors.JWKSNoMatchingKey.code,
  errors.JWKSMultipleMatchingKeys.code,
  errors.JWKInvalid.code,
]);

const discoveryDocument = z.object({ issuer: z.string(), jwks_uri: z.string().url() });

/** Verifies people's bearer tokens against the configured issuer's published keys. */
export class JwtVerifier {
  private jwks: Promise<ReturnType<typeof createRemoteJWKSet>> | undefined;

  constructor(private readonly settings: OidcSettings) {}

  async verify(token: string): Promise<Principal> {
    const keys = await this.keySet();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys, {
        issuer: this.settings.issuer,
        audience: this.settings.audience,
        algorithms: this.settings.algorithms,
        clockTolerance: this.settings.clockToleranceSeconds,
        requiredClaims: ['sub', 'exp'],
      }));
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code && TOKEN_FAULTS.has(code)) throw new InvalidToken(code === errors.JWTExpired.code ? 'expired' : code, { cause: err });
      throw new IssuerUnavailable('could not fetch the issuer\'s signing keys', { cause: err });
    }
    const sub = payload.sub as string;
    const name = [payload.name, payload.preferred_username, payload.email].find((v): v is string => typeof v === 'string' && v.length > 0) ?? sub;
    return { actor: { kind: 'person', id: sub, name }, roles: new Set(rolesFrom(payload, this.settings.rolesClaim).filter(isRole)) };
  }

  /** The key set, from OIDC_JWKS_URL or the discovery document; fetched on first use and retried after a failure. */
  private keySet(): Promise<ReturnType<typeof createRemoteJWKSet>> {
    this.jwks ??= this.resolveJwksUrl().then(
      (url) => createRemoteJWKSet(new URL(url), { timeoutDuration: 5_000 }),
      (err: unknown) => {
        this.jwks = undefined;
        throw new IssuerUnavailable('could not read the issuer\'s discovery document', { cause: err });
      },
    );
    return this.jwks;
  }

  private async resolveJwksUrl(): Promise<string> {
    if (this.settings.jwksUrl) return this.settings.jwksUrl;
    const url = `${this.settings.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
    const res = await fetch(url, { redirect: 'error', signal: AbortSignal.timeout(5_000) });
    if (!res.ok) throw new Error(`${url} answered ${res.status}`);
    const doc = discoveryDocument.parse(await res.json());
    // OpenID Connect Discovery §4.3: the document must name the issuer it was fetched for.
    if (doc.issuer !== this.settings.issuer) throw new Error(`${url} names issuer ${doc.issuer}, not ${this.settings.issuer}`);
    return doc.jwks_uri;
  }
}

/**
 * The roles a token carries: an array of strings, or one space-separated string. A claim whose own name contains
 * dots (`https://example.com/roles`) is taken as it is before the name is read as a path.
 */
export function rolesFrom(payload: Record<string, unknown>, claim: string): string[] {
  let value: unknown = Object.hasOwn(payload, claim) ? payload[claim] : undefined;
  if (value === undefined) {
    value = claim
      .split('.')
      .reduce<unknown>((node, key) => (node && typeof node === 'object' && Object.hasOwn(node, key) ? (node as Record<string, unknown>)[key] : undefined), payload);
  }
  if (typeof value === 'string') return value.split(/\s+/).filter(Boolean);
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return [];
}
