import { useState } from 'react';
import { getJson } from '../api';
import { usePolling } from '../poll';
import type { InventoryItem } from './reports';
import { Updated } from './controls';

const STATUSES = ['', 'orphan', 'managed', 'protected', 'disabled', 'revoked'];

/**
 * View 7: the identities the gateway knows, orphans first to the eye, filterable by name, owner, workload, system and
 * status. It shows the first 500 rows that match; a count past that reads "500+", and the name filter finds one.
 */
export function InventoryView({ token }: { token: string }) {
  const [name, setName] = useState('');
  const [owner, setOwner] = useState('');
  const [workload, setWorkload] = useState('');
  const [system, setSystem] = useState('');
  const [status, setStatus] = useState('');
  const filters = Object.fromEntries(Object.entries({ name, owner, workload, system, status }).filter(([, v]) => v !== ''));
  const query = new URLSearchParams({ limit: '500', ...filters });
  const orphanQuery = new URLSearchParams({ limit: '500', ...filters, status: 'orphan' });
  const list = usePolling(() => getJson<{ items: InventoryItem[]; nextCursor: string | null }>(`/api/inventory?${query}`, token), 10_000, [token, name, owner, workload, system, status]);
  const orphans = usePolling(() => getJson<{ items: InventoryItem[]; nextCursor: string | null }>(`/api/inventory?${orphanQuery}`, token), 10_000, [token, name, owner, workload, system]);
  const items = list.data?.items ?? [];
  const count = (page?: { items: unknown[]; nextCursor: string | null }) => (page ? `${page.items.length}${page.nextCursor ? '+' : ''}` : '…');
  const text = (label: string, value: string, set: (v: string) => void) => (
    <label>
      {label} <input value={value} onChange={(e) => set(e.target.value.trim())} placeholder="any" size={14} />
    </label>
  );
  return (
    <section>
      <h2>Inventory</h2>
      <div className="filters">
        {text('Name', name, setName)}
        {text('Owner', owner, setOwner)}
        {text('Workload', workload, setWorkload)}
        {text('System', system, setSystem)}
        <label>
          Status{' '}
          <select value={status} onChange={(e) => setStatus(e.target.value)}>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s || 'all'}
              </option>
            ))}
          </select>
        </label>
        <Updated at={list.at} />
      </div>
      {(list.error ?? orphans.error) && <p role="alert">{(list.error ?? orphans.error)!.message}</p>}
      <dl className="figures" aria-label="Inventory">
        <div>
          <dt>Identities</dt>
          <dd>{count(list.data)}</dd>
        </div>
        <div>
          <dt>Orphans</dt>
          <dd className={orphans.data && orphans.data.items.length > 0 ? 'status failed' : ''}>{count(orphans.data)}</dd>
        </div>
      </dl>
      <table aria-label="Identities">
        <thead>
          <tr>
            <th>Name</th>
            <th>System</th>
            <th>Type</th>
            <th>Owner</th>
            <th>Workload</th>
            <th>Status</th>
            <th>Grants</th>
            <th>Changed</th>
          </tr>
        </thead>
        <tbody>
          {items.map((i) => (
            <tr key={i.id} aria-label={`${i.name}@${i.host || '-'} on ${i.system}`}>
              <td>
                {i.name}
                {i.host ? <span className="muted">@{i.host}</span> : null}
              </td>
              <td>{i.system}</td>
              <td>{i.type}</td>
              <td>{i.owner ?? '–'}</td>
              <td>{i.workload ?? '–'}</td>
              <td className={i.status === 'orphan' ? 'status failed' : ''}>{i.status}</td>
              <td title={i.grants.map((g) => `${g.grant} (${g.tickets.join(', ') || 'no ticket'})`).join('\n')}>{i.grants.length}</td>
              <td>{new Date(i.changedAt).toLocaleString()}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
