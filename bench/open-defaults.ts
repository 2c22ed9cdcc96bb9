export const ARG_DEFAULTS = { n: '10000', rate: '200', callers: '20', seconds: '10' } as const;
