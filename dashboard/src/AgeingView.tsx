import { type Ageing, getJson } from './api';
import { usePolling } from './poll';
import { Problem } from './Problem';
import type { ViewProps } from './views';

/**
 * View 2: how long open changes have waited, in brackets of whole days since the gateway first received each ticket,
 * each bracket's tickets oldest first.
 */
export function AgeingView({ token }: ViewProps) {
  const { data, error, at } = usePolling(() => getJson<Ageing>('/api/changes/ageing?limit=200', token), 10_000, [token]);
  return (
    <section>
      <h2>Ageing of open changes</h2>
      <p className="muted">
        Age: whole days since the gateway first received the ticket. Open: not closed or cancelled. {at ? `Updated ${at.toLocaleTimeString()}.` : 'Loading…'}
      </p>
      <Problem error={error} />
      {data && (
        <div className="board">
          {data.brackets.map((b) => (
            <section key={b.bracket} className={`column age-${b.bracket}`} aria-label={b.label}>
              <h3>
                {b.label} <span className="count">{b.count}</span>
              </h3>
              <ul>
                {b.tickets.map((t) => (
                  <li key={`${t.source}:${t.ticket}`}>
                    <a href={`#/changes/${encodeURIComponent(t.source)}/${encodeURIComponent(t.ticket)}`}>{t.ticket}</a>{' '}
                    <span className="muted">
                      {t.ageDays} d · {t.state} · {t.kinds.join(', ')}
                    </span>
                  </li>
                ))}
              </ul>
              {b.count > b.tickets.length && <p className="muted">and {b.count - b.tickets.length} more</p>}
            </section>
          ))}
        </div>
      )}
    </section>
  );
}
