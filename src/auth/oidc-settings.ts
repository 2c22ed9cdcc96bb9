/** Asymmetric algorithms only: with HS* anyone holding the issuer's public key could mint tokens. */
export const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;
export type AsymmetricAlgorithm = (typeof ASYMMETRIC_ALGORITHMS)[number];

/** How people's bearer tokens are checked; from the OIDC_* variables (src/config.ts). */
export interface OidcSettings {
  issuer: string;
  audience: string;
  /** A claim name, or a dotted path into nested claims (`realm_access.roles`). */
  rolesClaim: string;
  /** Default: the issuer's discovery document's `jwks_uri`. */
  jwksUrl?: string;
  algorithms: AsymmetricAlgorithm[];
  clockToleranceSeconds: number;
}
