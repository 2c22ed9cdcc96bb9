import { useEffect, useState } from 'react';

/**
 * Short polling: `load` now and every `everyMs` while the view is shown; the newest answer or error wins. `reload`
 * asks again at once (after a decision, say).
 */
export function usePolling<T>(load: () => Promise<T>, everyMs: number, deps: readonly unknown[]): { data?: T; error?: Error; at?: Date; reload: () => void } {
  const [state, setState] = useState<{ data?: T; error?: Error; at?: Date }>({});
  const [asked, setAsked] = useState(0);
  useEffect(() => {
    let live = true;
    const run = () =>
      load().then(
        (data) => live && setState({ data, at: new Date() }),
        (error: Error) => live && setState((s) => ({ ...s, error })),
      );
    void run();
    const timer = setInterval(() => void run(), everyMs);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [...deps, asked]);
  return { ...state, reload: () => setAsked((n) => n + 1) };
}
