import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';

/** An OpenSSH ed25519 public key line: what CodeCommit users upload. */
export function sshPublicKey(): string {
  const raw = generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const field = (b: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(b.length);
    return Buffer.concat([length, b]);
  };
  return `ssh-ed25519 ${Buffer.concat([field(Buffer.from('ssh-ed25519')), field(raw)]).toString('base64')} test`;
}

/** A self-signed X.509 certificate (openssl), as an IAM signing certificate is uploaded; its key is thrown away. */
export function selfSignedCertificate(): string {
  return execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', '/dev/null', '-subj', '/CN=cg-test', '-days', '1'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
}

/** A salted `{SSHA}` hash as slappasswd makes it: how a directory holds a password. */
export function slappasswd(password: string): string {
  return execFileSync('slappasswd', ['-s', password], { encoding: 'utf8' }).trim();
}
