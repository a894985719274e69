/**
 * The real Worker (tests/support/local-worker.ts) over its own migrated test database behind the
 * local SQL endpoint, signed in as the local operator: what Node-side tests drive over HTTP.
 */
import { randomBytes } from 'node:crypto';
import { sqlClient } from '../../cli/lib/database.ts';
import { migrate } from '../../cli/lib/migrations.ts';
import { type SqlEndpoint, startSqlEndpoint } from '../../cli/sql-endpoint/server.ts';
import { createTestDatabase, type TestDatabase, testToken } from './databases.ts';
import { type LocalWorker, startLocalWorker } from './local-worker.ts';

// biome-ignore lint/suspicious/noExplicitAny: API bodies are read loosely and asserted on.
export type Json = Record<string, any>;

export interface WorkerStack {
  worker: LocalWorker;
  database: TestDatabase;
  /** The local operator's token. */
  token: string;
  /** A request as the local operator (extra headers override); the body comes back parsed. */
  api(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: Json }>;
  close(): Promise<void>;
}

export async function startWorkerStack(
  settings: Record<string, string> = {},
  onResponse: (text: string) => void = () => {},
): Promise<WorkerStack> {
  const token = randomBytes(48).toString('base64url');
  const database = await createTestDatabase();
  const sqlToken = testToken();
  let endpoint: SqlEndpoint | undefined;
  let worker: LocalWorker | undefined;
  try {
    endpoint = await startSqlEndpoint({ backend: database.backend, token: sqlToken });
    await migrate(sqlClient({ url: 'postgresql://test@localhost/test', endpoint: endpoint.url, token: sqlToken }));
    worker = await startLocalWorker({
      bindings: {
        ENVIRONMENT: 'test',
        AUTH_MODE: 'local',
        DATABASE_URL: 'postgresql://test@localhost/test',
        DATABASE_HTTP_ENDPOINT: endpoint.url,
        DATABASE_HTTP_TOKEN: sqlToken,
        LOCAL_AUTH_TOKEN: token,
        ENCRYPTION_KEY: randomBytes(32).toString('base64'),
        ...settings,
      },
    });
  } catch (err) {
    await endpoint?.close();
    await database.drop();
    throw err;
  }
  const running = worker;
  const sqlEndpoint = endpoint;
  return {
    worker: running,
    database,
    token,
    async api(method, path, body, headers = {}) {
      const res = await fetch(`${running.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      onResponse(text);
      return { status: res.status, body: (text ? JSON.parse(text) : null) as Json };
    },
    async close() {
      await running.close();
      await sqlEndpoint.close();
      await database.drop();
    },
  };
}

/** Polls `read` until `ok` holds or the time is up; returns the last value (the caller asserts on it). */
export async function until<T>(read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 200));
  }
}
