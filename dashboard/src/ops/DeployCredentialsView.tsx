import { useState } from 'react';
import { getJson } from '../api';
import { usePolling } from '../poll';
import { BarChart } from './Charts';
import { type DeployCredentials, duration, ticketHref } from './reports';
import { SystemFilter, Updated } from './controls';

/** View 8: pipeline runs' credentials minted against revoked, and each one still live (oldest first). */
export function DeployCredentialsView({ token }: { token: string }) {
  const [system, setSystem] = useState('');
  const query = new URLSearchParams(system ? { system } : {});
  const { data, error, at } = usePolling(() => getJson<DeployCredentials>(`/api/reports/deploy-credentials?${query}`, token), 10_000, [token, system]);
  const by = data?.bySystem ?? [];
  return (
    <section>
      <h2>Deploy credentials: minted, revoked, still live</h2>
      <div className="filters">
        <SystemFilter value={system} onChange={setSystem} />
        <Updated at={at} />
      </div>
      {error && <p role="alert">{error.message}</p>}
      {data && (
        <dl className="figures" aria-label="Deploy credentials">
          <div>
            <dt>Minted</dt>
            <dd>{data.minted}</dd>
          </div>
          <div>
            <dt>Revoked</dt>
            <dd>{data.revoked}</dd>
          </div>
          <div>
            <dt>Still live</dt>
            <dd className={data.live > 0 ? 'status failed' : ''}>{data.live}</dd>
          </div>
          <div>
            <dt>Revocations failed</dt>
            <dd>{data.failedRevocations}</dd>
          </div>
        </dl>
      )}
      <BarChart
        label="Minted, revoked and live by system"
        labels={by.map((s) => s.system)}
        series={[
          { name: 'minted', colour: '#2e90fa', values: by.map((s) => s.minted) },
          { name: 'revoked', colour: '#12b76a', values: by.map((s) => s.revoked) },
          { name: 'live', colour: '#f79009', values: by.map((s) => s.live) },
        ]}
      />
      <table aria-label="Live credentials">
        <thead>
          <tr>
            <th>Ticket</th>
            <th>Run</th>
            <th>System</th>
            <th>Identity</th>
            <th>Delivered to</th>
            <th>Live for</th>
            <th>Revocation</th>
          </tr>
        </thead>
        <tbody>
          {(data?.credentials ?? []).map((c) => (
            <tr key={`${c.source}:${c.ticket}:${c.runId}`}>
              <td>
                <a href={ticketHref(c.source, c.ticket)}>{c.ticket}</a>
              </td>
              <td>{c.runId}</td>
              <td>{c.system}</td>
              <td>{c.identity}</td>
              <td>{c.deliveredTo ?? '–'}</td>
              <td>{duration(Math.max(0, Date.now() - Date.parse(c.mintedAt)))}</td>
              <td className={c.revocationFailed ? 'status failed' : ''}>{c.revocationFailed ? 'failed' : 'pending'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
