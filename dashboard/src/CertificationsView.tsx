import { useState } from 'react';
import { type CertificationItem, getJson, postJson } from './api';
import { Decide } from './Decide';
import { timeLeft } from './format';
import { usePolling } from './poll';
import { Problem } from './Problem';
import type { ViewProps } from './views';

const DECIDE = '/api/certifications/{id}/decision';

function reviewerOf(item: CertificationItem): string {
  const r = item.reviewer;
  return r.kind === 'role' ? `role ${r.role}` : r.kind === 'group' ? `group ${r.group}` : `${r.user}'s manager`;
}

async function undecided(token: string): Promise<CertificationItem[]> {
  // Escalated items are past due and still undecided: they belong in the queue, first.
  const [open, escalated] = await Promise.all(['open', 'escalated'].map((s) => getJson<{ items: CertificationItem[] }>(`/api/certifications?status=${s}&limit=500`, token)));
  return [...escalated!.items, ...open!.items.sort((a, b) => a.dueAt.localeCompare(b.dueAt))];
}

/**
 * View 5: certification items waiting for their reviewer — an identity's access, opened when something about it
 * changed — soonest due first. A role the decision route admits keeps or revokes each grant inline; the item's own
 * reviewer rule is the API's to apply.
 */
export function CertificationsView({ token, may }: ViewProps) {
  const { data, error, at, reload } = usePolling(() => undecided(token), 5_000, [token]);
  const decides = may('post', DECIDE);
  return (
    <section>
      <h2>Certifications</h2>
      <p className="muted">Access to review, opened when an identity&apos;s owner, role or credential changed. {at ? `Updated ${at.toLocaleTimeString()}.` : 'Loading…'}</p>
      <Problem error={error} />
      {data && data.length === 0 && <p>No certification waits for a decision.</p>}
      <ul className="queue" aria-label="Certifications">
        {(data ?? []).map((item) => (
          <CertificationEntry key={item.id} item={item} token={token} decides={decides} onDecided={reload} />
        ))}
      </ul>
    </section>
  );
}

function CertificationEntry({ item, token, decides, onDecided }: { item: CertificationItem; token: string; decides: boolean; onDecided: () => void }) {
  const [choice, setChoice] = useState<Record<string, 'keep' | 'revoke'>>(() => Object.fromEntries(item.grants.map((g) => [g, 'keep'])));
  const left = Date.parse(item.dueAt) - Date.now();
  const overdue = item.status === 'escalated' || left < 0;
  return (
    <li aria-label={`${item.name} on ${item.system}`} className={overdue ? 'overdue' : ''}>
      <h3>
        {item.name} on {item.system} <span className={overdue ? 'due overdue' : 'due'}>{timeLeft(left)}</span>
      </h3>
      <dl>
        <dt>Why</dt>
        <dd>
          {item.trigger}: {item.detail || item.reference}
        </dd>
        <dt>Owner</dt>
        <dd>{item.owner ?? 'none named'}</dd>
        <dt>Reviewer</dt>
        <dd>{reviewerOf(item)}</dd>
        <dt>Status</dt>
        <dd>
          {item.status} · with no decision: {item.onTimeout}
        </dd>
        {!decides && (
          <>
            <dt>Grants</dt>
            <dd>{item.grants.join('; ')}</dd>
          </>
        )}
      </dl>
      {decides && (
        <Decide
          outcomes={[{ value: 'decide', label: 'Decide' }]}
          submit={async (_outcome, justification) => {
            const decisions = item.grants.map((grant) => ({ grant, decision: choice[grant] ?? 'keep' }));
            const r = await postJson<{ status: string }>(DECIDE.replace('{id}', encodeURIComponent(item.id)), { decisions, justification }, token);
            onDecided();
            return r.status;
          }}
        >
          <fieldset>
            <legend>Grants</legend>
            {item.grants.map((g) => (
              <label key={g} className="grant">
                <code>{g}</code>{' '}
                <select aria-label={g} value={choice[g]} onChange={(e) => setChoice({ ...choice, [g]: e.target.value as 'keep' | 'revoke' })}>
                  <option value="keep">keep</option>
                  <option value="revoke">revoke</option>
                </select>
              </label>
            ))}
          </fieldset>
        </Decide>
      )}
    </li>
  );
}
