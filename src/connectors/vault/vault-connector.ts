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
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import type { IdentityRef } from '../../actions/identity-action';
import { alreadyAbsent, assertValidIdentity, type Connector, type TwoPhaseRotator, type DesiredAccount, type DiscoveredIdentity, type ObservedAccount, type ProvisionOutcome, type RevokeMode, type RevokeOutcome, revokeTarget, type RotationResult, type SecretSink } from '../connector';
import { ConnectorRefusal, FailureType } from '../connector-errors';
import { fingerprintOf, Secret } from '../secret';
import { grantText, parseVaultGrant, parseVaultIdentity, type VaultGrant, VaultGrammar, type VaultIdentity } from './vault-grammar';
import { VaultHttp, vaultErrorOf } from './vault-http';

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
  revokeMode?: RevokeMode;
  timeoutMs?: number;
}

/** custom_metadata keys this connector owns on a KV secret: declared readers, and what a delivery noted. */
const READER_KEY = 'changegate.reader.';
const DELIVERY_KEY = 'changegate.meta.';
const METADATA_KEY = /^[A-Za-z0-9._-]{1,64}$/;
const LEASE_KEY = /^[A-Za-z0-9._-]{1,128}$/;
const SERIAL = /^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){0,63}$/;
/** Bounds on discovery's walk of the KV prefix: a runaway tree fails loudly instead of paging forever. */
const KV_WALK_LIMIT = 10_000;

interface KvMetadata {
  current_version: number;
  versions: Record<string, { deletion_time: string; destroyed: boolean }>;
  custom_metadata: Record<string, string> | null;
}

interface KvServed {
  version: number;
  value: string | null;
  foreign: boolean;
}

interface CertInfo {
  serial: string;
  commonName: string;
  dns: string[];
  notAfter: number;
  ca: boolean;
  pem: string;
}

interface CertState extends CertInfo {
  revoked: boolean;
}

const segments = (p: string): string[] => p.split('/').filter((s) => s !== '');

/**
 * Vault (and OpenBao) through its HTTP API: managed KV v2 secrets, dynamic database credentials, PKI certificates,
 * and the store rotated credentials are delivered to (SecretSink). The token is held only in VaultHttp; values of
 * secrets are read only to fingerprint them, and never leave this class.
 */
export class VaultConnector implements Connector, TwoPhaseRotator, SecretSink {
  readonly grammar: VaultGrammar;
  private readonly vault: VaultHttp;
  private readonly revokeMode: RevokeMode;
  private readonly kvMount: string[];
  private readonly kvPrefix: string[];
  private readonly dbMount: string[];
  private readonly pkiMount: string[];
  /** A certificate's contents never change; only its revocation does, and that is always read fresh. */
  private readonly certCache = new Map<string, CertInfo | null>();

  constructor(
    readonly name: string,
    private readonly opts: VaultConnectorOptions,
  ) {
    this.revokeMode = opts.revokeMode ?? 'delete';
    this.grammar = new VaultGrammar({ protectedAccounts: opts.protectedAccounts });
    this.vault = new VaultHttp(opts.name, opts.address, opts.token, opts.timeoutMs ?? 10_000);
    this.kvMount = segments(opts.kvMount);
    this.kvPrefix = segments(opts.kvPrefix);
    this.dbMount = segments(opts.databaseMount);
    this.pkiMount = segments(opts.pkiMount);
  }

  // ---- Connector -------------------------------------------------------------------------------------------

  async inspect(identity: IdentityRef): Promise<ObservedAccount> {
    const id = this.identity(identity);
    if (id.kind === 'kv') return this.inspectKv(id.path);
    if (id.kind === 'db') return this.inspectDb(id.role);
    return this.inspectPki(id.commonName);
  }

  async provision(identity: IdentityRef, grants: string[]): Promise<ProvisionOutcome> {
    const id = this.identity(identity);
    const parsed = this.grantsFor(id, grants);
    if (id.kind === 'kv') return this.provisionKv(id.path, parsed.flatMap((g) => (g.kind === 'kv' ? [g.reader] : [])));
    if (id.kind === 'db') return this.provisionDb(id.role);
    return this.provisionPki(id.commonName, parsed.flatMap((g) => (g.kind === 'pki' ? [g.dns] : [])));
  }

  async revoke(identity: IdentityRef): Promise<RevokeOutcome> {
    const id = this.identity(identity);
    // What this policy leaves for this kind of identity: a lease cannot be disabled, a certificate cannot be deleted
    // (declared in VAULT_REVOKE_DEVIATIONS).
    const expected = revokeTarget(this.grammar, identity, this.revokeMode).leaves;
    if (id.kind === 'kv') return this.revokeKv(id.path, expected);
    if (id.kind === 'db') return this.revokeDb(id.role, expected);
    return this.revokePki(id.commonName, expected);
  }

  async revokeGrants(identity: IdentityRef, grants: string[], dropAccount: boolean): Promise<RevokeOutcome> {
    const id = this.identity(identity);
    const parsed = this.grantsFor(id, grants);
    if (dropAccount) {
      const before = await this.inspect(identity);
      if (!before.exists) return { changed: false, detail: `${identity.name} was already absent` };
      return this.revoke(identity);
    }
    if (id.kind === 'kv') return this.revokeReaders(id.path, parsed.flatMap((g) => (g.kind === 'kv' ? [g.reader] : [])));
    // `login` is a db identity's only grant: taking it back is revoking its leases.
    if (id.kind === 'db') return this.revokeDb(id.role);
    return this.revokeSans(id.commonName, parsed.flatMap((g) => (g.kind === 'pki' ? [g.dns] : [])));
  }

  async discover(): Promise<DiscoveredIdentity[]> {
    const out: DiscoveredIdentity[] = [];
    const add = (name: string, extra: Partial<DiscoveredIdentity> = {}): void => {
      const isProtected = extra.protected === true || this.grammar.isProtected(name);
      out.push({ name, type: 'service_account', ...extra, ...(isProtected ? { protected: true } : {}) });
    };
    for (const path of await this.walkKv([], 0, { seen: 0 })) add(`kv/${path.join('/')}`);
    for (const role of this.opts.databaseRoles) {
      if ((await this.leaseIds(role)).length > 0) add(`db/${role}`);
    }
    if (this.opts.pkiRole !== undefined) {
      const byName = new Map<string, CertState[]>();
      for (const cert of await this.certificates(() => true)) byName.set(cert.commonName, [...(byName.get(cert.commonName) ?? []), cert]);
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
    if (id.kind === 'kv') return this.rotateKv(id.path);
    if (id.kind === 'pki') return this.rotatePki(id.commonName);
    throw new ConnectorRefusal(
      FailureType.TargetRefused,
      `${this.name}: ${identity.name} holds dynamic credentials: Vault issues a new one per lease; revoke and provision instead of rotating`,
    );
  }

  async authenticates(identity: IdentityRef, secret: Secret): Promise<boolean> {
    const id = this.identity(identity);
    if (id.kind === 'kv') {
      const current = await this.kvCurrent(id.path);
      return current?.value !== undefined && current.value !== null && fingerprintOf(current.value) === secret.fingerprint;
    }
    if (id.kind === 'pki') return this.keyMatchesLiveCert(id.commonName, secret);
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
    if (!SERIAL.test(keep)) throw new ConnectorRefusal(FailureType.InvalidIdentity, `${this.name}: '${keep.slice(0, 80)}' is not a certificate serial number`);
    const live = await this.liveCerts(id.commonName);
    if (!live.some((c) => sameSerial(c.serial, keep))) {
      throw new ConnectorRefusal(
        FailureType.TargetRefused,
        `${this.name}: ${keep} is not a live certificate of ${identity.name}; nothing was revoked, so the earlier certificates keep working`,
      );
    }
    const others = live.filter((c) => !sameSerial(c.serial, keep));
    await this.revokeSerials(others.map((c) => c.serial));
    return {
      retired: others.length,
      detail: others.length > 0 ? `revoked ${others.length} earlier certificate(s) of ${identity.name}, keeping ${keep}` : `${identity.name} had no live certificate but ${keep}`,
    };
  }

  async close(): Promise<void> {
    // Axios keeps no pooled sockets by default: nothing to release.
  }

  // ---- SecretSink --------------------------------------------------------------------------------------------

  /**
   * Run before anything is rotated, so a destination the gateway may not write never leaves a rotated credential that
   * cannot be delivered. Refused: a path outside the grammar or protected (InvalidIdentity); a path the token may not
   * read and write (its own capabilities, as Vault reports them); a secret that is disabled (a leaver soft-deleted it:
   * delivering would serve it again) or holds fields other than `value` (a workload reads those: delivering would
   * replace them). Any other non-protected path under the prefix may be written, including one the connector also
   * manages as `kv/<path>`.
   */
  async checkDestination(path: string): Promise<void> {
    const kvPath = this.sinkPath(path);
    const data = this.kvUrl('data', kvPath).join('/');
    const metadata = this.kvUrl('metadata', kvPath).join('/');
    const res = await this.vault.call<Record<string, unknown>>('POST', ['sys', 'capabilities-self'], { body: { paths: [data, metadata] } });
    const lacking = (p: string, wanted: string[]): string[] => {
      const held = res.data?.[p];
      const caps = new Set(Array.isArray(held) ? held.map(String) : []);
      return caps.has('root') ? [] : wanted.filter((c) => !caps.has(c)).map((c) => `${c} on ${p}`);
    };
    const metaLacks = lacking(metadata, ['read', 'patch']);
    // Whether the write is a create or an update depends on what is there, which takes metadata read to learn.
    const meta = metaLacks.length === 0 ? await this.kvMeta(kvPath) : null;
    const needed = [...lacking(data, [meta ? 'update' : 'create', 'read']), ...metaLacks];
    if (needed.length > 0) {
      throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: the gateway's token may not deliver to ${path}: it lacks ${needed.join(', ')}`);
    }
    this.refuseUnwritable(path, meta, await this.kvCurrent(kvPath));
  }

  async deliver(path: string, secret: Secret, metadata: Record<string, string>): Promise<{ version: number }> {
    const kvPath = this.sinkPath(path);
    const entries = Object.entries(metadata);
    if (entries.length > 32) throw new ConnectorRefusal(FailureType.InvalidIdentity, `${this.name}: at most 32 metadata entries per delivery`);
    for (const [k, v] of entries) {
      if (!METADATA_KEY.test(k)) throw new ConnectorRefusal(FailureType.InvalidIdentity, `${this.name}: metadata key '${k.slice(0, 70)}' must be 1-64 characters of [A-Za-z0-9._-]`);
      if (v.length > 512) throw new ConnectorRefusal(FailureType.InvalidIdentity, `${this.name}: metadata '${k}' is longer than Vault's 512 characters`);
    }
    // A retried delivery of the same secret finds it already served and writes no second version.
    const current = await this.kvCurrent(kvPath);
    let version: number;
    if (current?.value != null && fingerprintOf(current.value) === secret.fingerprint) {
      version = current.version;
    } else {
      const meta = await this.kvMeta(kvPath);
      this.refuseUnwritable(path, meta, current);
      try {
        version = await this.writeKv(kvPath, secret, meta?.current_version ?? 0);
      } catch (err) {
        if (!isCasMismatch(err)) throw err;
        // Someone wrote between our read and our write: transient, the retry reads again.
        throw Object.assign(new Error(`${this.name}: ${path} changed while delivering; will retry`, { cause: vaultErrorOf(err) }), { transient: true });
      }
    }
    if (entries.length > 0) {
      await this.patchCustomMetadata(kvPath, Object.fromEntries(entries.map(([k, v]) => [`${DELIVERY_KEY}${k}`, v])));
    }
    return { version };
  }

  async currentFingerprint(path: string): Promise<{ version: number; fingerprint: string } | null> {
    const current = await this.kvCurrent(this.sinkPath(path));
    if (current === null) return null;
    if (current.value === null) {
      throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: ${path} holds no string 'value' field, so it was not written by this gateway`);
    }
    return { version: current.version, fingerprint: fingerprintOf(current.value) };
  }

  /** A destination that exists but must not be overwritten by a delivery: disabled, or not in the gateway's shape. */
  private refuseUnwritable(path: string, meta: KvMetadata | null, current: KvServed | null): void {
    if (meta && meta.current_version > 0 && this.kvState(meta).locked) {
      throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: ${path} is disabled (its current version is deleted); delivering would serve it again`);
    }
    if (current?.foreign) {
      throw new ConnectorRefusal(
        FailureType.TargetRefused,
        `${this.name}: ${path} holds fields other than a string 'value', so it was not written by this gateway and a delivery would replace what its readers expect`,
      );
    }
  }

  // ---- KV v2 -------------------------------------------------------------------------------------------------

  private kvUrl(area: 'data' | 'metadata' | 'delete', path: string[]): string[] {
    return [...this.kvMount, area, ...this.kvPrefix, ...path];
  }

  private async kvMeta(path: string[]): Promise<KvMetadata | null> {
    const res = await this.vault.call<KvMetadata>('GET', this.kvUrl('metadata', path), { absentOk: true });
    return res?.data ?? null;
  }

  /**
   * The version Vault serves now and its `value` field (null when it has none); `foreign` when it holds anything but
   * one string `value` (the gateway's shape). Null when nothing is served.
   */
  private async kvCurrent(path: string[]): Promise<KvServed | null> {
    const res = await this.vault.call<{ data: Record<string, unknown> | null; metadata: { version: number } }>('GET', this.kvUrl('data', path), { absentOk: true });
    if (!res?.data?.data) return null;
    const fields = res.data.data;
    const value = fields.value;
    return {
      version: Number(res.data.metadata?.version ?? 0),
      value: typeof value === 'string' && value !== '' ? value : null,
      foreign: typeof value !== 'string' || Object.keys(fields).some((k) => k !== 'value'),
    };
  }

  private async writeKv(path: string[], secret: Secret, cas: number): Promise<number> {
    const res = await this.vault.call<{ version: number }>('POST', this.kvUrl('data', path), { body: { data: { value: secret.reveal() }, options: { cas } } });
    return Number(res.data?.version ?? 0);
  }

  private async patchCustomMetadata(path: string[], changes: Record<string, string | null>): Promise<void> {
    // JSON merge patch: a null removes the key, other keys stay as they are.
    await this.vault.call('PATCH', this.kvUrl('metadata', path), { body: { custom_metadata: changes }, contentType: 'application/merge-patch+json' });
  }

  private kvState(meta: KvMetadata): { locked: boolean; readers: string[]; live: number[] } {
    const now = Date.now();
    const isLive = (v: { deletion_time: string; destroyed: boolean } | undefined): boolean =>
      v !== undefined && !v.destroyed && (v.deletion_time === '' || Date.parse(v.deletion_time) > now);
    const live = Object.entries(meta.versions ?? {}).filter(([, v]) => isLive(v)).map(([k]) => Number(k)).sort((a, b) => a - b);
    const readers = Object.keys(meta.custom_metadata ?? {}).filter((k) => k.startsWith(READER_KEY)).map((k) => k.slice(READER_KEY.length)).sort();
    return { locked: !isLive(meta.versions?.[String(meta.current_version)]), readers, live };
  }

  private async inspectKv(path: string[]): Promise<ObservedAccount> {
    const meta = await this.kvMeta(path);
    if (!meta) return { exists: false, grants: [] };
    const { locked, readers } = this.kvState(meta);
    return {
      exists: true,
      locked,
      grants: readers.map((r) => `reader=${r}`),
      attributes: { version: meta.current_version, versions: Object.keys(meta.versions ?? {}).length },
    };
  }

  private async provisionKv(path: string[], readers: string[]): Promise<ProvisionOutcome> {
    const shown = `kv/${path.join('/')}`;
    let created = false;
    if (!(await this.kvMeta(path))) {
      try {
        // cas 0: only if nothing is there, so a concurrent creator is never overwritten. The value is not kept:
        // it is handed to workloads by rotating it into the store's readers' hands, never by this step.
        await this.writeKv(path, Secret.generate(), 0);
        created = true;
      } catch (err) {
        if (!isCasMismatch(err)) throw err;
      }
    }
    const meta = await this.kvMeta(path);
    if (!meta) throw new Error(`${this.name}: ${shown} vanished right after it was written; will retry`);
    const have = new Set(this.kvState(meta).readers);
    const missing = [...new Set(readers)].filter((r) => !have.has(r));
    if (missing.length > 0) await this.patchCustomMetadata(path, Object.fromEntries(missing.map((r) => [`${READER_KEY}${r}`, 'granted'])));
    return { created, detail: `${created ? 'created' : 'found existing'} ${shown} (version ${meta.current_version}), declared ${missing.length} new reader(s)` };
  }

  private async revokeKv(path: string[], expected: Readonly<DesiredAccount>): Promise<RevokeOutcome> {
    const shown = `kv/${path.join('/')}`;
    const meta = await this.kvMeta(path);
    // Gone is done under either policy (a refusal here blocked closure over a secret that no longer exists).
    if (!meta) return alreadyAbsent(shown);
    if (this.revokeMode === 'delete') {
      await this.vault.call('DELETE', this.kvUrl('metadata', path));
      return { changed: true, detail: `deleted ${shown}: all ${Object.keys(meta.versions ?? {}).length} version(s) and its metadata`, expected };
    }
    const { live, readers } = this.kvState(meta);
    if (live.length === 0 && readers.length === 0) return { changed: false, detail: `${shown} was already disabled with no readers`, expected };
    // Soft delete: Vault stops serving every version, and an operator can still undelete them (policy: disable).
    if (live.length > 0) await this.vault.call('POST', this.kvUrl('delete', path), { body: { versions: live } });
    if (readers.length > 0) await this.patchCustomMetadata(path, Object.fromEntries(readers.map((r) => [`${READER_KEY}${r}`, null])));
    return {
      changed: true,
      detail: `soft-deleted ${live.length} version(s) of ${shown} and removed ${readers.length} reader(s); kept for undelete (policy: disable)`,
      expected,
    };
  }

  private async revokeReaders(path: string[], readers: string[]): Promise<RevokeOutcome> {
    const shown = `kv/${path.join('/')}`;
    const meta = await this.kvMeta(path);
    if (!meta) return { changed: false, detail: `${shown} was already absent` };
    const have = new Set(this.kvState(meta).readers);
    const present = [...new Set(readers)].filter((r) => have.has(r));
    if (present.length > 0) await this.patchCustomMetadata(path, Object.fromEntries(present.map((r) => [`${READER_KEY}${r}`, null])));
    return { changed: present.length > 0, detail: `removed ${present.length} of ${readers.length} reader(s) from ${shown}` };
  }

  private async rotateKv(path: string[]): Promise<RotationResult> {
    const shown = `kv/${path.join('/')}`;
    const meta = await this.kvMeta(path);
    if (!meta) throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: ${shown} does not exist, so it has no value to rotate`);
    if (this.kvState(meta).locked) {
      throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: ${shown} is disabled (its current version is deleted); rotating would serve it again`);
    }
    const secret = Secret.generate();
    let version: number;
    try {
      version = await this.writeKv(path, secret, meta.current_version);
    } catch (err) {
      if (!isCasMismatch(err)) throw err;
      throw Object.assign(new Error(`${this.name}: ${shown} changed while rotating; will retry`, { cause: vaultErrorOf(err) }), { transient: true });
    }
    return { secret, credentialId: `version ${version}`, detail: `wrote version ${version} of ${shown} (earlier versions stay readable by history until deleted)` };
  }

  /** Every secret under the prefix, depth-first; LIST names folders with a trailing slash. */
  private async walkKv(folder: string[], depth: number, budget: { seen: number }): Promise<string[][]> {
    const res = await this.vault.call<{ keys?: string[] }>('GET', [...this.kvMount, 'metadata', ...this.kvPrefix, ...folder], { list: true, absentOk: true });
    const out: string[][] = [];
    for (const key of res?.data?.keys ?? []) {
      if (++budget.seen > KV_WALK_LIMIT) throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: more than ${KV_WALK_LIMIT} entries under the KV prefix`);
      const isFolder = key.endsWith('/');
      const segment = isFolder ? key.slice(0, -1) : key;
      if (isFolder && depth + 1 < 8) out.push(...(await this.walkKv([...folder, segment], depth + 1, budget)));
      else if (!isFolder) out.push([...folder, segment]);
    }
    return out;
  }

  // ---- Dynamic database credentials --------------------------------------------------------------------------

  private async leaseIds(role: string): Promise<string[]> {
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

  private async inspectDb(role: string): Promise<ObservedAccount> {
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

  private async provisionDb(role: string): Promise<ProvisionOutcome> {
    const keys = await this.leaseIds(role);
    if (keys.length > 0) return { created: false, detail: `db/${role} already has ${keys.length} live lease(s)` };
    const res = await this.vault.call<{ username?: string }>('GET', [...this.dbMount, 'creds', role]);
    // The password is not kept: workloads read their own credentials from Vault. The user name is not secret.
    return { created: true, detail: `issued lease ${res.lease_id ?? '?'} for database user '${String(res.data?.username ?? '?')}'` };
  }

  private async revokeDb(role: string, expected?: Readonly<DesiredAccount>): Promise<RevokeOutcome> {
    const keys = await this.leaseIds(role);
    if (keys.length === 0) return alreadyAbsent(`db/${role} (no live lease)`);
    for (const key of keys) {
      // The path form of revoke lets the policy confine the gateway to this role's leases; sync by default, so
      // Vault answers only after the database plugin ran the role's revocation statements.
      await this.vault.call('PUT', ['sys', 'leases', 'revoke', ...segments(this.leaseId(role, key))]);
    }
    const policyNote = this.revokeMode === 'disable' ? ' (policy disable: a lease cannot be suspended, only revoked)' : '';
    return { changed: true, detail: `revoked ${keys.length} lease(s) of db/${role}${policyNote}`, ...(expected ? { expected } : {}) };
  }

  private leaseId(role: string, key: string): string {
    return [...this.dbMount, 'creds', role, key].join('/');
  }

  // ---- PKI ---------------------------------------------------------------------------------------------------

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
  private async certificates(match: (c: CertInfo) => boolean): Promise<CertState[]> {
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

  private async inspectPki(cn: string): Promise<ObservedAccount> {
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

  private async provisionPki(cn: string, dns: string[]): Promise<ProvisionOutcome> {
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

  private async revokePki(cn: string, expected: Readonly<DesiredAccount>): Promise<RevokeOutcome> {
    const certs = await this.ofCn(cn);
    if (certs.length === 0) return alreadyAbsent(`pki/${cn} (no unexpired certificate)`);
    const live = certs.filter((c) => !c.revoked);
    // A certificate cannot be deleted: its revoked record stays until it expires, whatever the revoke policy says.
    if (live.length === 0) return { changed: false, detail: `every certificate of pki/${cn} was already revoked`, expected };
    await this.revokeSerials(live.map((c) => c.serial));
    return { changed: true, detail: `revoked ${live.length} certificate(s) of pki/${cn}; the records stay until they expire`, expected };
  }

  private async revokeSans(cn: string, dns: string[]): Promise<RevokeOutcome> {
    const take = new Set(dns);
    const live = await this.liveCerts(cn);
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
  private async rotatePki(cn: string): Promise<RotationResult> {
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

  private async keyMatchesLiveCert(cn: string, secret: Secret): Promise<boolean> {
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

function isCasMismatch(err: unknown): boolean {
  return /check-and-set/i.test(vaultErrorOf(err)?.message ?? '');
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

export function createVaultConnector(opts: VaultConnectorOptions): VaultConnector {
  return new VaultConnector(opts.name, opts);
}
