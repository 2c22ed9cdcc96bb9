import { ApiError } from './api';

/** A view's load error; a refusal for the person's role says so rather than looking like a fault. */
export function Problem({ error }: { error?: Error }) {
  if (!error) return null;
  if (error instanceof ApiError && error.status === 403) return <p role="alert">Not for your role: {error.message}</p>;
  return <p role="alert">{error.message}</p>;
}
