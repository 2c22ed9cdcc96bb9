/**
 * KV v2 secrets for the Vault-API connector: the `kv/<path>` identities (readers declared in custom_metadata, disable as
 * soft delete, rotation as a new version) and the store rotated credentials are delivered to (SecretSink). Values are
 * read only to fingerprint them, and never leave this file.
 */
import { absent, type ChangeOutcome, type ObservedAccount, type ProvisionOutcome, type RotationResult } from '../connector';
import { ConnectorRefusal, FailureType } from '../connector-errors';
import { fingerprintOf, Secret } from '../secret';
import { type VaultHttp, vaultErrorOf } from './vault-http';

/** custom_metadata keys this connector owns on a KV secret: declared readers, and what a delivery noted. */
const READER_KEY = 'changegate.reader.';
const DELIVERY_KEY = 'changegate.meta.';
const METADATA_KEY = /^[A-Za-z0-9._-]{1,64}$/;
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

export interface VaultKvOptions {
  /** The connector's name, for messages. */
  name: string;
  vault: VaultHttp;
  kvMount: string[];
  kvPrefix: string[];
}

export class VaultKv {
  private readonly name: string;
  private readonly vault: VaultHttp;
  private readonly kvMount: string[];
  private readonly kvPrefix: string[];

  constructor(o: VaultKvOptions) {
    this.name = o.name;
    this.vault = o.vault;
    this.kvMount = o.kvMount;
    this.kvPrefix = o.kvPrefix;
  }

  /** True when `secret` is what the store serves at `path` now (fingerprints compared here, values never leave). */
  async serves(path: string[], secret: Secret): Promise<boolean> {
    const current = await this.kvCurrent(path);
    return current?.value !== undefined && current.value !== null && fingerprintOf(current.value) === secret.fingerprint;
  }

  // ---- SecretSink (the path is checked by the connector's grammar before it reaches here) ----------------------

  /**
   * Run before anything is rotated, so a destination the gateway may not write never leaves a rotated credential that
   * cannot be delivered. Refused (the connector has already refused a path outside the grammar or protected): a path the token may not
   * read and write (its own capabilities, as Vault reports them); a secret that is disabled (a leaver soft-deleted it:
   * delivering would serve it again) or holds fields other than `value` (a workload reads those: delivering would
   * replace them). Any other non-protected path under the prefix may be written, including one the connector also
   * manages as `kv/<path>`.
   */
  async checkDestination(path: string, kvPath: string[]): Promise<void> {
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

  async deliver(path: string, kvPath: string[], secret: Secret, metadata: Record<string, string>): Promise<{ version: number }> {
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

  async currentFingerprint(path: string, kvPath: string[]): Promise<{ version: number; fingerprint: string } | null> {
    const current = await this.kvCurrent(kvPath);
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

  // ---- kv/ identities ------------------------------------------------------------------------------------------

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
  async kvCurrent(path: string[]): Promise<KvServed | null> {
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

  async inspectKv(path: string[]): Promise<ObservedAccount> {
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

  async provisionKv(path: string[], readers: string[]): Promise<ProvisionOutcome> {
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

  /** Deletes every version and the metadata: nothing to undelete. */
  async removeKv(path: string[]): Promise<ChangeOutcome> {
    const shown = `kv/${path.join('/')}`;
    const meta = await this.kvMeta(path);
    if (!meta) return absent(shown);
    await this.vault.call('DELETE', this.kvUrl('metadata', path));
    return { changed: true, detail: `deleted ${shown}: all ${Object.keys(meta.versions ?? {}).length} version(s) and its metadata` };
  }

  /** Soft delete: Vault stops serving every version, its readers go, and an operator can still undelete them. */
  async disableKv(path: string[]): Promise<ChangeOutcome> {
    const shown = `kv/${path.join('/')}`;
    const meta = await this.kvMeta(path);
    if (!meta) return absent(shown);
    const { live, readers } = this.kvState(meta);
    if (live.length === 0 && readers.length === 0) return { changed: false, detail: `${shown} was already disabled with no readers` };
    if (live.length > 0) await this.vault.call('POST', this.kvUrl('delete', path), { body: { versions: live } });
    if (readers.length > 0) await this.patchCustomMetadata(path, Object.fromEntries(readers.map((r) => [`${READER_KEY}${r}`, null])));
    return { changed: true, detail: `soft-deleted ${live.length} version(s) of ${shown} and removed ${readers.length} reader(s); kept for undelete` };
  }

  async revokeReaders(path: string[], readers: string[]): Promise<ChangeOutcome> {
    const shown = `kv/${path.join('/')}`;
    const meta = await this.kvMeta(path);
    if (!meta) return absent(shown);
    const have = new Set(this.kvState(meta).readers);
    const present = [...new Set(readers)].filter((r) => have.has(r));
    if (present.length > 0) await this.patchCustomMetadata(path, Object.fromEntries(present.map((r) => [`${READER_KEY}${r}`, null])));
    return { changed: present.length > 0, detail: `removed ${present.length} of ${readers.length} reader(s) from ${shown}` };
  }

  async rotateKv(path: string[]): Promise<RotationResult> {
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
  async walkKv(folder: string[], depth: number, budget: { seen: number }): Promise<string[][]> {
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
}

export function isCasMismatch(err: unknown): boolean {
  return /check-and-set/i.test(vaultErrorOf(err)?.message ?? '');
}
