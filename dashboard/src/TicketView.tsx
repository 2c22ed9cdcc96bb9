import { ApiError, type ClosureCheck, type DashboardConfig, type EvidenceBundle, getJson } from './api';
import { usePolling } from './poll';
import { Problem } from './Problem';

/** View 3: one ticket — its steps, its evidence rows with the chain check, and links to the ticket and its workflow. */
export function TicketView({ token, config, source, ticket }: { token: string; config: DashboardConfig; source: string; ticket: string }) {
  const base = `/api/changes/${encodeURIComponent(source)}/${encodeURIComponent(ticket)}`;
  const closure = usePolling(() => getJson<ClosureCheck>(`${base}/closure-check`, token), 5_000, [token, base]);
  // A ticket no step has acted on yet has no evidence: that is an empty list, not an error.
  const evidence = usePolling(
    () => getJson<EvidenceBundle>(`${base}/evidence`, token).catch((e: unknown) => (e instanceof ApiError && e.status === 404 ? null : Promise.reject(e))),
    5_000,
    [token, base],
  );
  const ticketLink = config.ticketLinks[source]?.replace('{key}', encodeURIComponent(ticket));
  const workflowLink = config.temporalUi
    ? `${config.temporalUi.url}/namespaces/${encodeURIComponent(config.temporalUi.namespace)}/workflows/${encodeURIComponent(`change-${source}-${ticket}`)}`
    : undefined;
  const c = closure.data;
  const chain = evidence.data?.chain;
  return (
    <section>
      <p>
        <a href="#/changes">← all changes</a>
      </p>
      <h2>
        {source} {ticket}
      </h2>
      <p className="links">
        {ticketLink && (
          <a href={ticketLink} target="_blank" rel="noreferrer">
            Open the ticket
          </a>
        )}
        {workflowLink && (
          <a href={workflowLink} target="_blank" rel="noreferrer">
            Workflow in Temporal UI
          </a>
        )}
      </p>
      <Problem error={closure.error} />
      {c && (
        <>
          <p className={c.allowed ? 'verdict allowed' : 'verdict blocked'}>
            {c.allowed ? 'May close' : 'May not close yet'} · ticket state {c.ticketState}
            {c.phase ? ` (${c.phase})` : ''}
          </p>
          {c.reasons.length > 0 && (
            <ul className="reasons" aria-label="Reasons">
              {c.reasons.map((r) => (
                <li key={r}>{r}</li>
              ))}
            </ul>
          )}
          <h3>Steps</h3>
          <table aria-label="Steps">
            <thead>
              <tr>
                <th>Step</th>
                <th>Kind</th>
                <th>System</th>
                <th>Status</th>
                <th>Detail</th>
                <th>Verified at</th>
              </tr>
            </thead>
            <tbody>
              {c.steps.map((s) => (
                <tr key={s.stepId}>
                  <td>{s.stepId}</td>
                  <td>{s.kind}</td>
                  <td>{s.system}</td>
                  <td className={`status ${s.status}`}>{s.status}</td>
                  <td>{s.detail ?? ''}</td>
                  <td>{s.verifiedAt ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      <h3>Evidence</h3>
      <Problem error={evidence.error} />
      {evidence.data === null && <p>No evidence recorded yet.</p>}
      {chain && (
        <p className={chain.valid ? 'chain ok' : 'chain broken'}>
          {chain.valid ? `Hash chain intact over ${chain.rows} rows` : `Hash chain broken at row ${chain.brokenAt?.seq}: ${chain.brokenAt?.reason}`}
        </p>
      )}
      {evidence.data && (
        <table aria-label="Evidence">
          <thead>
            <tr>
              <th>#</th>
              <th>Step</th>
              <th>Outcome</th>
              <th>Verified</th>
              <th>Hash</th>
            </tr>
          </thead>
          <tbody>
            {evidence.data.rows.map((r) => (
              <tr key={r.seq}>
                <td>{r.seq}</td>
                <td>{r.stepId}</td>
                <td>{r.outcome}</td>
                <td>{r.verified ? 'yes' : 'no'}</td>
                <td>
                  <code title={r.hash}>{r.hash.slice(0, 16)}…</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
