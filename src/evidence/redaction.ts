/** Keys whose values are credentials. Evidence, logs and notes must never carry them. */
const SECRET_KEY = /pass(word)?|secret|token|credential|private[_-]?key|api[_-]?key|authorization/i;

/** Throws if a value carries a key that names a secret; evidence is refused rather than silently scrubbed. */
export function assertNoSecrets(value: unknown, path = ''): void {
  if (Array.isArray(value)) {
    value.forEach((v, i) => assertNoSecrets(v, `${path}[${i}]`));
    return;
  }
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (SECRET_KEY.test(k)) throw new Error(`refusing to record a secret-bearing field at ${path ? `${path}.` : ''}${k}`);
      assertNoSecrets(v, path ? `${path}.${k}` : k);
    }
  }
}

/** Replaces credentials in a URL or text before it is logged. */
export function redactUrl(url: string): string {
  return url.replace(/(\/\/[^:/@]+:)[^@/]*@/, '$1***@');
}
