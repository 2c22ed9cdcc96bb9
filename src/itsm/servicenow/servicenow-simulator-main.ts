import { z } from 'zod';
import { createServiceNowSimulator } from './servicenow-simulator';

const envSchema = z
  .object({
    SIM_PORT: z.coerce.number().int().min(0).max(65_535).default(8090),
    SIM_HOST: z.string().min(1).default('127.0.0.1'),
    SIM_USERNAME: z.string().min(1).default('changegate'),
    SIM_PASSWORD: z.string().min(1).default('changegate-demo'),
    SIM_WEBHOOK_URL: z.string().url().optional(),
    SIM_WEBHOOK_SECRET: z.string().min(1).optional(),
    /** With both, /oauth_token.do issues tokens to this client (README, ServiceNow side). */
    SIM_OAUTH_CLIENT_ID: z.string().min(1).optional(),
    SIM_OAUTH_CLIENT_SECRET: z.string().min(1).optional(),
    SIM_OAUTH_TOKEN_LIFETIME_SECONDS: z.coerce.number().int().min(1).max(86_400).default(1800),
  })
  .refine((env) => (env.SIM_OAUTH_CLIENT_ID === undefined) === (env.SIM_OAUTH_CLIENT_SECRET === undefined), {
    message: 'set both SIM_OAUTH_CLIENT_ID and SIM_OAUTH_CLIENT_SECRET, or neither',
    path: ['SIM_OAUTH_CLIENT_SECRET'],
  })
  .refine((env) => (env.SIM_WEBHOOK_URL === undefined) === (env.SIM_WEBHOOK_SECRET === undefined), {
    message: 'set both SIM_WEBHOOK_URL and SIM_WEBHOOK_SECRET, or neither',
    path: ['SIM_WEBHOOK_SECRET'],
  });

async function main(): Promise<void> {
  const parsed = envSchema.safeParse(process.env);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) console.error(`servicenow-simulator: ${issue.path.join('.')}: ${issue.message}`);
    process.exit(1);
  }
  const env = parsed.data;
  const simulator = createServiceNowSimulator({
    username: env.SIM_USERNAME,
    password: env.SIM_PASSWORD,
    webhook: env.SIM_WEBHOOK_URL && env.SIM_WEBHOOK_SECRET ? { url: env.SIM_WEBHOOK_URL, secret: env.SIM_WEBHOOK_SECRET } : undefined,
    ...(env.SIM_OAUTH_CLIENT_ID && env.SIM_OAUTH_CLIENT_SECRET
      ? { oauth: { clientId: env.SIM_OAUTH_CLIENT_ID, clientSecret: env.SIM_OAUTH_CLIENT_SECRET, tokenLifetimeSeconds: env.SIM_OAUTH_TOKEN_LIFETIME_SECONDS } }
      : {}),
  });
  const server = await simulator.listen(env.SIM_PORT, env.SIM_HOST);
  console.log(`servicenow-simulator listening on ${server.url}`);

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    server
      .close()
      .then(() => simulator.waitForDeliveries())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          console.error(`servicenow-simulator: error while stopping on ${signal}`, err);
          process.exit(1);
        },
      );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  console.error('servicenow-simulator: failed to start', err);
  process.exit(1);
});
