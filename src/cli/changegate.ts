/**
 * `changegate <command>`: the offline tools an auditor runs without the gateway.
 *
 *   changegate verify-evidence bundle.json [--public-key KEY] [--seal-key-file SEALKEY]
 *
 * KEY is a file holding the gateway's public key (SPKI PEM, a JWK, or the answer of GET /api/evidence/public-key).
 * SEALKEY is a file holding CHANGEGATE_EVIDENCE_SEAL_KEY, for whoever holds it (the gateway's operator, at an audit):
 * each row's seal is then checked too. Without it the seals stand on the gateway's own chain check, which is signed.
 * The seal key is read from a file, never from the command line (where other users' `ps` would see it).
 * Exit codes: 0 the bundle verifies; 1 it does not (each problem printed with the row it breaks); 2 usage or an
 * unreadable file.
 */
import { readFileSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import { verifyExport } from '../evidence/evidence-export';
import { type EvidenceSealer, evidenceSealer } from '../evidence/evidence-seal';
import { parsePublicKey } from '../evidence/evidence-signing';

const USAGE = 'usage: changegate verify-evidence <bundle.json> [--public-key <file>] [--seal-key-file <file>]';

export function run(argv: string[], out: (line: string) => void, err: (line: string) => void): number {
  const [command, ...rest] = argv;
  if (command !== 'verify-evidence') {
    err(USAGE);
    return 2;
  }
  let file: string | undefined;
  let keyFile: string | undefined;
  let sealKeyFile: string | undefined;
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] as string;
    if (arg === '--public-key') keyFile = rest[++i];
    else if (arg.startsWith('--public-key=')) keyFile = arg.slice('--public-key='.length);
    else if (arg === '--seal-key-file') sealKeyFile = rest[++i];
    else if (arg.startsWith('--seal-key-file=')) sealKeyFile = arg.slice('--seal-key-file='.length);
    else if (!arg.startsWith('-') && file === undefined) file = arg;
    else {
      err(`unexpected argument '${arg}'\n${USAGE}`);
      return 2;
    }
  }
  if (!file || (rest.includes('--public-key') && !keyFile) || (rest.includes('--seal-key-file') && !sealKeyFile)) {
    err(USAGE);
    return 2;
  }
  let bundle: unknown;
  let key: KeyObject | undefined;
  try {
    bundle = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    err(`cannot read ${file} as JSON: ${(e as Error).message}`);
    return 2;
  }
  try {
    if (keyFile) key = parsePublicKey(readFileSync(keyFile, 'utf8'));
  } catch (e) {
    err(`cannot read the public key in ${keyFile}: ${(e as Error).message}`);
    return 2;
  }
  let sealer: EvidenceSealer | undefined;
  try {
    // The file's content is the key; a trailing newline is the editor's, not the key's. Never echoed.
    if (sealKeyFile) sealer = evidenceSealer(readFileSync(sealKeyFile, 'utf8').replace(/\r?\n$/, ''));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    err(`cannot use the seal key in ${sealKeyFile}: ${code ? `unreadable (${code})` : (e as Error).message}`);
    return 2;
  }
  const verdict = verifyExport(bundle, key, sealer);
  for (const p of verdict.problems) out(`FAIL ${p.message}`);
  if (!verdict.valid) {
    out(`NOT VERIFIED: ${verdict.problems.length} problem(s) in ${file}`);
    return 1;
  }
  out(`OK: ${verdict.rows} rows, hashes and chain intact, signature valid (key ${verdict.keyId})`);
  out(
    verdict.seals === 'checked'
      ? 'seals: every row carries the gateway\'s seal under the given seal key'
      : 'NOTE: row seals not checked (they need the gateway\'s seal key: --seal-key-file); the gateway\'s own seal check is in the signed chain check',
  );
  if (verdict.keySource === 'embedded') {
    out('NOTE: checked against the key the bundle carries; pass --public-key with the gateway\'s key to check who signed it');
  }
  return 0;
}

if (require.main === module) {
  process.exitCode = run(process.argv.slice(2), (l) => process.stdout.write(`${l}\n`), (l) => process.stderr.write(`${l}\n`));
}
