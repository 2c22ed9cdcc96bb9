import { randomBytes } from 'node:crypto';
import axios, { type AxiosInstance } from 'axios';
import { AmqpSession } from '../../../src/connectors/rabbitmq/amqp-login';

/**
 * The machine's RabbitMQ (scripts/setup.d/40-rabbitmq.sh: broker on 5672, management API on 15672, guest/guest
 * from localhost). Tests work in their own vhost and with uniquely named users, and remove both afterwards.
 */
export interface RabbitTestBroker {
  url: string;
  amqpPort: number;
  /** Management API as guest (administrator). Statuses are returned, not thrown. */
  admin: AxiosInstance;
  /** A vhost of this run's own; deleted, with every permission in it, by stop(). */
  vhost: string;
  createUser(name: string, tags: string[]): Promise<string>;
  deleteUser(name: string): Promise<void>;
  /** A real AMQP connection as `name` into this run's vhost, held open until the broker closes it or stop(). */
  connectAs(name: string, password: string): Promise<AmqpSession>;
  stop(): Promise<void>;
}

export const RABBITMQ_URL = 'http://127.0.0.1:15672';
export const RABBITMQ_AMQP_PORT = 5672;

export async function useRabbitmq(): Promise<RabbitTestBroker> {
  const admin = axios.create({
    baseURL: `${RABBITMQ_URL}/api`,
    auth: { username: 'guest', password: 'guest' },
    timeout: 10_000,
    validateStatus: () => true,
  });
  const overview = await admin.get('/overview').catch((err: Error) => ({ status: 0, statusText: err.message }));
  if (overview.status !== 200) {
    throw new Error(`RabbitMQ management API at ${RABBITMQ_URL} answered ${overview.status} ${overview.statusText}: run bash scripts/setup.sh`);
  }
  const vhost = `cgt-${randomBytes(4).toString('hex')}`;
  const must = async (p: Promise<{ status: number; data: unknown }>, what: string): Promise<void> => {
    const r = await p;
    if (r.status >= 300 && r.status !== 404) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.data)}`);
  };
  await must(admin.put(`/vhosts/${encodeURIComponent(vhost)}`), `create vhost ${vhost}`);
  const sessions: AmqpSession[] = [];
  return {
    url: RABBITMQ_URL,
    amqpPort: RABBITMQ_AMQP_PORT,
    admin,
    vhost,
    async createUser(name, tags) {
      const password = randomBytes(18).toString('base64url');
      await must(admin.put(`/users/${encodeURIComponent(name)}`, { password, tags }), `create user ${name}`);
      return password;
    },
    async deleteUser(name) {
      await must(admin.delete(`/users/${encodeURIComponent(name)}`), `delete user ${name}`);
    },
    async connectAs(name, password) {
      const s = await AmqpSession.open({ host: '127.0.0.1', port: RABBITMQ_AMQP_PORT });
      sessions.push(s);
      if (!(await s.login(name, password))) throw new Error(`AMQP login as ${name} refused`);
      await s.openVhost(vhost);
      return s;
    },
    async stop() {
      for (const s of sessions) await s.close();
      await must(admin.delete(`/vhosts/${encodeURIComponent(vhost)}`), `delete vhost ${vhost}`);
    },
  };
}
