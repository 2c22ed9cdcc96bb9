import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { parseIsoDuration } from '../actions/iso-duration';

const policySchema = z
  .object({
    /** Longest TTL a joiner may ask for; longer requests are refused at the edge. */
    maxTtl: z.string().refine((t) => parseIsoDuration(t) !== null, 'must be an ISO-8601 duration').optional(),
    protectedAccounts: z.array(z.string().min(1)).default([]),
  })
  .strict()
  .default({});

const mysqlInstanceSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be lower-case letters, digits and hyphens'),
    type: z.literal('mysql'),
    host: z.string().min(1),
    port: z.number().int().min(1).max(65_535).default(3306),
    user: z.string().min(1),
    /** The password is never in this file: it names the environment variable that holds it. */
    passwordEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/),
    policy: policySchema,
  })
  .strict();

export const connectorsFileSchema = z.object({ connectors: z.array(z.discriminatedUnion('type', [mysqlInstanceSchema])).min(1) }).strict();

export type ConnectorInstanceConfig = z.infer<typeof mysqlInstanceSchema>;
export type ConnectorsFile = z.infer<typeof connectorsFileSchema>;

export function loadConnectorsFile(path: string): ConnectorsFile {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`connector configuration ${path}: cannot read JSON`, { cause: err });
  }
  const parsed = connectorsFileSchema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`connector configuration ${path}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const names = parsed.data.connectors.map((c) => c.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new Error(`connector configuration ${path}: connector name '${dup}' is defined twice`);
  return parsed.data;
}
