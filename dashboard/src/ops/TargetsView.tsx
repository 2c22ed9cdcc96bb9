import { useState } from 'react';
import { getJson } from '../api';
import { usePolling } from '../poll';
import { percent, type TargetHealth, ticketHref, type WindowName, windowQuery } from './reports';
import { WindowPicker } from './WindowPicker';

/** View 6: per target system, the steps that failed verification, the retries it took, its open drift and leaked-secret reports. */
export function TargetsView({ token }: { token: string }) {
  const [win, setWin] = useState<WindowName>('7d');
  const { data, error, at } = usePolling(() => getJson<{ systems: TargetHealth[]; unmatchedLeaks: string }>(`/api/reports/targets?${windowQuery(win)}`, token), 10_000, [token, win]);
  const systems = data?.systems ?? [];
  return (
    <section>
      <h2>Target systems: failures, retries, drift and leaks</h2>
      <div className="filters">
        <WindowPicker value={win} onChange={setWin} at={at} />
      </div>
      {error && <p role="alert">{error.message}</p>}
      <table aria-label="Target systems">
        <thead>
          <tr>
            <th>System</th>
            <th>Steps</th>
            <th>Verified</th>
            <th>Failed verification</th>
            <th>Failure rate</th>
            <th>Retries</th>
            <th>Extra read-backs</th>
            <th>Open drift</th>
            <th>Leak reports</th>
          </tr>
        </thead>
        <tbody>
          {systems.map((t) => (
            <tr key={t.system} aria-label={t.system === data?.unmatchedLeaks ? 'unmatched leak reports' : t.system}>
              <th scope="row">{t.system === data?.unmatchedLeaks ? '(matched no credential)' : t.system}</th>
              <td>{t.steps}</td>
              <td>{t.verified}</td>
              <td className={t.failed > 0 ? 'status failed' : ''}>{t.failed}</td>
              <td>{percent(t.failureRate)}</td>
              <td>{t.retries}</td>
              <td>{t.reReads}</td>
              <td title={Object.entries(t.drift.byType).map(([k, n]) => `${k}: ${n}`).join(', ')}>{t.drift.open}</td>
              <td title={Object.entries(t.leaks.byOutcome).map(([k, n]) => `${k}: ${n}`).join(', ')}>{t.leaks.reports}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {systems.length === 0 && data && <p className="muted">Nothing recorded in this window.</p>}
      {systems
        .filter((t) => t.recentFailures.length > 0)
        .map((t) => (
          <section key={t.system} aria-label={`Recent failures on ${t.system}`}>
            <h3>Recent failures on {t.system}</h3>
            <ul className="reasons">
              {t.recentFailures.map((f) => (
                <li key={`${f.source}:${f.ticket}:${f.stepId}`}>
                  <a href={ticketHref(f.source, f.ticket)}>{f.ticket}</a> {f.kind} · {new Date(f.at).toLocaleString()} — {f.detail}
                </li>
              ))}
            </ul>
          </section>
        ))}
    </section>
  );
}
