import { createHash } from 'node:crypto';

/**
 * JSON with object keys sorted at every depth: the same value always yields the same bytes. Not RFC 8785 (an object's
 * integer-like keys come out in numeric order, and values JSON cannot hold are written as JSON.stringify writes them),
 * and kept as it is: action ids are derived from it, and a changed id would make a redelivered ticket's action look
 * new. Evidence hashes use {@link jcs}.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value instanceof Date) return value.toISOString();
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value as Record<string, unknown>)
        .sort()
        .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
        .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

/**
 * RFC 8785, the JSON Canonicalization Scheme: what evidence rows are hashed over and exports are signed over, so that an
 * auditor's own JCS implementation reproduces the bytes. Object keys sorted by UTF-16 code units (§3.2.3; what
 * Array.prototype.sort compares), no white space, numbers and strings as ECMAScript's JSON.stringify writes them
 * (§3.2.2). Values JSON cannot hold are refused, as the RFC requires: a non-finite number, a string with an unpaired
 * surrogate. Dates are written as their ISO string, and undefined members left out, as JSON.stringify does.
 */
export function jcs(value: unknown): string {
  return writeJcs(value, '$');
}

// An unpaired UTF-16 surrogate: a high one not followed by a low one, or a low one not preceded by a high one.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Where a parsed JSON value holds a string (or key) with an unpaired surrogate, which RFC 8785 cannot write: the path
 * to it, or null. The edge refuses such input with a 4xx instead of letting an evidence append fail on it later.
 */
export function unpairedSurrogateAt(value: unknown, path: Array<string | number> = []): Array<string | number> | null {
  if (typeof value === 'string') return LONE_SURROGATE.test(value) ? path : null;
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) {
      const found = unpairedSurrogateAt(v, [...path, i]);
      if (found) return found;
    }
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const found = LONE_SURROGATE.test(k) ? [...path, k] : unpairedSurrogateAt(v, [...path, k]);
      if (found) return found;
    }
  }
  return null;
}

function jcsString(text: string, path: string): string {
  if (LONE_SURROGATE.test(text)) throw new TypeError(`canonical JSON: ${path} holds an unpaired UTF-16 surrogate`);
  return JSON.stringify(text);
}

function writeJcs(value: unknown, path: string): string {
  if (value === null) return 'null';
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`canonical JSON: ${path} is ${value}, which JSON cannot hold`);
      return JSON.stringify(value);
    case 'string':
      return jcsString(value, path);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v, i) => (v === undefined ? 'null' : writeJcs(v, `${path}[${i}]`))).join(',')}]`;
      const record = value as Record<string, unknown>;
      // Written member by member: an object built from sorted entries would put integer-like keys first again.
      const members = Object.keys(record)
        .filter((k) => record[k] !== undefined)
        .sort()
        .map((k) => `${jcsString(k, `a key in ${path}`)}:${writeJcs(record[k], `${path}.${k}`)}`);
      return `{${members.join(',')}}`;
    }
    default:
      throw new TypeError(`canonical JSON: ${path} is a ${typeof value}, which JSON cannot hold`);
  }
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** The chain's anchor: the previous hash of a ticket's first row. */
export const GENESIS_HASH = '0'.repeat(64);
