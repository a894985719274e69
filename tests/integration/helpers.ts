import { createExecutionContext, env, SELF } from 'cloudflare:test';
import { eq } from 'drizzle-orm';
import { importJWK, type JWK, SignJWT } from 'jose';
import { expect, vi } from 'vitest';
import { createApp } from '../../workers/app';
import { settingsSchema } from '../../workers/config';
import { openDatabase } from '../../workers/db/client';
import { users } from '../../workers/db/schema';

/** The test bindings globalSetup adds beside the Worker's own. */
export const testEnv = env as Env & {
  DATABASE_HTTP_TOKEN: string;
  TEST_EMPTY_SQL_ENDPOINT: string;
  TEST_ISOLATED_SQL_ENDPOINT: string;
  TEST_FAULTY_SQL_ENDPOINT: string;
  TEST_FAULT_CONTROL: string;
  TEST_JWKS_URL: string;
  TEST_JWT_PRIVATE_KEYS: string;
  TEST_UPSTASH_URL: string;
  TEST_UPSTASH_TOKEN: string;
  TEST_UPSTASH_DEAD_URL: string;
  TEST_UPSTASH_HANG_URL: string;
  TEST_FAKE_GATEWAY_URL: string;
};

/** The app under a different environment (another database, a broken setting). */
export function appWith(overrides: Record<string, unknown>) {
  const app = createApp();
  const bindings = { ...testEnv, ...overrides } as Env;
  // Handlers hand published events to waitUntil, so every request gets an execution context.
  return (path: string, init?: RequestInit) => app.request(path, init, bindings, createExecutionContext());
}

// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON shapes and assert on them.
export async function json<T = Record<string, any>>(res: Response): Promise<T> {
  expect(res.headers.get('content-type')).toMatch(/application\/json/);
  return (await res.json()) as T;
}

/** Headers of the local operator (AUTH_MODE=local). */
export const operatorHeaders = (extra: Record<string, string> = {}) => ({
  Authorization: `Bearer ${testEnv.LOCAL_AUTH_TOKEN}`,
  ...extra,
});

export type Call = (path: string, init?: RequestInit) => Response | Promise<Response>;

/** The real Worker, as a client reaches it. */
export const api = (path: string, init: RequestInit = {}) => SELF.fetch(`https://mce.test${path}`, init);

/** For tests of thousands of requests: their log lines need not travel to the runner (undone by vi.restoreAllMocks). */
export const quiet = () => {
  for (const level of ['log', 'warn', 'error'] as const) vi.spyOn(console, level).mockImplementation(() => {});
};

/** Polls `read` until `ok` holds or the time is up; returns the last value (the caller asserts on it). */
export async function until<T>(read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await read();
  while (!ok(value) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    value = await read();
  }
  return value;
}

/** A client address no other test uses, so per-IP limits start from zero. */
export const freshIp = () => {
  const [a, b, c] = crypto.getRandomValues(new Uint8Array(3));
  return `10.${a}.${b}.${c}`;
};

/** Hex HMAC-SHA256, as webhook senders sign: written here so tests do not trust the product's signer. */
export async function hmacHex(secret: string, body: string | Uint8Array): Promise<string> {
  const encoder = new TextEncoder();
  const key = await crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, [
    'sign',
  ]);
  const data = typeof body === 'string' ? encoder.encode(body) : body;
  const mac = new Uint8Array(await crypto.subtle.sign('HMAC', key, data as Uint8Array<ArrayBuffer>));
  return Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join('');
}

export const bearer = (secret: string) => ({ Authorization: `Bearer ${secret}` });

/** A JSON request through `call` (the real Worker by default); the body comes back parsed. */
export async function send(
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = operatorHeaders(),
  call: Call = api,
) {
  const res = await call(path, {
    method,
    headers: { ...headers, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON shapes and assert on them.
  return { status: res.status, body: (text ? JSON.parse(text) : null) as Record<string, any> };
}

/**
 * More operators than the one local token: each signs in with a JWT from the test issuer and is
 * provisioned, by its first request, with a Personal organization it owns. `name` keeps each
 * file's issuer and subjects apart.
 */
export function jwtOperators(name: string) {
  const issuer = `https://issuer.${name}.test`;
  const clerk = appWith({ AUTH_MODE: 'clerk', JWKS_URL: testEnv.TEST_JWKS_URL, JWT_ISSUER: issuer });

  async function session(subject: string): Promise<{ Authorization: string }> {
    const key = (JSON.parse(testEnv.TEST_JWT_PRIVATE_KEYS) as { RS256: JWK }).RS256;
    const iat = Math.floor(Date.now() / 1000) - 5;
    const jwt = await new SignJWT({ iss: issuer, sub: subject, iat, exp: iat + 600 })
      .setProtectedHeader({ alg: 'RS256', kid: key.kid as string })
      .sign(await importJWK(key, 'RS256'));
    return { Authorization: `Bearer ${jwt}` };
  }

  async function newOperator() {
    const subject = `${name}_${crypto.randomUUID()}`;
    const headers = await session(subject);
    expect((await clerk('/api/v1/boards', { headers })).status).toBe(200);
    const db = await openDatabase(settingsSchema.parse(testEnv));
    const [user] = await db.select().from(users).where(eq(users.subject, subject));
    if (!user?.activeOrganizationId) throw new Error('operator not provisioned');
    return { headers, userId: user.id, organizationId: user.activeOrganizationId };
  }

  return { clerk, session, newOperator };
}
