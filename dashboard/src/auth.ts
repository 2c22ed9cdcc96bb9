import { UserManager, WebStorageStateStore, type User } from 'oidc-client-ts';
import type { DashboardConfig } from './api';

/**
 * Login: OpenID Connect authorization code with PKCE, as a public client (no secret in the browser). The tokens stay
 * in this tab's session storage; the view the person asked for rides through the provider in `state`.
 */
export function userManager(login: NonNullable<DashboardConfig['login']>): UserManager {
  return new UserManager({
    authority: login.issuer,
    client_id: login.clientId,
    redirect_uri: `${location.origin}/dashboard/`,
    post_logout_redirect_uri: `${location.origin}/dashboard/`,
    scope: login.scope,
    response_type: 'code',
    loadUserInfo: false,
    automaticSilentRenew: false,
    userStore: new WebStorageStateStore({ store: sessionStorage }),
  });
}

let finishing: Promise<User | null> | undefined;

/**
 * Finishes a login the provider redirected back with, or returns the session's user (null: not logged in). Once per
 * page: a code can be redeemed once, and React may run the effect that asks twice.
 */
export function currentUser(manager: UserManager): Promise<User | null> {
  finishing ??= userFrom(manager);
  return finishing;
}

async function userFrom(manager: UserManager): Promise<User | null> {
  const params = new URLSearchParams(location.search);
  if (params.has('code') && params.has('state')) {
    const user = await manager.signinRedirectCallback();
    const view = typeof user.state === 'string' ? user.state : '';
    history.replaceState(null, '', `/dashboard/${view}`);
    return user;
  }
  const user = await manager.getUser();
  return user && !user.expired ? user : null;
}

/** The roles the access token carries, for showing who is logged in; the API decides what they allow. */
export function rolesOf(user: User): string[] {
  try {
    const payload = JSON.parse(atob(user.access_token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))) as { roles?: unknown };
    return Array.isArray(payload.roles) ? payload.roles.filter((r): r is string => typeof r === 'string') : [];
  } catch {
    return [];
  }
}
