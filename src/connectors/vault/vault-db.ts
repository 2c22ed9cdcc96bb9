/**
 * Dynamic database credentials for the Vault-API connector: `db/<role>` names the live leases of
 * `<databaseMount>/creds/<role>`. Leases are listed and looked up, issued and revoked; their passwords are never read.
 */
import { absent, type ChangeOutcome, type ObservedAccount, type ProvisionOutcome } from '../connector';
import { ConnectorRefusal, FailureType } from '../connector-errors';
import { segments, type VaultHttp, vaultErrorOf } from './vault-http';

const LEASE_KEY = /^[A-Za-z0-9._-]{1,128}$/;

export interface VaultDbLeasesOptions {
  /** The connector's name, for messages. */
  name: string;
  vault: VaultHttp;
  dbMount: string[];
}

export class VaultDbLeases {
  private readonly name: string;
  private readonly vault: VaultHttp;
  private readonly dbMount: string[];

  constructor(o: VaultDbLeasesOptions) {
    this.name = o.name;
    this.vault = o.vault;
    this.dbMount = o.dbMount;
  }

  async leaseIds(role: string): Promise<string[]> {
    const res = await this.vault.call<{ keys?: string[] }>('GET', ['sys', 'leases', 'lookup', ...this.dbMount, 'creds', role], {
      list: true,
      absentOk: true,
      trailingSlash: true,
    });
    const keys = res?.data?.keys ?? [];
    const bad = keys.find((k) => !LEASE_KEY.test(k));
    if (bad !== undefined) throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: Vault listed a lease key this connector cannot address`);
    return keys.sort();
  }

  async inspectDb(role: string): Promise<ObservedAccount> {
    const keys = await this.leaseIds(role);
    if (keys.length === 0) return { exists: false, grants: [] };
    const expiries: string[] = [];
    for (const key of keys) {
      const res = await this.vault.call<{ expire_time?: string }>('PUT', ['sys', 'leases', 'lookup'], { body: { lease_id: this.leaseId(role, key) } }).catch((err: unknown) => {
        // Expired or revoked between the listing and this lookup.
        if (vaultErrorOf(err)?.status === 400) return null;
        throw err;
      });
      if (res?.data?.expire_time) expiries.push(res.data.expire_time);
    }
    return { exists: true, locked: false, grants: ['login'], attributes: { leases: keys.length, expires: expiries.sort().at(-1) ?? null } };
  }

  async provisionDb(role: string): Promise<ProvisionOutcome> {
    const keys = await this.leaseIds(role);
    if (keys.length > 0) return { created: false, detail: `db/${role} already has ${keys.length} live lease(s)` };
    const res = await this.vault.call<{ username?: string }>('GET', [...this.dbMount, 'creds', role]);
    // The password is not kept: workloads read their own credentials from Vault. The user name is not secret.
    return { created: true, detail: `issued lease ${res.lease_id ?? '?'} for database user '${String(res.data?.username ?? '?')}'` };
  }

  async revokeDb(role: string): Promise<ChangeOutcome> {
    const keys = await this.leaseIds(role);
    if (keys.length === 0) return absent(`db/${role} (no live lease)`);
    for (const key of keys) {
      // The path form of revoke lets the policy confine the gateway to this role's leases; sync by default, so
      // Vault answers only after the database plugin ran the role's revocation statements.
      await this.vault.call('PUT', ['sys', 'leases', 'revoke', ...segments(this.leaseId(role, key))]);
    }
    return { changed: true, detail: `revoked ${keys.length} lease(s) of db/${role}` };
  }

  private leaseId(role: string, key: string): string {
    return [...this.dbMount, 'creds', role, key].join('/');
  }
}
