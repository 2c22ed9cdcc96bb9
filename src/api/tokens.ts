import { z } from 'zod';
import { type ApiTokenInfo, type ApiTokenStore, DEMO_PREFIX, describeActor, TOKEN_NAME, TokenNameTaken } from '../auth/api-tokens';
import type { Principal, Role } from '../auth/principal';
import { AppError, formatPath } from '../errors';

/**
 * Roles an operator may put on a token through the API. Approvals, exception reviews and certifications are decided
 * by people, who sign in through the identity provider: an operator must not be able to mint a change-manager. The
 * command line (which needs the database credentials) can still make any token.
 */
export const MACHINE_ROLES = ['operator', 'auditor', 'integration'] as const satisfies readonly Role[];

export const createTokenRequest = z
  .object({
    name: z
      .string()
      .regex(TOKEN_NAME, 'must be 1-64 of a-z 0-9 . _ -, starting with a letter or digit')
      .refine((n) => !n.startsWith(DEMO_PREFIX), `names starting with '${DEMO_PREFIX}' are the launcher's demo tokens`),
    roles: z.array(z.enum(MACHINE_ROLES)).min(1).max(MACHINE_ROLES.length),
  })
  .strict();

/** `POST /api/tokens`: makes a named API token. The token is in this one response and nowhere else. */
export async function createToken(deps: { tokens: ApiTokenStore }, body: unknown, principal: Principal): Promise<ApiTokenInfo & { token: string }> {
  const parsed = createTokenRequest.safeParse(body ?? {});
  if (!parsed.success) {
    throw new AppError(400, 'VALIDATION_FAILED', 'the token request is invalid', parsed.error.issues.map((i) => ({ path: formatPath(i.path) || '(body)', message: i.message })));
  }
  try {
    const { token, info } = await deps.tokens.create(parsed.data.name, parsed.data.roles, describeActor(principal.actor));
    return { ...info, token };
  } catch (err) {
    if (err instanceof TokenNameTaken) throw new AppError(409, 'CONFLICT', err.message, [{ path: 'name', message: 'is taken (names of revoked tokens stay taken)' }], { cause: err });
    throw err;
  }
}

/** `DELETE /api/tokens/{name}`: revokes; a token already revoked stays as it was. */
export async function revokeToken(deps: { tokens: ApiTokenStore }, name: string, principal: Principal): Promise<ApiTokenInfo> {
  if (!TOKEN_NAME.test(name)) throw new AppError(400, 'VALIDATION_FAILED', 'invalid token name', [{ path: 'path.name', message: 'must be 1-64 of a-z 0-9 . _ -' }]);
  const info = await deps.tokens.revoke(name, describeActor(principal.actor));
  if (!info) throw new AppError(404, 'NOT_FOUND', `no API token is named ${name}`);
  return info;
}

export async function listTokens(deps: { tokens: ApiTokenStore }): Promise<{ tokens: ApiTokenInfo[] }> {
  return { tokens: await deps.tokens.list() };
}
