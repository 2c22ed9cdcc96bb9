/**
 * A workflow history as searchable text: every payload decoded. In a fetched history payload bytes are Uint8Arrays
 * (JSON.stringify shows them as numbered bytes), and in a history's JSON export they are Base64 strings: searching
 * either undecoded finds nothing, so a secret in a payload would go unnoticed. Each test that searches one also looks
 * for something that must be there (a positive control), so the search is known to look where the payloads are.
 */
export function historyText(history: unknown): string {
  const out: string[] = [];
  const seen = new Set<unknown>();
  const walk = (v: unknown): void => {
    if (v instanceof Uint8Array) out.push(Buffer.from(v).toString('utf8'));
    else if (typeof v === 'string') {
      out.push(v);
      if (v.length >= 8 && v.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(v)) out.push(Buffer.from(v, 'base64').toString('utf8'));
    } else if (v && typeof v === 'object' && !seen.has(v)) {
      seen.add(v);
      Object.values(v).forEach(walk);
    }
  };
  walk(history);
  return out.join('\n');
}
