/** `u_identity_actions` text with one leaver of a MariaDB service account on `mysql-local`. */
export function leaverActions(name: string): string {
  return JSON.stringify([{ kind: 'leaver', system: 'mysql-local', identity: { type: 'service_account', name, host: '%' } }]);
}
