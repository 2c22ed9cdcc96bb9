import { getJson } from './api';

/** Whether the logged-in person's roles admit an API operation, e.g. `may('post', '/api/exceptions/{id}/decision')`. */
export type May = (method: string, path: string) => boolean;

interface OpenApiDocument {
  paths: Record<string, Record<string, { 'x-changegate-roles'?: string[] }>>;
}

/**
 * What the person may do, read from the API's own description (each operation's `x-changegate-roles`, taken from the
 * route's role gate), so the dashboard keeps no role table of its own. It only decides which controls to show: the
 * API refuses a call the roles do not admit whatever the page offers.
 */
export async function loadAccess(roles: readonly string[]): Promise<May> {
  const doc = await getJson<OpenApiDocument>('/openapi.json');
  return (method, path) => (doc.paths[path]?.[method.toLowerCase()]?.['x-changegate-roles'] ?? []).some((r) => roles.includes(r));
}
