/**
 * The least-privilege policy the top of vault-connector.ts documents, for a KV prefix and, where the connector is given
 * them, database roles and a PKI role. The demo store (src/launcher/demo-openbao.ts) and the tests install it as the
 * gateway's token policy.
 */
export function vaultGatewayPolicy(o: { kvPrefix: string; kvMount?: string; dbRoles?: string[]; pkiRole?: string }): string {
  const kv = o.kvMount ?? 'secret';
  const db = (o.dbRoles ?? []).flatMap((r) => [
    `path "database/creds/${r}" { capabilities = ["read"] }`,
    `path "sys/leases/lookup/database/creds/${r}/" { capabilities = ["list", "sudo"] }`,
    `path "sys/leases/revoke/database/creds/${r}/*" { capabilities = ["update"] }`,
  ]);
  const pki = o.pkiRole
    ? [
        `path "pki/issue/${o.pkiRole}" { capabilities = ["update"] }`,
        `path "pki/certs" { capabilities = ["list"] }`,
        `path "pki/cert/*" { capabilities = ["read"] }`,
        `path "pki/revoke" { capabilities = ["update"] }`,
      ]
    : [];
  return [
    `path "${kv}/data/${o.kvPrefix}/*" { capabilities = ["create", "read", "update"] }`,
    `path "${kv}/delete/${o.kvPrefix}/*" { capabilities = ["update"] }`,
    `path "${kv}/metadata/${o.kvPrefix}" { capabilities = ["list"] }`,
    `path "${kv}/metadata/${o.kvPrefix}/*" { capabilities = ["read", "list", "patch", "delete"] }`,
    ...db,
    `path "sys/leases/lookup" { capabilities = ["update"] }`,
    ...pki,
  ].join('\n');
}
