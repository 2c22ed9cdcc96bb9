/** IAM roles for the aws-iam connector: their state (policies, inline policies, instance profiles) and leaving profiles. */
import {
  GetRoleCommand,
  ListAttachedRolePoliciesCommand,
  ListInstanceProfilesForRoleCommand,
  ListRolePoliciesCommand,
  RemoveRoleFromInstanceProfileCommand,
} from '@aws-sdk/client-iam';
import { IamCalls } from './aws-iam-calls';

export interface RoleState {
  kind: 'role';
  name: string;
  path: string;
  policies: string[];
  inline: string[];
  instanceProfiles: string[];
}

export class AwsIamRoles extends IamCalls {
  /** The role's whole state, or null when it does not exist. Outside the managed path: refused. */
  async read(entity: { kind: 'role'; name: string }): Promise<RoleState | null> {
    const got = await this.maybe('GetRole', () => this.client.send(new GetRoleCommand({ RoleName: entity.name })));
    if (got === null) return null;
    this.requireManaged(entity, got.Role?.Path);
    const [policies, inline, instanceProfiles] = await Promise.all([
      this.pages('ListAttachedRolePolicies', (Marker) => this.client.send(new ListAttachedRolePoliciesCommand({ RoleName: entity.name, Marker })), (p) => (p.AttachedPolicies ?? []).map((a) => a.PolicyArn ?? '')),
      this.pages('ListRolePolicies', (Marker) => this.client.send(new ListRolePoliciesCommand({ RoleName: entity.name, Marker })), (p) => p.PolicyNames ?? []),
      this.pages('ListInstanceProfilesForRole', (Marker) => this.client.send(new ListInstanceProfilesForRoleCommand({ RoleName: entity.name, Marker })), (p) => (p.InstanceProfiles ?? []).map((i) => i.InstanceProfileName ?? '')),
    ]);
    return { kind: 'role', name: entity.name, path: got.Role?.Path ?? '/', policies, inline, instanceProfiles };
  }

  /** Delete mode: a role leaves its instance profiles before DeleteRole. */
  async leaveInstanceProfiles(state: RoleState): Promise<string[]> {
    const steps: string[] = [];
    for (const ip of state.instanceProfiles) {
      await this.gone('RemoveRoleFromInstanceProfile', () => this.client.send(new RemoveRoleFromInstanceProfileCommand({ RoleName: state.name, InstanceProfileName: ip })));
    }
    if (state.instanceProfiles.length) steps.push(`removed from ${state.instanceProfiles.length} instance profile(s)`);
    return steps;
  }
}
