/** Machine-readable error codes the HTTP edge can answer with. */
export type AppErrorCode =
  | 'VALIDATION_FAILED'
  | 'MALFORMED_JSON'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'CONFLICT'
  | 'NOT_FOUND'
  | 'TICKET_FINALIZED'
  | 'UNAVAILABLE'
  | 'DEPLOY_FAILED'
  | 'UPSTREAM_FAILED'
  | 'INTERNAL';

export interface FieldIssue {
  path: string;
  message: string;
}

/** The one error type the HTTP edge maps to a response; anything else becomes a 500 without details. */
export class AppError extends Error {
  /** Response headers the error middleware sets with the body (`WWW-Authenticate` on a 401). */
  readonly headers: Record<string, string>;

  constructor(
    readonly status: number,
    readonly code: AppErrorCode,
    message: string,
    readonly issues: FieldIssue[] = [],
    options?: { cause?: unknown; headers?: Record<string, string> },
  ) {
    super(message, options);
    this.name = 'AppError';
    this.headers = options?.headers ?? {};
  }
}

/** Renders a zod-style path (['a', 0, 'b']) as `a[0].b`. */
export function formatPath(path: ReadonlyArray<string | number>): string {
  return path.reduce<string>((acc, part) => (typeof part === 'number' ? `${acc}[${part}]` : acc ? `${acc}.${part}` : part), '');
}
