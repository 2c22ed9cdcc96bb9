import type { ConnectorsFile } from '../../src/connectors/registry';
import { connectorsFile } from './stack';
import { startStatementTap, type StatementTap } from './statement-tap';
import { TEST_ENV } from './test-env';
import { waitFor } from './wait';

/**
 * The run's MariaDB as one more system (`mysql-local` under another name), reached through a statement tap that can
 * keep a grant's expiry at the server's door. A test that acts between a verified grant and its expiry (reads what
 * the grant left, or removes the account behind the gateway's back) does so while the expiry waits, however short
 * the ttl and however long the machine stalls.
 *
 * How the expiry is told from the grant: every statement of the grant, its read-back included, is sent before the
 * activity returns, and the ttl starts only once the workflow has taken in that result. So once the workflow knows
 * the grant verified, the next statement naming the account is the expiry's (or comes later still).
 */
export interface ExpiryHold {
  /** Its connectors-file entry, for startStack's extraConnectors. */
  connector: ConnectorsFile['connectors'][number];
  system: string;
  /**
   * From the moment `grantTakenIn()` says the workflow knows the grant verified, every statement naming `account`
   * waits at the door until `release()`. Until then they pass (and each asks `grantTakenIn()` again).
   */
  holdAfterGrant(account: string, grantTakenIn: () => Promise<boolean>): void;
  /** The first statement held since the last holdAfterGrant, once one is. */
  readonly held: string | undefined;
  /** Lets the held statements, and every later one, through. */
  release(): void;
  stop(): Promise<void>;
}

export async function startExpiryHold(system = 'mysql-held-expiry'): Promise<ExpiryHold> {
  let watch: { quoted: string; grantTakenIn: () => Promise<boolean>; holding: boolean; released: Promise<void>; release: () => void } | undefined;
  let held: string | undefined;
  const tap: StatementTap = await startStatementTap({ host: '127.0.0.1', port: TEST_ENV.mariadbPort }, async (sql) => {
    const w = watch;
    // mysql2 sends the account name as a quoted literal.
    if (!w || !sql.includes(w.quoted)) return;
    // Asked again when the answer fails (a query timing out on a loaded machine): a statement let through unasked
    // could be the expiry's.
    w.holding ||= (await waitFor('an answer whether the workflow has the grant', async () => ({ taken: await w.grantTakenIn() }))).taken;
    if (!w.holding) return;
    held ??= sql;
    await w.released;
  });
  const [local] = connectorsFile().connectors;
  return {
    connector: { ...local!, name: system, host: '127.0.0.1', port: tap.port },
    system,
    holdAfterGrant(account, grantTakenIn) {
      watch?.release();
      held = undefined;
      let release = () => undefined as void;
      const released = new Promise<void>((resolve) => (release = resolve));
      watch = { quoted: `'${account}'`, grantTakenIn, holding: false, released, release };
    },
    get held() {
      return held;
    },
    release: () => watch?.release(),
    stop: async () => {
      watch?.release();
      await tap.stop();
    },
  };
}
