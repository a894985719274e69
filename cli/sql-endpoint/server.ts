/**
 * A local stand-in for Neon's SQL-over-HTTP API. It runs arbitrary SQL, so it binds to
 * loopback only, demands a bearer token, and refuses anything that looks like a browser.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpError, readBody, sendJson, tokenDigest, tokenMatches } from '../lib/http-server.ts';
import type { SqlBackend } from './backends.ts';
import { type IsolationLevel, isolationLevels, postgresErrorBody, sqlRequest, toWire } from './protocol.ts';

/** Neon's own limit on a request or response body. */
const MAX_BODY_BYTES = 64 * 1024 * 1024;
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export interface SqlEndpointOptions {
  backend: SqlBackend;
  /** Bearer token clients must send (the driver's `authToken`). */
  token: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
}

export interface SqlEndpoint {
  /** The URL to give the driver as its fetch endpoint, ending in /sql. */
  url: string;
  port: number;
  /** Requests answered so far (one per driver round trip: a query or a batch). */
  requests(): number;
  close(): Promise<void>;
}

function flag(req: IncomingMessage, name: string): boolean {
  return req.headers[name.toLowerCase()] === 'true';
}

function isolationLevel(req: IncomingMessage): IsolationLevel | undefined {
  const value = req.headers['neon-batch-isolation-level'];
  if (value === undefined) return undefined;
  if (typeof value === 'string' && value in isolationLevels) return value as IsolationLevel;
  throw new HttpError(400, `unknown Neon-Batch-Isolation-Level: ${String(value)}`);
}

async function handle(req: IncomingMessage, backend: SqlBackend, token: Buffer) {
  if (req.url !== '/sql') throw new HttpError(404, 'not found: the endpoint serves POST /sql');
  if (req.method !== 'POST') throw new HttpError(405, 'method not allowed: use POST');
  if (req.headers.origin !== undefined) throw new HttpError(403, 'browser requests are refused');
  if (!tokenMatches(req.headers.authorization, token)) throw new HttpError(401, 'missing or wrong bearer token');
  if (!req.headers['neon-connection-string'] || !flag(req, 'Neon-Raw-Text-Output')) {
    throw new HttpError(400, 'not a Neon driver request: Neon-Connection-String and Neon-Raw-Text-Output are required');
  }
  let json: unknown;
  try {
    json = JSON.parse(await readBody(req, MAX_BODY_BYTES));
  } catch (err) {
    if (err instanceof HttpError) throw err;
    throw new HttpError(400, 'request body is not valid JSON');
  }
  const parsed = sqlRequest.safeParse(json);
  if (!parsed.success) throw new HttpError(400, `invalid request: ${parsed.error.issues[0]?.message}`);
  const arrayMode = flag(req, 'Neon-Array-Mode');
  const body = parsed.data;
  if ('queries' in body) {
    const results = await backend.batch(body.queries, {
      isolationLevel: isolationLevel(req),
      readOnly: flag(req, 'Neon-Batch-Read-Only'),
      deferrable: flag(req, 'Neon-Batch-Deferrable'),
    });
    return { results: results.map((r) => toWire(r, arrayMode)) };
  }
  return toWire(await backend.query(body), arrayMode);
}

export async function startSqlEndpoint(options: SqlEndpointOptions): Promise<SqlEndpoint> {
  const host = options.host ?? '127.0.0.1';
  if (!LOOPBACK.has(host)) throw new Error(`the SQL endpoint listens on loopback only, not ${host}`);
  if (options.token.length < 32) throw new Error('the SQL endpoint token must be at least 32 characters');
  const token = tokenDigest(options.token);

  let requests = 0;
  const server = createServer((req, res) => {
    requests += 1;
    handle(req, options.backend, token).then(
      (body) => sendJson(res, 200, body),
      (err: unknown) => {
        if (err instanceof HttpError) return sendJson(res, err.status, { message: err.message });
        const pgError = postgresErrorBody(err);
        if (pgError) return sendJson(res, 400, pgError);
        // Anything else means the database could not be reached or failed outside SQL.
        sendJson(res, 503, { message: `database unavailable: ${(err as Error)?.message ?? String(err)}` });
      },
    );
  });
  server.keepAliveTimeout = 30_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${port}/sql`,
    port,
    requests: () => requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
