import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { AppError } from '../errors';
import type { Logger } from '../logger';
import type { Authenticator } from './authenticator';
import { InvalidToken, IssuerUnavailable } from './jwt-verifier';
import type { Principal, Role } from './principal';

/** The principal of each admitted request, kept beside the response rather than in untyped res.locals. */
const principals = new WeakMap<Response, Principal>();

const REALM = 'Bearer realm="changegate"';

/**
 * `requireRoles(...roles)`: the one gate in front of every API route. No or a bad bearer token is a 401 with a
 * `WWW-Authenticate: Bearer` challenge (RFC 6750); a principal holding none of the roles is a 403. The route reads
 * the admitted principal with `principalOf(res)`.
 */
export function createRequireRoles(auth: Authenticator, log: Logger) {
  return function requireRoles(...roles: Role[]): RoleGate {
    const admitted = new Set(roles);
    const gate = async (req: Request, res: Response, next: NextFunction) => {
      const header = req.get('authorization');
      if (!header) return next(new AppError(401, 'UNAUTHORIZED', 'a bearer token is required', [], { headers: { 'WWW-Authenticate': REALM } }));
      const bearer = /^Bearer +([^\s]+) *$/i.exec(header)?.[1];
      if (!bearer) return next(invalidToken('the Authorization header is not a bearer token'));
      let principal: Principal;
      try {
        principal = await auth.authenticate(bearer);
      } catch (err) {
        if (err instanceof InvalidToken) {
          // The reason, never the token.
          log.warn('bearer token refused', { method: req.method, path: req.path, reason: err.reason });
          return next(invalidToken(err.reason === 'expired' ? 'the bearer token has expired' : 'the bearer token is not valid'));
        }
        if (err instanceof IssuerUnavailable) return next(new AppError(503, 'UNAVAILABLE', 'the identity provider cannot be reached; retry later', [], { cause: err }));
        return next(err);
      }
      if (![...principal.roles].some((r) => admitted.has(r))) {
        log.warn('role refused', { method: req.method, path: req.path, actor: principal.actor, roles: [...principal.roles] });
        return next(new AppError(403, 'FORBIDDEN', `this endpoint admits the roles ${roles.join(', ')}; the caller has ${[...principal.roles].join(', ') || 'none'}`));
      }
      principals.set(res, principal);
      next();
    };
    // What the route admits, readable from the mounted router: /openapi.json's roles are checked against it.
    return Object.assign(gate, { admits: Object.freeze([...roles]) });
  };
}

/** A route's role gate; `admits` names the roles it lets through. */
export type RoleGate = RequestHandler & { readonly admits: readonly Role[] };

export type RequireRoles = ReturnType<typeof createRequireRoles>;

/** The caller of a route behind requireRoles. */
export function principalOf(res: Response): Principal {
  const principal = principals.get(res);
  if (!principal) throw new Error('route is not behind requireRoles');
  return principal;
}

function invalidToken(message: string): AppError {
  return new AppError(401, 'UNAUTHORIZED', message, [], { headers: { 'WWW-Authenticate': `${REALM}, error="invalid_token"` } });
}
