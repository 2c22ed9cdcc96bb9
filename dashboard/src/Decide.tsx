import { type ReactNode, useState } from 'react';

/**
 * An inline decision: whatever fields the item needs (`children`), a justification, and one button per outcome. The
 * API's answer is shown as it comes: the recorded status, or the refusal with its reason.
 */
export function Decide({ outcomes, submit, children }: { outcomes: Array<{ value: string; label: string }>; submit: (outcome: string, justification: string) => Promise<string>; children?: ReactNode }) {
  const [justification, setJustification] = useState('');
  const [state, setState] = useState<{ pending?: boolean; done?: string; error?: string }>({});
  const decide = (outcome: string) => {
    setState({ pending: true });
    submit(outcome, justification).then(
      (done) => setState({ done }),
      (e: Error) => setState({ error: e.message }),
    );
  };
  if (state.done) return <p role="status">Decided: {state.done}</p>;
  return (
    <form className="decide" onSubmit={(e) => e.preventDefault()}>
      {children}
      <label>
        Justification <textarea value={justification} onChange={(e) => setJustification(e.target.value)} rows={2} />
      </label>
      <div className="buttons">
        {outcomes.map((o) => (
          <button key={o.value} type="button" disabled={state.pending} onClick={() => decide(o.value)}>
            {o.label}
          </button>
        ))}
      </div>
      {state.error && <p role="alert">{state.error}</p>}
    </form>
  );
}
