import type { Response } from 'express';

/**
 * For the simulators' fault hooks: the request is carried out as usual, and its answer waits. `decide` is asked when
 * the answer is about to be sent; a promise it gives holds the answer until it settles. A client that goes away
 * meanwhile (its process killed) never learns that its write landed, as after a connection lost on the way back.
 */
export function holdAnswerIf(res: Response, decide: () => Promise<void> | undefined): void {
  const end = res.end as (...args: unknown[]) => Response;
  res.end = function held(this: Response, ...args: unknown[]) {
    const wait = decide();
    if (!wait) return end.apply(this, args);
    void wait.catch(() => undefined).then(() => end.apply(this, args));
    return this;
  } as Response['end'];
}
