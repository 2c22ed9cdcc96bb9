/**
 * PKI certificates for the Vault-API connector: `pki/<cn>` names every unexpired, non-CA certificate with that CN in
 * the mount (see vault-grammar.ts on why not by role). Issue, revoke, two-phase rotation; private keys leave only as
 * the `Secret` of a rotation.
 */
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { absent, type ChangeOutcome, type ObservedAccount, type ProvisionOutcome, type RotationResult } from '../connector';
import { ConnectorRefusal, FailureType } from '../connector-errors';
import { Secret } from '../secret';
import type { VaultHttp } from './vault-http';

const SERIAL = /^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){0,63}$/;

interface CertInfo {
  serial: string;
  commonName: string;
  dns: string[];
  notAfter: number;
  ca: boolean;
  pem: string;
}

export interface CertState extends CertInfo {
  revoked: boolean;
}

export interface VaultPkiOptions {
  /** The connector's name, for messages. */
  name: string;
  vault: VaultHttp;
  pkiMount: string[];
  /** The role certificates are issued with; without it, pki identities are refused. */
  pkiRole?: string;
  /** Requested certificate lifetime (Vault duration); the role's default when absent. */
  pkiTtl?: string;
}

export class VaultPki {
  private readonly name: string;
  private readonly vault: VaultHttp;
  private readonly pkiMount: string[];
  private readonly opts: { pkiRole?: string; pkiTtl?: string };
  /** A certificate's contents never change; only its revocation does, and that is always read fresh. */
  private readonly certCache = new Map<string, CertInfo | null>();

  constructor(o: VaultPkiOptions) {
    this.name = o.name;
    this.vault = o.vault;
    this.pkiMount = o.pkiMount;
    this.opts = { pkiRole: o.pkiRole, pkiTtl: o.pkiTtl };
  }

  /**
   * Second phase of a certificate rotation: revokes every other live certificate of the CN once the new one (`keep`)
   * is delivered and verified. `keep` must be a live certificate of that CN, or nothing is revoked: the workload would
   * otherwise be left with no working certificate.
   */
  async retireOthers(cn: string, shown: string, keep: string): Promise<{ retired: number; detail: string }> {
    if (!SERIAL.test(keep)) throw new ConnectorRefusal(FailureType.InvalidIdentity, `${this.name}: '${keep.slice(0, 80)}' is not a certificate serial number`);
    const live = await this.liveCerts(cn);
    if (!live.some((c) => sameSerial(c.serial, keep))) {
      throw new ConnectorRefusal(
        FailureType.TargetRefused,
        `${this.name}: ${keep} is not a live certificate of ${shown}; nothing was revoked, so the earlier certificates keep working`,
      );
    }
    const others = live.filter((c) => !sameSerial(c.serial, keep));
    await this.revokeSerials(others.map((c) => c.serial));
    return {
      retired: others.length,
      detail: others.length > 0 ? `revoked ${others.length} earlier certificate(s) of ${shown}, keeping ${keep}` : `${shown} had no live certificate but ${keep}`,
    };
  }

  private requirePkiRole(): string {
    if (this.opts.pkiRole === undefined) throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: no pkiRole is configured, so certificates cannot be issued`);
    return this.opts.pkiRole;
  }

  private async readCert(serial: string): Promise<{ info: CertInfo | null; revoked: boolean } | null> {
    const res = await this.vault.call<{ certificate?: string; revocation_time?: number }>('GET', [...this.pkiMount, 'cert', serial], { absentOk: true });
    if (!res?.data?.certificate) return null;
    let info = this.certCache.get(serial);
    if (info === undefined) {
      info = parseCert(serial, res.data.certificate);
      this.certCache.set(serial, info);
    }
    return { info, revoked: Number(res.data.revocation_time ?? 0) > 0 };
  }

  /** Unexpired certificates that `match`, with their revocation read now. */
  async certificates(match: (c: CertInfo) => boolean): Promise<CertState[]> {
    const res = await this.vault.call<{ keys?: string[] }>('GET', [...this.pkiMount, 'certs'], { list: true, absentOk: true });
    const now = Date.now();
    const out: CertState[] = [];
    for (const serial of res?.data?.keys ?? []) {
      if (!SERIAL.test(serial)) continue;
      const cached = this.certCache.get(serial);
      if (cached === null || (cached && (!match(cached) || cached.notAfter <= now))) continue;
      const read = await this.readCert(serial);
      if (!read?.info || !match(read.info) || read.info.notAfter <= now) continue;
      out.push({ ...read.info, revoked: read.revoked });
    }
    return out;
  }

  /** The certificates `pki/<cn>` names: unexpired, not a CA, that CN, in this mount (see vault-grammar.ts on roles). */
  private ofCn(cn: string): Promise<CertState[]> {
    return this.certificates((c) => c.commonName === cn && !c.ca);
  }

  private async liveCerts(cn: string): Promise<CertState[]> {
    return (await this.ofCn(cn)).filter((c) => !c.revoked);
  }

  async inspectPki(cn: string): Promise<ObservedAccount> {
    const certs = await this.ofCn(cn);
    if (certs.length === 0) return { exists: false, grants: [] };
    const live = certs.filter((c) => !c.revoked);
    return {
      exists: true,
      locked: live.length === 0,
      grants: sansOf(live).map((d) => `dns=${d}`),
      attributes: {
        certificates: certs.length,
        liveSerials: live.map((c) => c.serial).sort(),
        expires: live.length > 0 ? new Date(Math.max(...live.map((c) => c.notAfter))).toISOString() : null,
      },
    };
  }

  private async issue(cn: string, dns: string[]): Promise<{ serial: string; key: Secret }> {
    const role = this.requirePkiRole();
    const res = await this.vault.call<{ serial_number?: string; private_key?: string; certificate?: string }>('POST', [...this.pkiMount, 'issue', role], {
      body: {
        common_name: cn,
        alt_names: dns.join(','),
        // The DNS SANs are exactly the dns= grants: the CN names the identity, it is not a name it may serve.
        exclude_cn_from_sans: true,
        ...(this.opts.pkiTtl ? { ttl: this.opts.pkiTtl } : {}),
      },
    });
    const serial = res.data?.serial_number;
    const pem = res.data?.private_key;
    if (!serial || !pem || !res.data?.certificate) throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: Vault issued no certificate and key for ${cn}`);
    this.certCache.set(serial, parseCert(serial, res.data.certificate));
    return { serial, key: new Secret(pem) };
  }

  private async revokeSerials(serials: string[]): Promise<void> {
    for (const serial of serials) await this.vault.call('POST', [...this.pkiMount, 'revoke'], { body: { serial_number: serial } });
  }

  async provisionPki(cn: string, dns: string[]): Promise<ProvisionOutcome> {
    this.requirePkiRole();
    const live = await this.liveCerts(cn);
    if (live.length === 0) {
      // The private key is not kept: a workload gets a usable key through rotate, which hands it to the store.
      const { serial } = await this.issue(cn, [...new Set(dns)].sort());
      return { created: true, detail: `issued certificate ${serial} for pki/${cn} with ${new Set(dns).size} DNS name(s)` };
    }
    const have = sansOf(live);
    const missing = [...new Set(dns)].filter((d) => !have.includes(d));
    if (missing.length === 0) return { created: false, detail: `pki/${cn} already has a live certificate for every requested name` };
    // Additive: the earlier certificates stay valid (their holders keep working) until they expire.
    const { serial } = await this.issue(cn, [...new Set([...have, ...missing])].sort());
    return { created: false, detail: `issued certificate ${serial} for pki/${cn} adding ${missing.length} DNS name(s); earlier certificates stay valid` };
  }

  async revokePki(cn: string): Promise<ChangeOutcome> {
    const certs = await this.ofCn(cn);
    if (certs.length === 0) return absent(`pki/${cn} (no unexpired certificate)`);
    const live = certs.filter((c) => !c.revoked);
    // A certificate cannot be deleted: its revoked record stays until it expires, whatever the revoke policy says.
    if (live.length === 0) return { changed: false, detail: `every certificate of pki/${cn} was already revoked` };
    await this.revokeSerials(live.map((c) => c.serial));
    return { changed: true, detail: `revoked ${live.length} certificate(s) of pki/${cn}; the records stay until they expire` };
  }

  async revokeSans(cn: string, dns: string[]): Promise<ChangeOutcome> {
    const take = new Set(dns);
    const certs = await this.ofCn(cn);
    // No unexpired certificate at all is what inspect calls absent: nothing carries the names, and nothing exists.
    if (certs.length === 0) return absent(`pki/${cn} (no unexpired certificate)`);
    const live = certs.filter((c) => !c.revoked);
    const carrying = live.filter((c) => c.dns.some((d) => take.has(d)));
    if (carrying.length === 0) return { changed: false, detail: `no live certificate of pki/${cn} carries ${dns.join(', ')}` };
    const others = live.filter((c) => !carrying.includes(c));
    const keep = sansOf(carrying).filter((d) => !take.has(d) && !sansOf(others).includes(d));
    // A certificate cannot lose a name: the ones carrying it are revoked, and the names they also held are re-issued.
    let reissued = '';
    if (keep.length > 0) reissued = `, issued ${(await this.issue(cn, keep)).serial} for the ${keep.length} remaining name(s) (its key is not retained: rotate to deliver one)`;
    await this.revokeSerials(carrying.map((c) => c.serial));
    return { changed: true, detail: `revoked ${carrying.length} certificate(s) of pki/${cn} carrying ${dns.join(', ')}${reissued}` };
  }

  /**
   * First phase: a new certificate (new key, same names). The earlier ones keep working until retireOthers revokes
   * them, once the new key is delivered and verified.
   */
  async rotatePki(cn: string): Promise<RotationResult> {
    this.requirePkiRole();
    const live = await this.liveCerts(cn);
    if (live.length === 0) throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: pki/${cn} has no live certificate to rotate`);
    const { serial, key } = await this.issue(cn, sansOf(live));
    return {
      secret: key,
      credentialId: serial,
      detail: `issued certificate ${serial} for pki/${cn} (new private key); the ${live.length} earlier one(s) stay valid until retired`,
    };
  }

  async keyMatchesLiveCert(cn: string, secret: Secret): Promise<boolean> {
    let key: KeyObject;
    try {
      key = createPrivateKey(secret.reveal());
    } catch {
      return false;
    }
    const live = await this.liveCerts(cn);
    return live.some((c) => {
      try {
        return new X509Certificate(c.pem).checkPrivateKey(key);
      } catch {
        return false;
      }
    });
  }
}

/** Vault writes serials with colons (issue) or hyphens (some listings), in either case. */
function sameSerial(a: string, b: string): boolean {
  const norm = (s: string): string => s.toLowerCase().replace(/:/g, '-');
  return norm(a) === norm(b);
}

function sansOf(certs: CertInfo[]): string[] {
  return [...new Set(certs.flatMap((c) => c.dns))].sort();
}

/** Reads what the connector needs from a PEM certificate; null for one Node cannot parse (listed, never matched). */
function parseCert(serial: string, pem: string): CertInfo | null {
  try {
    const x = new X509Certificate(pem);
    const cn = /^CN=(.*)$/m.exec(x.subject)?.[1] ?? '';
    const dns = (x.subjectAltName ?? '')
      .split(', ')
      .filter((s) => s.startsWith('DNS:'))
      .map((s) => s.slice(4));
    return { serial, commonName: cn, dns, notAfter: Date.parse(x.validTo), ca: x.ca, pem };
  } catch {
    return null;
  }
}
