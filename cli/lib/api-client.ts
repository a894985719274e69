/**
 * How operator commands reach a running Worker's admin API. The bearer token comes from MCE_TOKEN or
 * .dev.vars and only ever goes into the Authorization header: no message or result here carries it.
 */
import { devVarsPath, readDevVars } from './dev-vars.ts';
import { CliError } from './output.ts';

/** Where `mce start` runs the Worker unless told otherwise (its --port / PORT). */
export const DEFAULT_WORKER_PORT = 8787;
const TIMEOUT_MS = 60_000;

export const apiTargetHelp = `Worker: --url, else MCE_URL, else http://127.0.0.1:${DEFAULT_WORKER_PORT} (--port / PORT as for mce start).
Token: MCE_TOKEN (a platform admin's), else LOCAL_AUTH_TOKEN from .dev.vars for a local Worker.`;

export interface ApiTargetOptions {
  url?: string;
  port?: number;
}

export interface ApiClient {
  /** The Worker's base URL, safe to print. */
  readonly url: string;
  get<T>(path: string): Promise<T>;
  post<T>(path: string, body: unknown): Promise<T>;
  /** A raw (non-JSON) download, such as a backup object. */
  getBytes(path: string): Promise<Uint8Array>;
}

/** An error response: the API's message, with its code and request id (what to quote when reporting a 500). */
export class ApiError extends CliError {
  readonly status: number;
  readonly code: string;
  readonly requestId?: string;

  constructor(status: number, code: string, message: string, requestId?: string) {
    super(`${message} (${code}, HTTP ${status}${requestId ? `, request ${requestId}` : ''})`);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
}

interface ErrorResponse {
  error?: { code?: string; message?: string; details?: { issues?: { path?: string; message?: string }[] } };
  request_id?: string;
}

function isLoopback(url: URL): boolean {
  return url.hostname === 'localhost' || url.hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(url.hostname);
}

function baseUrl(options: ApiTargetOptions): URL {
  const port = options.port ?? (Number(process.env.PORT) || DEFAULT_WORKER_PORT);
  const raw = options.url || process.env.MCE_URL || `http://127.0.0.1:${port}`;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CliError(`--url / MCE_URL must be an http(s) URL, not "${raw}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CliError(`--url / MCE_URL must be an http(s) URL, not "${raw}"`);
  }
  // fetch refuses such URLs anyway, and they would end up in messages that print the URL.
  if (url.username || url.password) throw new CliError('--url / MCE_URL must not hold credentials; use MCE_TOKEN');
  // A platform admin's token in clear text across a network is worse than refusing to run.
  if (url.protocol === 'http:' && !isLoopback(url)) {
    throw new CliError(`refusing to send the admin token over plain http to ${url.host}; use https`);
  }
  return url;
}

function bearerToken(url: URL): string {
  if (process.env.MCE_TOKEN) return process.env.MCE_TOKEN;
  // The local operator token belongs to the local Worker; it is never sent anywhere else.
  if (!isLoopback(url)) throw new CliError(`no token for ${url.origin}: set MCE_TOKEN to a platform admin's token`);
  const local = readDevVars(devVarsPath()).LOCAL_AUTH_TOKEN;
  if (!local) throw new CliError('no token: set MCE_TOKEN, or run `npm start` once to create .dev.vars');
  return local;
}

function describeIssues(body: ErrorResponse): string {
  const issues = body.error?.details?.issues;
  if (!Array.isArray(issues) || issues.length === 0) return '';
  return `: ${issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ')}`;
}

export function createApiClient(options: ApiTargetOptions): ApiClient {
  const base = baseUrl(options);
  const token = bearerToken(base);
  const root = base.href.replace(/\/+$/, '');

  /** The response once it is known to be a success; error bodies become ApiError. */
  async function send(method: string, path: string, body: unknown, accept: string, timeoutMs: number) {
    let res: Response;
    try {
      res = await fetch(`${root}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          accept,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      const why = e.name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000} s` : (e.cause?.code ?? e.message);
      throw new CliError(
        `cannot reach the Worker at ${base.origin} (${why}); is it running, and is --url / MCE_URL right?`,
      );
    }
    if (res.ok) return res;
    const text = await res.text();
    let error: ErrorResponse = {};
    try {
      error = (text ? JSON.parse(text) : {}) as ErrorResponse;
    } catch {}
    if (typeof error.error?.message === 'string') {
      throw new ApiError(
        res.status,
        error.error.code ?? 'error',
        `${error.error.message}${describeIssues(error)}`,
        error.request_id || undefined,
      );
    }
    throw new ApiError(res.status, 'http_error', `${method} ${path} failed`);
  }

  async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const text = await (await send(method, path, body, 'application/json', TIMEOUT_MS)).text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {}
    if (parsed === undefined || parsed === null) {
      throw new CliError(`the Worker at ${base.origin} answered ${method} ${path} with something other than JSON`);
    }
    return parsed as T;
  }

  return {
    url: root,
    get: (path) => request('GET', path),
    post: (path, body) => request('POST', path, body),
    // Backup objects can be large: a longer deadline than JSON calls.
    getBytes: async (path) => new Uint8Array(await (await send('GET', path, undefined, '*/*', 120_000)).arrayBuffer()),
  };
}
