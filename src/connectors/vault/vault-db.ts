/**
 * Dynamic database credentials for the Vault-API connector: `db/<role>` names the live leases of
 * `<databaseMount>/creds/<role>` and the database users they created. Leases are listed and looked up, issued and
 * revoked; their passwords are never read. What Vault says of a lease is not the access: the users are read in the
 * database itself (vault-db-users.ts), and a user that outlived its lease keeps the identity there.
 */
import { absent, type ChangeOutcome, type ObservedAccount, type ProvisionOutcome } from '../connector';
import { ConnectorRefusal, FailureType } from '../connector-errors';
import type { VaultDatabaseView } from './vault-db-users';
import { segments, type VaultHttp, vaultErrorOf } from './vault-http';

const LEASE_KEY = /^[A-Za-z0-9._-]{1,128}$/;

export interface VaultDbLeasesOptions {
  /** The connector's name, for messages. */
  name: string;
  vault: VaultHttp;
  dbMount: string[];
  /** The database the leases' users live in; without it a db/ identity cannot be read back (refused). */
  database?: VaultDatabaseView;
}

export class VaultDbLeases {
  private readonly name: string;
  private readonly vault: VaultHttp;
  private readonly dbMount: string[];
  private readonly database?: VaultDatabaseView;

  constructor(o: VaultDbLeasesOptions) {
    this.name = o.name;
    this.vault = o.vault;
    this.dbMount = o.dbMount;
    this.database = o.database;
  }

  /** The database users `role`'s leases created that still exist. */
  async usersOf(role: string): Promise<string[]> {
    if (!this.database) {
      throw new ConnectorRefusal(
        FailureType.TargetRefused,
        `${this.name}: no databaseUsers view is configured, so a read-back of db/${role} cannot see whether the database users its leases created are gone`,
      );
    }
    return this.database.usersOf(role);
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
    const users = await this.usersOf(role);
    if (keys.length === 0 && users.length === 0) return { exists: false, grants: [] };
    const expiries: string[] = [];
    for (const key of keys) {
      const res = await this.vault.call<{ expire_time?: string }>('PUT', ['sys', 'leases', 'lookup'], { body: { lease_id: this.leaseId(role, key) } }).catch((err: unknown) => {
        // Expired or revoked between the listing and this lookup.
        if (vaultErrorOf(err)?.status === 400) return null;
        throw err;
      });
      if (res?.data?.expire_time) expiries.push(res.data.expire_time);
    }
    // A database user is a login whether or not Vault still holds a lease for it.
    return {
      exists: true,
      locked: false,
      grants: ['login'],
      attributes: { leases: keys.length, expires: expiries.sort().at(-1) ?? null, databaseUsers: users },
    };
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
    if (keys.length === 0) {
      const users = await this.usersOf(role);
      if (users.length === 0) return absent(`db/${role} (no live lease)`);
      // Nothing left for Vault to revoke, and the gateway has no database write: said, and left to the read-back.
      return { changed: false, detail: `db/${role} has no live lease, but ${users.length} database user(s) its leases created remain (${users.join(', ')}): Vault cannot revoke them` };
    }
    for (const key of keys) {
      // The path form of revoke lets the policy confine the gateway to this role's leases; sync by default, so
      // Vault answers only after the database plugin ran the role's revocation statements.
      await this.vault.call('PUT', ['sys', 'leases', 'revoke', ...segments(this.leaseId(role, key))]);
    }
    const left = await this.usersOf(role);
    const users = left.length === 0 ? '' : `; ${left.length} database user(s) its leases created remain (${left.join(', ')}): the role's revocation statements did not drop them`;
    return { changed: true, detail: `revoked ${keys.length} lease(s) of db/${role}${users}` };
  }

  private leaseId(role: string, key: string): string {
    return [...this.dbMount, 'creds', role, key].join('/');
  }
}
