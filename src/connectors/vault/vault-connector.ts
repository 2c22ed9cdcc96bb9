/*
 * Least privilege for the gateway's Vault token (shown for kvMount=secret, kvPrefix=changegate, databaseMount=database
 * with role app-ro, pkiMount=pki with role svc; one `creds`/`lookup`/`revoke` block per configured database role):
 *
 *   path "secret/data/changegate/*"     { capabilities = ["create", "read", "update"] }
 *   path "secret/delete/changegate/*"   { capabilities = ["update"] }             # disable = soft delete
 *   path "secret/metadata/changegate"   { capabilities = ["list"] }
 *   path "secret/metadata/changegate/*" { capabilities = ["read", "list", "patch", "delete"] }
 *   path "database/creds/app-ro"        { capabilities = ["read"] }
 *   path "sys/leases/lookup/database/creds/app-ro/" { capabilities = ["list", "sudo"] }  # Vault demands sudo to list leases
 *   path "sys/leases/lookup"            { capabilities = ["update"] }
 *   path "sys/leases/revoke/database/creds/app-ro/*" { capabilities = ["update"] }
 *   path "pki/issue/svc"                { capabilities = ["update"] }
 *   path "pki/certs"                    { capabilities = ["list"] }
 *   path "pki/cert/*"                   { capabilities = ["read"] }
 *   path "pki/revoke"                   { capabilities = ["update"] }
 *
 * plus the `default` policy (auth/token/lookup-self, which discovery uses to name the gateway's own token, and
 * sys/capabilities-self, which checkDestination uses to learn whether the token may write a destination before
 * anything is rotated). No sys/ policy, mount, auth or role write: the gateway cannot widen its own or anyone's
 * access. Two limits of Vault's model: `pki/revoke` revokes any certificate of the mount by serial (the connector only
 * ever revokes serials whose CN it was asked about; Vault does not record which role issued a certificate, see
 * vault-grammar.ts), and `sys/leases/lookup` reads any lease's timing (not its secret).
 */
import type { IdentityRef } from '../../actions/identity-action';
import { assertValidIdentity, type ChangeOutcome, type Connector, type DiscoveredIdentity, type ObservedAccount, type ProvisionOutcome, type RotationResult, type SecretSink, type TwoPhaseRotator } from '../connector';
import { ConnectorRefusal, FailureType } from '../connector-errors';
import type { Secret } from '../secret';
import { VaultDbLeases } from './vault-db';
import { VaultDatabaseView, type VaultDatabaseViewOptions } from './vault-db-users';
import { grantText, parseVaultGrant, parseVaultIdentity, type VaultGrant, VaultGrammar, type VaultIdentity } from './vault-grammar';
import { segments, VaultHttp } from './vault-http';
import { VaultKv } from './vault-kv';
import { type CertState, VaultPki } from './vault-pki';

export interface VaultConnectorOptions {
  name: string;
  address: string;
  token: string;
  kvMount: string;
  kvPrefix: string;
  databaseMount: string;
  /** Roles whose leases discovery lists (inspect/provision/revoke take any role the token's policy allows). */
  databaseRoles: string[];
  pkiMount: string;
  /** The role certificates are issued with; without it, pki identities are refused. */
  pkiRole?: string;
  /** Requested certificate lifetime (Vault duration, e.g. "720h"); the role's default when absent. */
  pkiTtl?: string;
  protectedAccounts: string[];
  timeoutMs?: number;
  /** The database the db/ leases' users live in, read to see them past Vault; see vault-db-users.ts. */
  databaseUsers?: Omit<VaultDatabaseViewOptions, 'name'>;
}


/**
 * Vault (and OpenBao) through its HTTP API: managed KV v2 secrets (vault-kv.ts), dynamic database credentials
 * (vault-db.ts), PKI certificates (vault-pki.ts), and the store rotated credentials are delivered to (SecretSink, in
 * vault-kv.ts). This class validates identities and grants and sends each to its kind. The token is held only in
 * VaultHttp; values of secrets are read only to fingerprint them, and never leave the kind that read them.
 */
export class VaultConnector implements Connector, TwoPhaseRotator, SecretSink {
  readonly grammar: VaultGrammar;
  private readonly vault: VaultHttp;
  private readonly kv: VaultKv;
  private readonly db: VaultDbLeases;
  private readonly database?: VaultDatabaseView;
  private readonly pki: VaultPki;

  constructor(
    readonly name: string,
    private readonly opts: VaultConnectorOptions,
  ) {
    this.grammar = new VaultGrammar({ protectedAccounts: opts.protectedAccounts });
    this.vault = new VaultHttp(opts.name, opts.address, opts.token, opts.timeoutMs ?? 10_000);
    const common = { name, vault: this.vault };
    this.kv = new VaultKv({ ...common, kvMount: segments(opts.kvMount), kvPrefix: segments(opts.kvPrefix) });
    this.database = opts.databaseUsers ? new VaultDatabaseView({ name, ...opts.databaseUsers }) : undefined;
    this.db = new VaultDbLeases({ ...common, dbMount: segments(opts.databaseMount), database: this.database });
    this.pki = new VaultPki({ ...common, pkiMount: segments(opts.pkiMount), pkiRole: opts.pkiRole, pkiTtl: opts.pkiTtl });
  }

  // ---- Connector -------------------------------------------------------------------------------------------

  async inspect(identity: IdentityRef): Promise<ObservedAccount> {
    const id = this.identity(identity);
    if (id.kind === 'kv') return this.kv.inspectKv(id.path);
    if (id.kind === 'db') return this.db.inspectDb(id.role);
    return this.pki.inspectPki(id.commonName);
  }

  async provision(identity: IdentityRef, grants: string[]): Promise<ProvisionOutcome> {
    const id = this.identity(identity);
    const parsed = this.grantsFor(id, grants);
    if (id.kind === 'kv') return this.kv.provisionKv(id.path, parsed.flatMap((g) => (g.kind === 'kv' ? [g.reader] : [])));
    if (id.kind === 'db') return this.db.provisionDb(id.role);
    return this.pki.provisionPki(id.commonName, parsed.flatMap((g) => (g.kind === 'pki' ? [g.dns] : [])));
  }

  /**
   * A lease cannot be suspended and a certificate cannot be deleted, so both policies revoke them (declared in
   * VAULT_REVOKE_DEVIATIONS); only a KV secret has a disabled state to keep.
   */
  async disable(identity: IdentityRef): Promise<ChangeOutcome> {
    const id = this.identity(identity);
    if (id.kind === 'kv') return this.kv.disableKv(id.path);
    if (id.kind === 'db') return this.db.revokeDb(id.role);
    return this.pki.revokePki(id.commonName);
  }

  async remove(identity: IdentityRef): Promise<ChangeOutcome> {
    const id = this.identity(identity);
    if (id.kind === 'kv') return this.kv.removeKv(id.path);
    if (id.kind === 'db') return this.db.revokeDb(id.role);
    return this.pki.revokePki(id.commonName);
  }

  async ungrant(identity: IdentityRef, grants: string[]): Promise<ChangeOutcome> {
    const id = this.identity(identity);
    const parsed = this.grantsFor(id, grants);
    if (id.kind === 'kv') return this.kv.revokeReaders(id.path, parsed.flatMap((g) => (g.kind === 'kv' ? [g.reader] : [])));
    // `login` is a db identity's only grant: taking it back is revoking its leases.
    if (id.kind === 'db') return this.db.revokeDb(id.role);
    return this.pki.revokeSans(id.commonName, parsed.flatMap((g) => (g.kind === 'pki' ? [g.dns] : [])));
  }

  async discover(): Promise<DiscoveredIdentity[]> {
    const out: DiscoveredIdentity[] = [];
    const add = (name: string, extra: Partial<DiscoveredIdentity> = {}): void => {
      const isProtected = extra.protected === true || this.grammar.isProtected(name);
      out.push({ name, type: 'service_account', ...extra, ...(isProtected ? { protected: true } : {}) });
    };
    for (const path of await this.kv.walkKv([], 0, { seen: 0 })) add(`kv/${path.join('/')}`);
    for (const role of this.opts.databaseRoles) {
      if ((await this.db.leaseIds(role)).length > 0 || (await this.db.usersOf(role)).length > 0) add(`db/${role}`);
    }
    if (this.opts.pkiRole !== undefined) {
      const byName = new Map<string, CertState[]>();
      for (const cert of await this.pki.certificates(() => true)) byName.set(cert.commonName, [...(byName.get(cert.commonName) ?? []), cert]);
      for (const [cn, certs] of [...byName].sort(([a], [b]) => a.localeCompare(b))) {
        add(`pki/${cn}`, { locked: certs.every((c) => c.revoked), ...(certs.some((c) => c.ca) ? { protected: true } : {}) });
      }
    }
    // The gateway's own token: lookup-self also returns the token itself (`id`), which is never read from here.
    const self = await this.vault.call<{ display_name?: string }>('GET', ['auth', 'token', 'lookup-self']);
    add(`token/${String(self.data?.display_name ?? 'self')}`, { protected: true });
    return out;
  }

  async rotate(identity: IdentityRef): Promise<RotationResult> {
    const id = this.identity(identity);
    if (id.kind === 'kv') return this.kv.rotateKv(id.path);
    if (id.kind === 'pki') return this.pki.rotatePki(id.commonName);
    throw new ConnectorRefusal(
      FailureType.TargetRefused,
      `${this.name}: ${identity.name} holds dynamic credentials: Vault issues a new one per lease; revoke and provision instead of rotating`,
    );
  }

  async authenticates(identity: IdentityRef, secret: Secret): Promise<boolean> {
    const id = this.identity(identity);
    if (id.kind === 'kv') return this.kv.serves(id.path, secret);
    if (id.kind === 'pki') return this.pki.keyMatchesLiveCert(id.commonName, secret);
    throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: ${identity.name}: a dynamic database credential is checked by the database, not by Vault`);
  }

  /**
   * Second phase of a certificate rotation: revokes every other live certificate of the CN once the new one (`keep`)
   * is delivered and verified. `keep` must be a live certificate of that CN, or nothing is revoked: the workload would
   * otherwise be left with no working certificate. KV versions are history, not parallel credentials: nothing to do.
   */
  async retireOthers(identity: IdentityRef, keep: string): Promise<{ retired: number; detail: string }> {
    const id = this.identity(identity);
    if (id.kind === 'kv') return { retired: 0, detail: `${identity.name} serves one version at a time: nothing else to retire` };
    if (id.kind === 'db') {
      throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: ${identity.name} holds dynamic credentials, which are not rotated, so none are retired`);
    }
    return this.pki.retireOthers(id.commonName, identity.name, keep);
  }

  async close(): Promise<void> {
    // Axios keeps no pooled sockets by default: only the database view's pool to release.
    await this.database?.close();
  }

  // ---- SecretSink: KV paths, checked against the grammar (and protected paths) before any request; async, so a
  // refused path is a rejected promise like every other refusal ----------------------------------------------------

  async checkDestination(path: string): Promise<void> {
    return this.kv.checkDestination(path, this.sinkPath(path));
  }

  async deliver(path: string, secret: Secret, metadata: Record<string, string>): Promise<{ version: number }> {
    return this.kv.deliver(path, this.sinkPath(path), secret, metadata);
  }

  async currentFingerprint(path: string): Promise<{ version: number; fingerprint: string } | null> {
    return this.kv.currentFingerprint(path, this.sinkPath(path));
  }

  // ---- Validation --------------------------------------------------------------------------------------------

  private identity(identity: IdentityRef): VaultIdentity {
    assertValidIdentity(this.grammar, identity);
    const parsed = parseVaultIdentity(identity.name);
    if ('problem' in parsed) throw new ConnectorRefusal(FailureType.InvalidIdentity, `identity.name: ${parsed.problem}`);
    return parsed;
  }

  private grantsFor(id: VaultIdentity, grants: string[]): VaultGrant[] {
    return grants.map((text, i) => {
      const g = parseVaultGrant(text);
      if ('problem' in g) throw new ConnectorRefusal(FailureType.InvalidIdentity, `grants[${i}]: ${g.problem}`);
      if (g.kind !== id.kind) throw new ConnectorRefusal(FailureType.InvalidIdentity, `grants[${i}]: '${grantText(g)}' does not apply to a ${id.kind} identity`);
      return g;
    });
  }

  /** A destination path, re-checked (grammar and protected paths) before any request. */
  private sinkPath(path: string): string[] {
    const problem = this.grammar.validateSecretPath(path);
    if (problem) throw new ConnectorRefusal(FailureType.InvalidIdentity, `${this.name}: secret path: ${problem}`);
    return path.split('/');
  }
}

export function createVaultConnector(opts: VaultConnectorOptions): VaultConnector {
  return new VaultConnector(opts.name, opts);
}
