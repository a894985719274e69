import { createExecutionContext, env } from 'cloudflare:test';
import { expect } from 'vitest';
import { createApp } from '../../workers/app';

/** The test bindings globalSetup adds beside the Worker's own. */
export const testEnv = env as Env & {
  DATABASE_HTTP_TOKEN: string;
  TEST_EMPTY_SQL_ENDPOINT: string;
  TEST_FAULTY_SQL_ENDPOINT: string;
  TEST_FAULT_CONTROL: string;
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
