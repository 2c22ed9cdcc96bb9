import axios from 'axios';

/**
 * Every item of one of the API's paged listings (`items`, `nextCursor`), read 500 at a time from the first page. A
 * test that counts a listing reads it whole: the machine's MariaDB keeps the accounts earlier runs left, so one page
 * is not the listing.
 */
export async function listAll<T = Record<string, unknown>>(url: string, token: string, maxPages = 100): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | null = null;
  for (let n = 0; n < maxPages; n += 1) {
    const at = new URL(url);
    at.searchParams.set('limit', '500');
    if (cursor) at.searchParams.set('cursor', cursor);
    const res = await axios.get(at.toString(), { headers: { authorization: `Bearer ${token}` }, validateStatus: () => true });
    if (res.status !== 200) throw new Error(`GET ${at.pathname}${at.search}: ${res.status} ${JSON.stringify(res.data).slice(0, 300)}`);
    items.push(...(res.data.items as T[]));
    cursor = res.data.nextCursor as string | null;
    if (!cursor) return items;
  }
  throw new Error(`GET ${url}: more than ${maxPages} pages`);
}
