import { createHash } from 'node:crypto';

/**
 * RFC 8785 (JSON Canonicalization Scheme): object keys sorted by UTF-16 code units at every depth, no white space,
 * numbers and strings as ECMAScript's JSON.stringify writes them. The same value always yields the same bytes, and an
 * auditor's own JCS implementation yields them too. Values JSON cannot hold are refused, as RFC 8785 requires: a
 * non-finite number, a string with an unpaired surrogate. (Earlier rows were written by a version that turned those
 * into `null` and `"\udxxx"`; none is known to exist, and their stored text keeps verifying either way, since chain
 * checks hash the stored text.) Dates are written as their ISO string, and undefined members are left out, as
 * JSON.stringify does.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value, '$'));
}

// An unpaired UTF-16 surrogate: a high one not followed by a low one, or a low one not preceded by a high one.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function sortKeys(value: unknown, path: string): unknown {
  if (typeof value === 'number' && !Number.isFinite(value)) throw new TypeError(`canonical JSON: ${path} is ${value}, which JSON cannot hold`);
  if (typeof value === 'string' && LONE_SURROGATE.test(value)) throw new TypeError(`canonical JSON: ${path} holds an unpaired UTF-16 surrogate`);
  if (Array.isArray(value)) return value.map((v, i) => sortKeys(v, `${path}[${i}]`));
  if (value instanceof Date) return value.toISOString();
  if (value && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    // Array.prototype.sort without a comparator compares UTF-16 code units, which is RFC 8785's order (§3.2.3).
    return Object.fromEntries(
      Object.keys(record)
        .sort()
        .filter((k) => record[k] !== undefined)
        .map((k) => {
          if (LONE_SURROGATE.test(k)) throw new TypeError(`canonical JSON: a key in ${path} holds an unpaired UTF-16 surrogate`);
          return [k, sortKeys(record[k], `${path}.${k}`)];
        }),
    );
  }
  return value;
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** The chain's anchor: the previous hash of a ticket's first row. */
export const GENESIS_HASH = '0'.repeat(64);
