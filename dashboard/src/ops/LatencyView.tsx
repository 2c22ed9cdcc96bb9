import { useState } from 'react';
import { getJson } from '../api';
import { usePolling } from '../poll';
import { BarChart, LineChart } from './Charts';
import { duration, type LatencyReport, WINDOWS, type WindowName, windowQuery } from './reports';
import { SystemFilter, Updated } from './controls';

const KINDS = ['', 'joiner', 'mover', 'leaver', 'deploy', 'decommission', 'rotate'];

/** View 9: event-to-verified latency (p50, p95) and throughput (steps verified) per hour or day, as charts. */
export function LatencyView({ token }: { token: string }) {
  const [win, setWin] = useState<WindowName>('24h');
  const [kind, setKind] = useState('');
  const [system, setSystem] = useState('');
  const query = windowQuery(win, { bucket: WINDOWS[win].bucket, kind, system });
  const { data, error, at } = usePolling(() => getJson<LatencyReport>(`/api/reports/latency?${query}`, token), 10_000, [token, win, kind, system]);
  const points = data?.points ?? [];
  const labels = points.map((p) => (data?.bucket === 'hour' ? new Date(p.at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : new Date(p.at).toLocaleDateString()));
  return (
    <section>
      <h2>Event to verified: latency and throughput</h2>
      <div className="filters">
        <label>
          Window{' '}
          <select value={win} onChange={(e) => setWin(e.target.value as WindowName)}>
            {(Object.keys(WINDOWS) as WindowName[]).map((w) => (
              <option key={w} value={w}>
                {WINDOWS[w].label} (per {WINDOWS[w].bucket})
              </option>
            ))}
          </select>
        </label>
        <label>
          Kind{' '}
          <select value={kind} onChange={(e) => setKind(e.target.value)}>
            {KINDS.map((k) => (
              <option key={k} value={k}>
                {k || 'all'}
              </option>
            ))}
          </select>
        </label>
        <SystemFilter value={system} onChange={setSystem} />
        <Updated at={at} />
      </div>
      {error && <p role="alert">{error.message}</p>}
      {data && (
        <dl className="figures" aria-label="Overall">
          <div>
            <dt>Steps verified</dt>
            <dd>{data.overall.verified}</dd>
          </div>
          <div>
            <dt>p50</dt>
            <dd>{duration(data.overall.p50Ms)}</dd>
          </div>
          <div>
            <dt>p95</dt>
            <dd>{duration(data.overall.p95Ms)}</dd>
          </div>
        </dl>
      )}
      <LineChart
        label="Event-to-verified latency, p50 and p95"
        labels={labels}
        format={duration}
        series={[
          { name: 'p50', colour: '#2e90fa', values: points.map((p) => p.p50Ms) },
          { name: 'p95', colour: '#f79009', values: points.map((p) => p.p95Ms) },
        ]}
      />
      <BarChart
        label="Throughput: steps verified and failed"
        labels={labels}
        series={[
          { name: 'verified', colour: '#12b76a', values: points.map((p) => p.verified) },
          { name: 'failed', colour: '#d92d20', values: points.map((p) => p.failed) },
        ]}
      />
      <details>
        <summary>Numbers per {data?.bucket ?? 'bucket'}</summary>
        <table aria-label="Latency per bucket">
          <thead>
            <tr>
              <th>From</th>
              <th>Verified</th>
              <th>Failed</th>
              <th>p50 (ms)</th>
              <th>p95 (ms)</th>
            </tr>
          </thead>
          <tbody>
            {points
              .filter((p) => p.verified + p.failed > 0)
              .map((p) => (
                <tr key={p.at}>
                  <td>{new Date(p.at).toLocaleString()}</td>
                  <td>{p.verified}</td>
                  <td>{p.failed}</td>
                  <td>{p.p50Ms ?? '–'}</td>
                  <td>{p.p95Ms ?? '–'}</td>
                </tr>
              ))}
          </tbody>
        </table>
      </details>
    </section>
  );
}
