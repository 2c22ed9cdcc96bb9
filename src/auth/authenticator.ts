import { createHash, timingSafeEqual } from 'node:crypto';
import type { ApiTokenStore } from './api-tokens';
import { InvalidToken, type JwtVerifier } from './jwt-verifier';
import type { Principal } from './principal';

/** Three dot-separated base64url parts (the last empty for `alg: none`): a JWT, as opposed to an API token. */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** The configured admin token: an operator, so integrations built on it keep working. */
export const ADMIN_TOKEN_PRINCIPAL: Principal = {
  actor: { kind: 'token', id: 'CHANGEGATE_ADMIN_TOKEN', name: 'admin' },
  roles: new Set(['operator']),
};

export interface AuthenticatorDeps {
  tokens: ApiTokenStore;
  adminToken: string;
  /** Absent when no issuer is configured: then JWTs are refused like any unknown token. */
  jwt?: JwtVerifier;
}

/** Turns a bearer token into a principal, or throws InvalidToken (IssuerUnavailable when the issuer is down). */
export class Authenticator {
  private readonly adminDigest: Buffer;

  constructor(private readonly deps: AuthenticatorDeps) {
    this.adminDigest = sha256(deps.adminToken);
  }

  async authenticate(bearer: string): Promise<Principal> {
    // Digests compared, so neither the admin token's length nor a matching prefix shows in the timing.
    if (timingSafeEqual(sha256(bearer), this.adminDigest)) return ADMIN_TOKEN_PRINCIPAL;
    if (JWT_SHAPE.test(bearer)) {
      if (!this.deps.jwt) throw new InvalidToken('no OIDC issuer is configured');
      return this.deps.jwt.verify(bearer);
    }
    const principal = await this.deps.tokens.authenticate(bearer);
    if (!principal) throw new InvalidToken('unknown or revoked API token');
    return principal;
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
