import { useState } from 'react';
import { type ChangeSummary, GATE_STATES, type GateState, getJson } from './api';
import { usePolling } from './poll';
import { Problem } from './Problem';
import type { ViewProps } from './views';

const TITLES: Record<GateState, string> = {
  'waiting-authorization': 'Waiting for authorization',
  running: 'Running',
  blocked: 'Blocked',
  allowed: 'Allowed to close',
  closed: 'Closed',
};

/** View 1: changes by gate state, filterable by source, system and action kind, refreshed every few seconds. */
export function ChangesView({ token, config }: ViewProps) {
  const sources = Object.keys(config.ticketLinks);
  const [source, setSource] = useState('');
  const [system, setSystem] = useState('');
  const [kind, setKind] = useState('');
  const query = new URLSearchParams({ limit: '500', ...(source ? { source } : {}), ...(system ? { system } : {}), ...(kind ? { kind } : {}) });
  const { data, error, at } = usePolling(() => getJson<{ items: ChangeSummary[] }>(`/api/changes?${query}`, token), 5_000, [token, source, system, kind]);
  const items = data?.items ?? [];
  const systems = [...new Set(items.flatMap((i) => i.systems))].sort();
  return (
    <section>
      <h2>Changes by gate state</h2>
      <div className="filters">
        <label>
          Source{' '}
          <select value={source} onChange={(e) => setSource(e.target.value)}>
            <option value="">all</option>
            {sources.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          System{' '}
          <select value={system} onChange={(e) => setSystem(e.target.value)}>
            <option value="">all</option>
            {[...new Set([...systems, ...(system ? [system] : [])])].map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Kind{' '}
          <select value={kind} onChange={(e) => setKind(e.target.value)}>
            <option value="">all</option>
            {config.kinds.map((k) => (
              <option key={k}>{k}</option>
            ))}
          </select>
        </label>
        <span className="muted">{at ? `updated ${at.toLocaleTimeString()}` : 'loading…'}</span>
      </div>
      <Problem error={error} />
      <div className="board">
        {GATE_STATES.map((state) => {
          const inState = items.filter((i) => i.state === state);
          return (
            <section key={state} className={`column ${state}`} aria-label={TITLES[state]}>
              <h3>
                {TITLES[state]} <span className="count">{inState.length}</span>
              </h3>
              <ul>
                {inState.map((i) => (
                  <li key={`${i.source}:${i.ticket}`}>
                    <a href={`#/changes/${encodeURIComponent(i.source)}/${encodeURIComponent(i.ticket)}`}>{i.ticket}</a>{' '}
                    <span className="muted">
                      {i.source} · {i.kinds.join(', ')} on {i.systems.join(', ')}
                    </span>
                    {(state === 'blocked' || state === 'waiting-authorization') && i.reasons.length > 0 && (
                      <ul className="reasons">
                        {i.reasons.map((r) => (
                          <li key={r}>{r}</li>
                        ))}
                      </ul>
                    )}
                  </li>
                ))}
              </ul>
            </section>
          );
        })}
      </div>
    </section>
  );
}
