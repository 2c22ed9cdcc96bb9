import { closeSync, existsSync, fchmodSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * The demo secrets file (`.data/demo.env`, `NAME=value` lines): each wanted variable missing from it is made and
 * appended; other lines are left exactly as they were, and the file is kept readable by its owner only. Returns every
 * variable of the file, old and new.
 */
export function ensureDemoEnv(file: string, wanted: ReadonlyArray<readonly [name: string, make: () => string]>): Map<string, string> {
  const existing = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const values = new Map<string, string>();
  for (const line of existing.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) values.set(m[1] as string, m[2] as string);
  }
  const lines = wanted
    .filter(([name]) => !values.get(name))
    .map(([name, make]) => {
      const value = make();
      values.set(name, value);
      return `${name}=${value}\n`;
    });
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  // 'a' with mode 0600: created private whatever the umask; fchmod covers a file that already existed with a looser mode.
  const fd = openSync(file, 'a', 0o600);
  try {
    fchmodSync(fd, 0o600);
    if (lines.length > 0) {
      const separator = existing.length > 0 && !existing.endsWith('\n') ? '\n' : '';
      writeSync(fd, separator + lines.join(''));
    }
  } finally {
    closeSync(fd);
  }
  return values;
}

/** A role as the demo file's variable names spell it: `change-manager` → `CHANGE_MANAGER`. */
export function envRole(role: string): string {
  return role.toUpperCase().replace(/-/g, '_');
}
