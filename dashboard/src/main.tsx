import { StrictMode, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import type { User, UserManager } from 'oidc-client-ts';
import { type DashboardConfig, getJson } from './api';
import { currentUser, rolesOf, userManager } from './auth';
import { loadAccess, type May } from './access';
import { TicketView } from './TicketView';
import { VIEWS } from './views';
import './styles.css';

type Route = { ticket: { source: string; ticket: string } } | { view: (typeof VIEWS)[number] };

/** `#/changes/<source>/<key>`: one ticket; `#/<route>`: that view; anything else: the first view. */
function useRoute(): Route {
  const [, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  // Read at each render, not only on hashchange: the return from login puts the asked-for view back with
  // history.replaceState, which fires no event.
  const hash = location.hash;
  const m = /^#\/changes\/([^/]+)\/([^/]+)$/.exec(hash);
  if (m) return { ticket: { source: decodeURIComponent(m[1]!), ticket: decodeURIComponent(m[2]!) } };
  return { view: VIEWS.find((v) => hash === `#/${v.route}`) ?? VIEWS[0]! };
}

function App() {
  const [config, setConfig] = useState<DashboardConfig>();
  const [manager, setManager] = useState<UserManager>();
  const [user, setUser] = useState<User | null>();
  const [may, setMay] = useState<May>();
  const [error, setError] = useState<string>();
  const route = useRoute();
  const roles = user ? rolesOf(user) : [];

  useEffect(() => {
    if (!user) return;
    loadAccess(rolesOf(user))
      .then((m) => setMay(() => m))
      .catch((e: Error) => setError(e.message));
  }, [user]);

  useEffect(() => {
    getJson<DashboardConfig>('/dashboard/config.json')
      .then(async (c) => {
        setConfig(c);
        if (!c.login) return setUser(null);
        const m = userManager(c.login);
        setManager(m);
        setUser(await currentUser(m));
      })
      .catch((e: Error) => setError(e.message));
  }, []);

  if (error) return <p role="alert">{error}</p>;
  if (!config || user === undefined) return <p>Loading…</p>;
  if (!config.login || !manager) return <p role="alert">No identity provider is configured (OIDC_ISSUER): nobody can log in to the dashboard.</p>;
  if (!user) {
    return (
      <main className="login">
        <h1>changegate</h1>
        <p>Change tickets, the identity actions they carry, and the evidence that proves them.</p>
        <button onClick={() => void manager.signinRedirect({ state: location.hash })}>Log in</button>
      </main>
    );
  }
  return (
    <>
      <header>
        <h1>
          <a href="#/">changegate</a>
        </h1>
        <nav aria-label="Views">
          {VIEWS.map((v) => (
            <a key={v.route} href={`#/${v.route}`} aria-current={'view' in route && route.view === v ? 'page' : undefined}>
              {v.title}
            </a>
          ))}
        </nav>
        <span className="who">
          {String(user.profile.preferred_username ?? user.profile.sub)} · {roles.join(', ') || 'no role'}
        </span>
        <button onClick={() => void manager.removeUser().then(() => setUser(null))}>Log out</button>
      </header>
      <main>
        {'ticket' in route ? (
          <TicketView token={user.access_token} config={config} source={route.ticket.source} ticket={route.ticket.ticket} />
        ) : !may ? (
          <p>Loading…</p>
        ) : (
          <route.view.View token={user.access_token} roles={roles} config={config} may={may} />
        )}
      </main>
    </>
  );
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
