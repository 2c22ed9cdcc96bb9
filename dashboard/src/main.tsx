import { StrictMode, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import type { User, UserManager } from 'oidc-client-ts';
import { type DashboardConfig, getJson } from './api';
import { currentUser, rolesOf, userManager } from './auth';
import { ChangesView } from './ChangesView';
import { TicketView } from './TicketView';
import { OpsNavLinks, useOpsView } from './ops/views';
import './styles.css';

/** `#/changes/<source>/<key>`: one ticket; anything else: the list. */
function useRoute(): { source: string; ticket: string } | null {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  const m = /^#\/changes\/([^/]+)\/([^/]+)$/.exec(hash);
  return m ? { source: decodeURIComponent(m[1]!), ticket: decodeURIComponent(m[2]!) } : null;
}

function App() {
  const [config, setConfig] = useState<DashboardConfig>();
  const [manager, setManager] = useState<UserManager>();
  const [user, setUser] = useState<User | null>();
  const [error, setError] = useState<string>();
  const route = useRoute();
  const ops = useOpsView();

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
        <nav className="views" aria-label="Views">
          <OpsNavLinks />
        </nav>
        <span className="who">
          {String(user.profile.preferred_username ?? user.profile.sub)} · {rolesOf(user).join(', ') || 'no role'}
        </span>
        <button onClick={() => void manager.removeUser().then(() => setUser(null))}>Log out</button>
      </header>
      <main>
        {ops ? (
          ops.render(user.access_token)
        ) : route ? (
          <TicketView token={user.access_token} config={config} source={route.source} ticket={route.ticket} />
        ) : (
          <ChangesView token={user.access_token} sources={Object.keys(config.ticketLinks)} />
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
