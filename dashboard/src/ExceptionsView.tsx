import { type ExceptionItem, getJson, postJson } from './api';
import { Decide } from './Decide';
import { timeLeft } from './format';
import { usePolling } from './poll';
import { Problem } from './Problem';
import type { ViewProps } from './views';

const DECIDE = '/api/exceptions/{id}/decision';
const OUTCOMES = [
  { value: 'accept', label: 'Accept' },
  { value: 'revoke', label: 'Revoke' },
];

/** Overdue first, then the soonest deadline. */
function byUrgency(a: ExceptionItem, b: ExceptionItem): number {
  return Number(b.overdue) - Number(a.overdue) || (a.timeLeftMs ?? Infinity) - (b.timeLeftMs ?? Infinity);
}

/**
 * View 4: the emergency exceptions nobody has decided yet — grants made before authorization — with their time left
 * and the identity as its target shows it now. A role the decision route admits accepts or revokes each inline.
 */
export function ExceptionsView({ token, may }: ViewProps) {
  const { data, error, at, reload } = usePolling(() => getJson<{ items: ExceptionItem[] }>('/api/exceptions?status=undecided&limit=200', token), 5_000, [token]);
  const decides = may('post', DECIDE);
  const items = [...(data?.items ?? [])].sort(byUrgency);
  return (
    <section>
      <h2>Emergency exceptions</h2>
      <p className="muted">
        Grants an emergency change made before it was authorized, waiting for a security reviewer. {at ? `Updated ${at.toLocaleTimeString()}.` : 'Loading…'}
      </p>
      <Problem error={error} />
      {data && items.length === 0 && <p>No exception waits for a decision.</p>}
      <ul className="queue" aria-label="Emergency exceptions">
        {items.map((e) => (
          <li key={e.id} aria-label={e.id} className={e.overdue ? 'overdue' : ''}>
            <h3>
              {e.id} <span className={e.overdue ? 'due overdue' : 'due'}>{e.timeLeftMs === null ? e.status : timeLeft(e.timeLeftMs)}</span>
            </h3>
            <dl>
              <dt>Ticket</dt>
              <dd>
                <a href={`#/changes/${encodeURIComponent(e.source)}/${encodeURIComponent(e.ticket)}`}>{e.ticket}</a> ({e.source}, {e.actionKind})
              </dd>
              <dt>Identity</dt>
              <dd>
                {e.identity.name ?? '?'} on {e.system}
              </dd>
              <dt>Granted</dt>
              <dd>{e.grants.join('; ')}</dd>
              <dt>Still held</dt>
              <dd>{'error' in e.current ? `not read: ${e.current.error}` : e.current.exists ? e.current.stillGranted.join('; ') || 'none of it' : 'the identity is gone'}</dd>
              <dt>Requested by</dt>
              <dd>{e.requester ?? 'unknown'}</dd>
              <dt>Status</dt>
              <dd>
                {e.status} · with no decision by {new Date(e.deadline).toLocaleString()}: {e.onDeadline}
              </dd>
            </dl>
            {decides && (
              <Decide
                outcomes={OUTCOMES}
                submit={async (decision, justification) => {
                  const r = await postJson<{ status: string }>(DECIDE.replace('{id}', encodeURIComponent(e.id)), { decision, justification }, token);
                  reload();
                  return `${decision} (${r.status})`;
                }}
              />
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}
