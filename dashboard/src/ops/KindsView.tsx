import { useState } from 'react';
import { getJson } from '../api';
import { usePolling } from '../poll';
import { BarChart } from './Charts';
import { type KindShare, percent, type WindowName, windowQuery } from './reports';
import { WindowPicker } from './WindowPicker';
import { SystemFilter } from './controls';

/** View 10: how the steps that ended split by action kind (joiner, mover, leaver, deploy, decommission, rotate), and each kind's success rate. */
export function KindsView({ token }: { token: string }) {
  const [win, setWin] = useState<WindowName>('7d');
  const [system, setSystem] = useState('');
  const { data, error, at } = usePolling(() => getJson<{ total: number; kinds: KindShare[] }>(`/api/reports/kinds?${windowQuery(win, { system })}`, token), 10_000, [token, win, system]);
  const kinds = data?.kinds ?? [];
  return (
    <section>
      <h2>Changes by kind and their success rates</h2>
      <div className="filters">
        <SystemFilter value={system} onChange={setSystem} />
        <WindowPicker value={win} onChange={setWin} at={at} />
        <span>{data ? `${data.total} steps ended` : ''}</span>
      </div>
      {error && <p role="alert">{error.message}</p>}
      <BarChart
        label="Steps verified and failed by kind"
        labels={kinds.map((k) => k.kind)}
        series={[
          { name: 'verified', colour: '#12b76a', values: kinds.map((k) => k.verified) },
          { name: 'failed', colour: '#d92d20', values: kinds.map((k) => k.failed) },
        ]}
      />
      <table aria-label="Kinds">
        <thead>
          <tr>
            <th>Kind</th>
            <th>Changes</th>
            <th>Steps</th>
            <th>Verified</th>
            <th>Failed</th>
            <th>Success rate</th>
            <th>Share of steps</th>
          </tr>
        </thead>
        <tbody>
          {kinds.map((k) => (
            <tr key={k.kind} aria-label={k.kind}>
              <th scope="row">{k.kind}</th>
              <td>{k.changes}</td>
              <td>{k.steps}</td>
              <td>{k.verified}</td>
              <td className={k.failed > 0 ? 'status failed' : ''}>{k.failed}</td>
              <td>{percent(k.successRate)}</td>
              <td>{percent(k.share)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
