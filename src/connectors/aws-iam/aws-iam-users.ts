/**
 * IAM users for the aws-iam connector: their whole state (keys, console password, SSH keys, signing certificates, MFA
 * devices, policies, groups, inline policies), creation with its roll-back, and taking their credentials away.
 */
import {
  type AccessKeyMetadata,
  CreateUserCommand,
  DeactivateMFADeviceCommand,
  DeleteAccessKeyCommand,
  DeleteLoginProfileCommand,
  DeleteSSHPublicKeyCommand,
  DeleteSigningCertificateCommand,
  DeleteUserCommand,
  DetachUserPolicyCommand,
  GetLoginProfileCommand,
  GetUserCommand,
  ListAccessKeysCommand,
  ListAttachedUserPoliciesCommand,
  ListGroupsForUserCommand,
  ListMFADevicesCommand,
  ListSSHPublicKeysCommand,
  ListSigningCertificatesCommand,
  ListUserPoliciesCommand,
  RemoveUserFromGroupCommand,
  UpdateAccessKeyCommand,
  UpdateSSHPublicKeyCommand,
  UpdateSigningCertificateCommand,
} from '@aws-sdk/client-iam';
import { type AwsFailure, IamCalls } from './aws-iam-calls';
import type { IamGrant } from './aws-iam-grammar';

const MANAGED_TAG = { Key: 'managed-by', Value: 'changegate' };

/** A credential other than an access key or password: an SSH public key (CodeCommit) or an X.509 signing certificate. */
export interface OtherCredential {
  kind: 'ssh-key' | 'signing-certificate';
  id: string;
  active: boolean;
}

export interface UserState {
  kind: 'user';
  name: string;
  path: string;
  keys: AccessKeyMetadata[];
  loginProfile: boolean;
  otherCredentials: OtherCredential[];
  mfaDevices: string[];
  policies: string[];
  groups: string[];
  inline: string[];
}

export class AwsIamUsers extends IamCalls {
  /** The user's whole state, or null when it does not exist. Outside the managed path: refused. */
  async read(entity: { kind: 'user'; name: string }): Promise<UserState | null> {
    const got = await this.maybe('GetUser', () => this.client.send(new GetUserCommand({ UserName: entity.name })));
    if (got === null) return null;
    this.requireManaged(entity, got.User?.Path);
    const [keys, loginProfile, policies, groups, inline, sshKeys, certificates, mfaDevices] = await Promise.all([
      this.listAccessKeys(entity.name),
      this.maybe('GetLoginProfile', () => this.client.send(new GetLoginProfileCommand({ UserName: entity.name }))).then((p) => p !== null),
      this.pages('ListAttachedUserPolicies', (Marker) => this.client.send(new ListAttachedUserPoliciesCommand({ UserName: entity.name, Marker })), (p) => (p.AttachedPolicies ?? []).map((a) => a.PolicyArn ?? '')),
      this.pages('ListGroupsForUser', (Marker) => this.client.send(new ListGroupsForUserCommand({ UserName: entity.name, Marker })), (p) => (p.Groups ?? []).map((g) => g.GroupName ?? '')),
      this.pages('ListUserPolicies', (Marker) => this.client.send(new ListUserPoliciesCommand({ UserName: entity.name, Marker })), (p) => p.PolicyNames ?? []),
      this.pages('ListSSHPublicKeys', (Marker) => this.client.send(new ListSSHPublicKeysCommand({ UserName: entity.name, Marker })), (p) =>
        (p.SSHPublicKeys ?? []).map((k): OtherCredential => ({ kind: 'ssh-key', id: k.SSHPublicKeyId ?? '', active: k.Status === 'Active' })),
      ),
      this.pages('ListSigningCertificates', (Marker) => this.client.send(new ListSigningCertificatesCommand({ UserName: entity.name, Marker })), (p) =>
        (p.Certificates ?? []).map((c): OtherCredential => ({ kind: 'signing-certificate', id: c.CertificateId ?? '', active: c.Status === 'Active' })),
      ),
      this.pages('ListMFADevices', (Marker) => this.client.send(new ListMFADevicesCommand({ UserName: entity.name, Marker })), (p) => (p.MFADevices ?? []).map((d) => d.SerialNumber ?? '')),
    ]);
    const otherCredentials = [...sshKeys, ...certificates];
    return { kind: 'user', name: entity.name, path: got.User?.Path ?? '/', keys, loginProfile, otherCredentials, mfaDevices, policies, groups, inline };
  }

  /** True when this call created the user; false when a concurrent attempt got there first. */
  async createUser(name: string): Promise<boolean> {
    try {
      await this.client.send(new CreateUserCommand({ UserName: name, Path: this.opts.path, Tags: [MANAGED_TAG] }));
      return true;
    } catch (raw) {
      if ((raw as AwsFailure).name === 'EntityAlreadyExistsException') return false;
      throw this.failure('CreateUser', raw);
    }
  }

  /**
   * Deletes a user this provision created, undoing every grant it attempted (the failing one may have been applied
   * before its answer was lost); returns `err` with what happened added to its message, type and cause unchanged.
   */
  async rollBackUser(user: string, attempted: IamGrant[], err: unknown): Promise<unknown> {
    let note: string;
    try {
      for (const grant of [...attempted].reverse()) {
        if (grant.kind === 'group') await this.leaveGroup(user, grant.name);
        else await this.gone('DetachUserPolicy', () => this.client.send(new DetachUserPolicyCommand({ UserName: user, PolicyArn: grant.arn })));
      }
      // NoSuchEntity right after CreateUser more likely means "not propagated yet" than "gone": ask again for a while.
      const deleted = await this.settle(async () => ((await this.maybe('DeleteUser', () => this.client.send(new DeleteUserCommand({ UserName: user })))) === null ? undefined : true));
      note = deleted
        ? `; rolled back: deleted user '${user}', which this provision had created`
        : `; rolled back: user '${user}', which this provision had created, is not found any more`;
    } catch (undo) {
      note = `; rollback failed, so user '${user}' is left behind: ${undo instanceof Error ? undo.message : String(undo)}`;
    }
    if (err instanceof Error) {
      err.message += note;
      return err;
    }
    return new Error(`${this.name}: provision of '${user}' failed${note}`, { cause: err });
  }

  private async setOtherCredential(user: string, c: OtherCredential, action: 'deactivate' | 'delete'): Promise<void> {
    if (c.kind === 'ssh-key') {
      await this.gone(action === 'delete' ? 'DeleteSSHPublicKey' : 'UpdateSSHPublicKey', () =>
        action === 'delete'
          ? this.client.send(new DeleteSSHPublicKeyCommand({ UserName: user, SSHPublicKeyId: c.id }))
          : this.client.send(new UpdateSSHPublicKeyCommand({ UserName: user, SSHPublicKeyId: c.id, Status: 'Inactive' })),
      );
      return;
    }
    await this.gone(action === 'delete' ? 'DeleteSigningCertificate' : 'UpdateSigningCertificate', () =>
      action === 'delete'
        ? this.client.send(new DeleteSigningCertificateCommand({ UserName: user, CertificateId: c.id }))
        : this.client.send(new UpdateSigningCertificateCommand({ UserName: user, CertificateId: c.id, Status: 'Inactive' })),
    );
  }

  async leaveGroup(user: string, group: string): Promise<void> {
    await this.gone('RemoveUserFromGroup', () => this.client.send(new RemoveUserFromGroupCommand({ UserName: user, GroupName: group })));
  }

  async listAccessKeys(user: string): Promise<AccessKeyMetadata[]> {
    return this.pages('ListAccessKeys', (Marker) => this.client.send(new ListAccessKeysCommand({ UserName: user, Marker })), (p) => p.AccessKeyMetadata ?? []);
  }

  /** Credentials first, so nothing can act as the user while its grants are being taken away; then its groups. */
  async stripCredentials(state: UserState): Promise<string[]> {
    const steps: string[] = [];
    const active = state.keys.filter((k) => k.Status === 'Active');
    for (const k of active) {
      await this.gone('UpdateAccessKey', () => this.client.send(new UpdateAccessKeyCommand({ UserName: state.name, AccessKeyId: k.AccessKeyId, Status: 'Inactive' })));
    }
    steps.push(`deactivated ${active.length} access key(s)`);
    const other = state.otherCredentials.filter((c) => c.active);
    for (const c of other) await this.setOtherCredential(state.name, c, 'deactivate');
    if (other.length) steps.push(`deactivated ${other.length} SSH key(s)/signing certificate(s)`);
    if (state.loginProfile) {
      await this.gone('DeleteLoginProfile', () => this.client.send(new DeleteLoginProfileCommand({ UserName: state.name })));
      steps.push('deleted the console password');
    }
    for (const g of state.groups) await this.leaveGroup(state.name, g);
    if (state.groups.length) steps.push(`removed from ${state.groups.length} group(s)`);
    return steps;
  }

  /** Delete mode, once grants are gone: keys, SSH keys and certificates deleted, MFA devices unassigned. */
  async deleteCredentials(state: UserState): Promise<string[]> {
    const steps: string[] = [];
    for (const k of state.keys) await this.gone('DeleteAccessKey', () => this.client.send(new DeleteAccessKeyCommand({ UserName: state.name, AccessKeyId: k.AccessKeyId })));
    steps.push(`deleted ${state.keys.length} access key(s)`);
    for (const c of state.otherCredentials) await this.setOtherCredential(state.name, c, 'delete');
    if (state.otherCredentials.length) steps.push(`deleted ${state.otherCredentials.length} SSH key(s)/signing certificate(s)`);
    // DeleteUser refuses while an MFA device is assigned; a virtual device itself stays in the account, unassigned.
    for (const serial of state.mfaDevices) {
      await this.gone('DeactivateMFADevice', () => this.client.send(new DeactivateMFADeviceCommand({ UserName: state.name, SerialNumber: serial })));
    }
    if (state.mfaDevices.length) steps.push(`deactivated ${state.mfaDevices.length} MFA device(s)`);
    return steps;
  }
}
