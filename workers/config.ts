/**
 * Settings, parsed with zod once per isolate. A blank value counts as unset, so it can never
 * silently switch a protection off; errors name the setting, never its value.
 */
import { z } from 'zod';
import type { EncryptionKeys } from './lib/secret-box';

const blankAsUnset = (value: unknown) => (typeof value === 'string' && value.trim() === '' ? undefined : value);
const optional = <T extends z.ZodType>(schema: T) => z.preprocess(blankAsUnset, schema.optional());
// prefault, not default: zod 4 returns a default as-is, skipping the schema's transforms.
const withDefault = <T extends z.ZodType>(schema: T, fallback: z.input<T>) =>
  z.preprocess(blankAsUnset, schema.prefault(fallback as never));
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const PLACEHOLDER = /change[-_ ]?me|replace[-_ ]?me|placeholder|your[-_ ]|example|^(.)\1+$/i;

export const LOCAL_TOKEN_MIN_LENGTH = 50;

const secretToken = z
  .string({ error: 'is required' })
  .min(LOCAL_TOKEN_MIN_LENGTH, `must be at least ${LOCAL_TOKEN_MIN_LENGTH} characters`)
  .refine((v) => !PLACEHOLDER.test(v), 'looks like a placeholder: generate a random value');

const encryptionKey = z.string({ error: 'is required' }).refine((v) => {
  try {
    return atob(v).length === 32;
  } catch {
    return false;
  }
}, 'must be 32 random bytes, base64-encoded (openssl rand -base64 32)');

const list = z.string().transform((value) =>
  value
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean),
);

/** `N/S`: N requests per S seconds. */
const rate = z
  .string()
  .regex(/^\d+\/\d+$/, 'must look like 300/60 (requests per seconds)')
  .transform((v) => {
    const [limit, seconds] = v.split('/').map(Number);
    return { limit: limit ?? 0, windowSeconds: seconds ?? 1 };
  })
  .refine((r) => r.limit > 0 && r.windowSeconds > 0, 'both numbers must be positive');

const isOrigin = (value: string) => {
  try {
    return new URL(value).origin === value;
  } catch {
    return false;
  }
};

const origins = list.refine(
  (values) => values.every(isOrigin),
  'must be a comma-separated list of origins like https://ops.example.com',
);

export const settingsSchema = z
  .object({
    ENVIRONMENT: withDefault(z.enum(['production', 'development', 'test']), 'production'),
    DATABASE_URL: z.preprocess(
      blankAsUnset,
      z
        .string({ error: 'is required' })
        .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// connection string'),
    ),
    DATABASE_HTTP_ENDPOINT: optional(z.url({ protocol: /^https?$/, error: 'must be an http(s) URL ending in /sql' })),
    DATABASE_HTTP_TOKEN: optional(z.string().min(32, 'must be at least 32 characters')),
    AUTH_MODE: withDefault(z.enum(['local', 'clerk']), 'local'),
    LOCAL_AUTH_TOKEN: optional(secretToken),
    ENCRYPTION_KEY: z.preprocess(blankAsUnset, encryptionKey),
    ENCRYPTION_KEY_PREVIOUS: optional(encryptionKey),
    CORS_ORIGINS: withDefault(origins, ''),
    REQUEST_LOG_SLOW_MS: withDefault(int(1, 600_000), 1000),
    JSON_BODY_LIMIT_BYTES: withDefault(int(1024, 10 * 1024 * 1024), 256 * 1024),
    READYZ_TIMEOUT_MS: withDefault(int(100, 30_000), 2000),
    JWKS_URL: optional(z.url({ protocol: /^https?$/, error: 'must be the https URL of the issuer JWKS' })),
    JWT_ISSUER: optional(z.string()),
    JWT_AUDIENCE: optional(z.string()),
    JWT_AUTHORIZED_PARTIES: withDefault(list, ''),
    JWT_LEEWAY_SECONDS: withDefault(int(0, 300), 10),
    PLATFORM_ADMIN_SUBJECTS: withDefault(list, ''),
    AGENT_RATE_LIMIT: withDefault(rate, '300/60'),
    AGENT_AUTH_FAILURE_LIMIT: withDefault(rate, '20/60'),
    AUTH_FAILURE_LIMIT: withDefault(rate, '20/60'),
    WEBHOOK_RATE_LIMIT: withDefault(rate, '60/60'),
    WEBHOOK_MISS_LIMIT: withDefault(rate, '30/60'),
    RATE_LIMIT_BACKEND: withDefault(z.enum(['durable-object', 'upstash']), 'durable-object'),
    UPSTASH_REDIS_REST_URL: optional(
      z.url({ protocol: /^https?$/, error: 'must be the https URL of the Upstash database' }),
    ),
    UPSTASH_REDIS_REST_TOKEN: optional(z.string().min(20, 'must be at least 20 characters')),
    UPSTASH_TIMEOUT_MS: withDefault(int(50, 10_000), 500),
    INJECTION_ACTION: withDefault(z.enum(['warn', 'block', 'off']), 'warn'),
    MAX_MESSAGE_CHARS: withDefault(int(1_000, 1_000_000), 32_000),
    WEBHOOK_REDELIVER_AFTER_SECONDS: withDefault(int(0, 86_400), 300),
    WEBHOOK_BODY_TIMEOUT_MS: withDefault(int(100, 60_000), 10_000),
    WEBHOOK_RETENTION_DAYS: withDefault(int(1, 3_650), 30),
    ACTIVITY_RETENTION_DAYS: withDefault(int(1, 3_650), 90),
    AUDIT_RETENTION_DAYS: withDefault(int(1, 3_650), 365),
    REVOCATION_RETENTION_DAYS: withDefault(int(1, 3_650), 30),
    JOB_RUN_RETENTION_DAYS: withDefault(int(1, 3_650), 30),
    BACKUP_RETENTION_DAYS: withDefault(int(1, 3_650), 30),
    BACKUP_CHUNK_ROWS: withDefault(int(10, 100_000), 5_000),
    BACKUP_CHUNK_BYTES: withDefault(int(1_024, 64 * 1024 * 1024), 8 * 1024 * 1024),
    BACKUP_SLICE_MS: withDefault(int(1_000, 600_000), 20_000),
    ALLOW_INSECURE_GATEWAY_URLS: withDefault(
      z.enum(['true', 'false']).transform((v) => v === 'true'),
      'false',
    ),
    GATEWAY_MIN_VERSION: withDefault(
      z.string().regex(/^\d+(\.\d+){1,3}$/, 'must be a version like 2026.02.9'),
      '2026.02.9',
    ),
    GATEWAY_CONNECT_TIMEOUT_MS: withDefault(int(500, 60_000), 10_000),
    GATEWAY_RPC_TIMEOUT_MS: withDefault(int(100, 300_000), 15_000),
    AGENT_CHECKIN_TIMEOUT_SECONDS: withDefault(int(1, 3_600), 30),
    AGENT_PROVISION_RETRY_MS: withDefault(int(50, 600_000), 5_000),
    CONTENT_SECURITY_POLICY: optional(z.string()),
    STRICT_TRANSPORT_SECURITY: optional(z.string()),
  })
  .superRefine((s, ctx) => {
    if (s.AUTH_MODE === 'local' && s.LOCAL_AUTH_TOKEN === undefined) {
      ctx.addIssue({ code: 'custom', path: ['LOCAL_AUTH_TOKEN'], message: 'is required when AUTH_MODE is local' });
    }
    if (s.AUTH_MODE === 'clerk') {
      for (const name of ['JWKS_URL', 'JWT_ISSUER'] as const) {
        if (s[name] === undefined)
          ctx.addIssue({ code: 'custom', path: [name], message: 'is required when AUTH_MODE is clerk' });
      }
    }
    if (s.RATE_LIMIT_BACKEND === 'upstash') {
      for (const name of ['UPSTASH_REDIS_REST_URL', 'UPSTASH_REDIS_REST_TOKEN'] as const) {
        if (s[name] === undefined)
          ctx.addIssue({ code: 'custom', path: [name], message: 'is required when RATE_LIMIT_BACKEND is upstash' });
      }
    }
    if (s.ENCRYPTION_KEY_PREVIOUS !== undefined && s.ENCRYPTION_KEY_PREVIOUS === s.ENCRYPTION_KEY) {
      ctx.addIssue({
        code: 'custom',
        path: ['ENCRYPTION_KEY_PREVIOUS'],
        message: 'must differ from ENCRYPTION_KEY (it is the key being rotated out)',
      });
    }
    if (s.DATABASE_HTTP_ENDPOINT !== undefined && s.DATABASE_HTTP_TOKEN === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['DATABASE_HTTP_TOKEN'],
        message: 'is required with DATABASE_HTTP_ENDPOINT',
      });
    }
  });

export type Settings = z.infer<typeof settingsSchema>;

/** ENCRYPTION_KEY seals; ENCRYPTION_KEY_PREVIOUS still opens rows sealed before a rotation. */
export const encryptionKeys = (s: Settings): EncryptionKeys => ({
  current: s.ENCRYPTION_KEY,
  previous: s.ENCRYPTION_KEY_PREVIOUS,
});

export interface SettingProblem {
  setting: string;
  problem: string;
}

export type LoadedSettings = { ok: true; settings: Settings } | { ok: false; problems: SettingProblem[] };

const cache = new WeakMap<object, LoadedSettings>();

/** Parses `env` once per isolate (the runtime hands every request the same env object). */
export function loadSettings(env: object): LoadedSettings {
  const cached = cache.get(env);
  if (cached) return cached;
  const parsed = settingsSchema.safeParse(env);
  const loaded: LoadedSettings = parsed.success
    ? { ok: true, settings: parsed.data }
    : {
        ok: false,
        // Only our own messages and the path: zod issues can carry the received value.
        problems: parsed.error.issues.map((issue) => ({
          setting: String(issue.path[0] ?? 'settings'),
          problem: issue.code === 'invalid_value' ? 'is not one of the allowed values' : issue.message,
        })),
      };
  cache.set(env, loaded);
  return loaded;
}
