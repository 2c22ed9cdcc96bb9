/**
 * Access keys of IAM users for the aws-iam connector: two-phase rotation (a new key first, the others retired only
 * once it is delivered and verified) and the proof that a key pair works.
 */
import {
  CreateAccessKeyCommand,
  DeleteAccessKeyCommand,
  GetUserCommand,
  IAMClient,
  UpdateAccessKeyCommand,
} from '@aws-sdk/client-iam';
import type { RotationResult } from '../connector';
import { ConnectorRefusal, FailureType } from '../connector-errors';
import { Secret } from '../secret';
import { type AwsFailure, IamCalls, type IamCallOptions } from './aws-iam-calls';
import type { AwsIamUsers } from './aws-iam-users';

/** The key id is unknown to AWS's authentication: a wrong or deleted key, an inactive one on AWS, or one too new. */
const UNKNOWN_KEY = new Set(['InvalidClientTokenId', 'InvalidAccessKeyId', 'UnrecognizedClientException', 'AuthFailure']);
/** The key id is known but the signature is wrong: the secret does not belong to it. */
const BAD_SIGNATURE = new Set(['SignatureDoesNotMatch', 'IncompleteSignature']);
const ACCESS_KEY_ID = /^[A-Z0-9]{16,128}$/;
/** "User: arn:aws:iam::123456789012:user/some/path/alice is not authorized to perform: …": the caller's user name. */
const CALLER_IN_ACCESS_DENIED = /^User: arn:[\w-]+:iam::\d{12}:user\/(?:[\w+=,.@-]+\/)*([\w+=,.@-]{1,64}) is not authorized/;

export class AwsIamAccessKeys extends IamCalls {
  constructor(
    name: string,
    opts: IamCallOptions,
    client: IAMClient,
    private readonly users: AwsIamUsers,
  ) {
    super(name, opts, client);
  }

  /**
   * First phase of a rotation: issues a new access key and changes nothing else the workload relies on. The
   * previous keys stay Active until `retireOthers` runs, which the rotation activity calls only once the new key
   * has been delivered to the secrets store and verified; a failed delivery thus leaves the workload's key working.
   *
   * AWS allows two keys per user. To make room, an inactive key goes first (the rollback key of the previous
   * rotation). If both keys are active, the newer one goes: a rotation whose delivery failed leaves exactly that, a
   * key whose secret never reached the store, next to the older key the workload holds. It goes only while another
   * key stays active, so this never deletes a user's last working key. The rule guesses when both active keys were
   * made outside the gateway, or when a delivery succeeded and only its verification failed (the store then serves
   * the newer key; this rotation replaces it there straight away).
   * The secret is JSON: `{"accessKeyId":"AKIA…","secretAccessKey":"…"}`.
   */
  async rotate(entity: { kind: 'user'; name: string }): Promise<RotationResult> {
    const state = await this.users.read(entity);
    if (state === null) {
      throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: user '${entity.name}' does not exist, so it has no access key to rotate`);
    }
    const keys = [...state.keys].sort((a, b) => (a.CreateDate?.getTime() ?? 0) - (b.CreateDate?.getTime() ?? 0));
    const deleted: string[] = [];
    while (keys.length >= 2) {
      const inactive = keys.findIndex((k) => k.Status !== 'Active');
      const at = inactive >= 0 ? inactive : keys.length - 1;
      const victim = keys[at]!;
      if (victim.Status === 'Active' && !keys.some((k, i) => i !== at && k.Status === 'Active')) {
        throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: making room for a new key of '${entity.name}' would delete its only active key ${victim.AccessKeyId}`);
      }
      keys.splice(at, 1);
      await this.gone('DeleteAccessKey', () => this.client.send(new DeleteAccessKeyCommand({ UserName: entity.name, AccessKeyId: victim.AccessKeyId })));
      deleted.push(`${victim.AccessKeyId ?? '?'} (${victim.Status === 'Active' ? 'active, newer: never delivered' : 'inactive'})`);
    }
    const made = await this.call('CreateAccessKey', () => this.client.send(new CreateAccessKeyCommand({ UserName: entity.name })));
    const accessKeyId = made.AccessKey?.AccessKeyId;
    const secretAccessKey = made.AccessKey?.SecretAccessKey;
    if (!accessKeyId || !secretAccessKey) throw new Error(`${this.name}: CreateAccessKey for '${entity.name}' returned no key`);
    const secret = new Secret(JSON.stringify({ accessKeyId, secretAccessKey }));
    const previous = keys.filter((k) => k.Status === 'Active').map((k) => k.AccessKeyId ?? '?');
    return {
      secret,
      credentialId: accessKeyId,
      detail:
        `created access key ${accessKeyId} for '${entity.name}'` +
        (deleted.length ? `; deleted ${deleted.join(', ')} to stay within two keys` : '') +
        (previous.length ? `; ${previous.join(', ')} stays active until the new key is delivered and verified` : '; no previous active key'),
    };
  }

  /**
   * Second phase of a rotation: deactivates every active access key of the user except `keep` (kept, inactive, for
   * rollback until the next rotation deletes it). Refuses, changing nothing, unless `keep` is listed Active for this
   * user: retiring the others would otherwise leave the workload without a working key.
   */
  async retireOthers(entity: { kind: 'user'; name: string }, keep: string): Promise<{ retired: number; detail: string }> {
    if (!ACCESS_KEY_ID.test(keep)) {
      throw new ConnectorRefusal(FailureType.InvalidIdentity, `${this.name}: ${JSON.stringify(keep.slice(0, 40))} is not an access key id; refusing to retire every key of '${entity.name}'`);
    }
    const state = await this.users.read(entity);
    if (state === null) {
      throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: user '${entity.name}' does not exist, so it has no access key to retire`);
    }
    let keys = state.keys;
    if (!keys.some((k) => k.AccessKeyId === keep)) {
      // A key created a moment ago may not be listed yet: IAM is eventually consistent.
      const listed = await this.settle(async () => {
        const now = await this.users.listAccessKeys(entity.name);
        return now.some((k) => k.AccessKeyId === keep) ? now : undefined;
      });
      keys = listed ?? keys;
    }
    const kept = keys.find((k) => k.AccessKeyId === keep);
    if (kept?.Status !== 'Active') {
      throw new ConnectorRefusal(
        FailureType.TargetRefused,
        `${this.name}: access key ${keep} is ${kept ? 'not active' : 'not listed'} for '${entity.name}'; refusing to retire its other keys, which would leave it without a working key`,
      );
    }
    const retiring = keys.filter((k) => k.AccessKeyId !== keep && k.Status === 'Active');
    for (const k of retiring) {
      await this.gone('UpdateAccessKey', () => this.client.send(new UpdateAccessKeyCommand({ UserName: entity.name, AccessKeyId: k.AccessKeyId, Status: 'Inactive' })));
    }
    const ids = retiring.map((k) => k.AccessKeyId ?? '?');
    return {
      retired: retiring.length,
      detail: ids.length
        ? `deactivated ${ids.join(', ')} of '${entity.name}' (kept inactive for rollback until the next rotation); ${keep} stays active`
        : `no active access key of '${entity.name}' other than ${keep}`,
    };
  }

  /**
   * The key authenticates when AWS accepts its signature (the call succeeds, or is refused only for lack of
   * permission, which AWS decides after authenticating) and the user's key list shows it Active. The status check
   * matters where the target does not refuse inactive keys itself: moto checks signatures but not key status.
   *
   * IAM is eventually consistent: a key created a moment ago can be listed Active while AWS still answers
   * InvalidClientTokenId for it, or be accepted before it is listed. Either is retried for up to `consistencyWaitMs`,
   * then reported as a transient error, never as `false`, which would fail the rotation for good.
   */
  async authenticates(entity: { kind: 'user'; name: string }, secret: Secret): Promise<boolean> {
    const pair = parseKeyPair(secret);
    if (pair === null) return false;
    const verdict = await this.settle(async () => {
      const signed = await this.signIn(pair);
      if (signed === 'bad-signature' || (typeof signed === 'object' && signed.user !== entity.name)) return false;
      const listed = (await this.users.listAccessKeys(entity.name)).find((k) => k.AccessKeyId === pair.accessKeyId);
      if (signed === 'unknown-key') return listed?.Status === 'Active' ? undefined : false;
      // Accepted as this user, or by a user AWS did not name: a key not listed yet is one created a moment ago.
      return listed === undefined ? undefined : listed.Status === 'Active';
    });
    if (verdict === undefined) {
      throw Object.assign(
        new Error(`${this.name}: access key ${pair.accessKeyId} of '${entity.name}' is not yet both listed Active and accepted by AWS (IAM is eventually consistent); try again`),
        { transient: true },
      );
    }
    return verdict;
  }

  /**
   * Signs GetUser with the key pair: whose key it is, or AWS's verdict when it will not say. A key without
   * iam:GetUser on itself (most workloads' keys) is still authenticated: AWS names the caller in its AccessDenied.
   */
  private async signIn(pair: { accessKeyId: string; secretAccessKey: string }): Promise<{ user: string } | 'denied' | 'unknown-key' | 'bad-signature'> {
    const probe = this.iamClient(pair.accessKeyId, pair.secretAccessKey);
    try {
      const me = await probe.send(new GetUserCommand({}));
      return { user: me.User?.UserName ?? '' };
    } catch (raw) {
      const name = (raw as AwsFailure).name ?? '';
      if (UNKNOWN_KEY.has(name)) return 'unknown-key';
      if (BAD_SIGNATURE.has(name)) return 'bad-signature';
      if (name === 'AccessDenied' || name === 'AccessDeniedException') {
        const caller = CALLER_IN_ACCESS_DENIED.exec((raw as AwsFailure).message ?? '');
        return caller?.[1] ? { user: caller[1] } : 'denied';
      }
      throw this.failure('GetUser (as the key being checked)', raw);
    } finally {
      probe.destroy();
    }
  }
}

function parseKeyPair(secret: Secret): { accessKeyId: string; secretAccessKey: string } | null {
  let value: unknown;
  try {
    value = JSON.parse(secret.reveal());
  } catch {
    return null;
  }
  const pair = value as { accessKeyId?: unknown; secretAccessKey?: unknown } | null;
  if (typeof pair?.accessKeyId !== 'string' || typeof pair.secretAccessKey !== 'string') return null;
  if (!ACCESS_KEY_ID.test(pair.accessKeyId) || pair.secretAccessKey.length === 0) return null;
  return { accessKeyId: pair.accessKeyId, secretAccessKey: pair.secretAccessKey };
}
