/**
 * A local stand-in for Upstash Redis's REST API over a real Redis, for `@upstash/redis` and
 * `@upstash/ratelimit`: `POST /` (one command), `POST /pipeline`, `POST /multi-exec`, bearer
 * auth, `Upstash-Encoding: base64`. It runs arbitrary Redis commands, so it binds to loopback
 * only, demands a token and refuses anything that looks like a browser.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpError, readBody, sendJson, tokenDigest, tokenMatches } from '../lib/http-server.ts';
import { RedisConnectionError, RedisReplyError, RespClient, type RespReply } from './resp.ts';

/** Upstash's own limit on a request body (the paid plans' maximum). */
const MAX_BODY_BYTES = 10 * 1024 * 1024;
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

export interface UpstashRestOptions {
  /** Defaults to redis://127.0.0.1:6379. */
  redisUrl?: string;
  /** Bearer token clients must send (the client's `token`). */
  token: string;
  /** 0 picks a free port. */
  port?: number;
}

export interface UpstashRest {
  /** The URL to give the client as `url` (UPSTASH_REDIS_REST_URL). */
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Commands that change the state of the connection they run on; every request shares one. */
const REFUSED = new Set([
  ...['AUTH', 'CLIENT', 'HELLO', 'QUIT', 'RESET', 'SELECT', 'MONITOR', 'SYNC', 'PSYNC', 'REPLCONF'],
  ...['MULTI', 'EXEC', 'DISCARD', 'WATCH', 'UNWATCH'],
  ...['SUBSCRIBE', 'PSUBSCRIBE', 'SSUBSCRIBE', 'UNSUBSCRIBE', 'PUNSUBSCRIBE', 'SUNSUBSCRIBE'],
]);
/** Commands that can wait for a long time: they get a connection of their own. */
const BLOCKING = new Set([
  'BLMOVE',
  'BLMPOP',
  'BLPOP',
  'BRPOP',
  'BRPOPLPUSH',
  'BZMPOP',
  'BZPOPMAX',
  'BZPOPMIN',
  'WAIT',
  'WAITAOF',
]);
/** Script flags only Upstash knows; Redis 7 answers "Unexpected flag in script shebang". */
const UPSTASH_ONLY_FLAGS = new Set(['allow-key-locking']);

const sha1 = (text: string) => createHash('sha1').update(text, 'utf8').digest('hex');

/**
 * The script without the flags Redis rejects, or undefined when it needs no change. An emptied
 * shebang line stays as a blank line so line numbers in Lua errors still match the original.
 */
export function redisCompatibleScript(script: string): string | undefined {
  const newline = script.indexOf('\n');
  const firstLine = newline === -1 ? script : script.slice(0, newline);
  const shebang = /^#!lua(?:\s+flags=(\S*))?\s*$/.exec(firstLine);
  if (!shebang) return undefined;
  const flags = (shebang[1] ?? '').split(',').filter(Boolean);
  const kept = flags.filter((flag) => !UPSTASH_ONLY_FLAGS.has(flag));
  if (kept.length === flags.length) return undefined;
  return (kept.length > 0 ? `#!lua flags=${kept.join(',')}` : '') + script.slice(firstLine.length);
}

/**
 * Clients name scripts by the SHA1 of the text they hold (@upstash/ratelimit ships the hashes
 * precomputed); Redis knows the rewritten text under another SHA1. This maps one to the other,
 * and an unknown SHA1 goes to Redis unchanged, which answers NOSCRIPT so the client sends EVAL.
 */
class ScriptShas {
  private readonly redisSha = new Map<string, string>();

  private rewrite(script: string): string {
    const compatible = redisCompatibleScript(script);
    if (compatible === undefined) return script;
    this.redisSha.set(sha1(script), sha1(compatible));
    return compatible;
  }

  private lookup(sha: string): string {
    return this.redisSha.get(sha.toLowerCase()) ?? sha;
  }

  /** The command as Redis should get it, and how to turn Redis's reply into the client's. */
  prepare(command: string[]): { command: string[]; reply?: (reply: RespReply) => RespReply } {
    const [name = '', first, ...rest] = command;
    const upper = name.toUpperCase();
    if (first === undefined) return { command };
    if (upper === 'EVAL' || upper === 'EVAL_RO') return { command: [name, this.rewrite(first), ...rest] };
    if (upper === 'EVALSHA' || upper === 'EVALSHA_RO') return { command: [name, this.lookup(first), ...rest] };
    if (upper !== 'SCRIPT') return { command };
    const sub = first.toUpperCase();
    const [script] = rest;
    if (sub === 'LOAD' && script !== undefined) {
      const compatible = this.rewrite(script);
      if (compatible === script) return { command };
      // Answer with the SHA1 the client computed, which EVALSHA will then map.
      const clientSha = Buffer.from(sha1(script));
      return { command: [name, first, compatible], reply: (r) => (r instanceof RedisReplyError ? r : clientSha) };
    }
    if (sub === 'EXISTS') return { command: [name, first, ...rest.map((sha) => this.lookup(sha))] };
    if (sub === 'FLUSH') this.redisSha.clear();
    return { command };
  }
}

/** A reply as JSON; with base64, every string except a plain OK is base64, as the client decodes. */
function toJson(reply: RespReply, base64: boolean): unknown {
  if (reply === null || typeof reply === 'number') return reply;
  if (Array.isArray(reply)) return reply.map((item) => toJson(item, base64));
  if (Buffer.isBuffer(reply)) return reply.toString(base64 ? 'base64' : 'utf8');
  const text = reply instanceof RedisReplyError ? reply.message : reply;
  return base64 && text !== 'OK' ? Buffer.from(text, 'utf8').toString('base64') : text;
}

function entry(reply: RespReply | undefined, base64: boolean): { result: unknown } | { error: string } {
  if (reply instanceof RedisReplyError) return { error: reply.message };
  return { result: toJson(reply ?? null, base64) };
}

function parseCommand(value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new HttpError(400, 'ERR a command is a non-empty JSON array, like ["SET","key","value"]');
  }
  const command = value.map((arg) => {
    // The client sends strings, numbers and booleans (objects arrive already JSON-encoded).
    if (typeof arg === 'string') return arg;
    if (typeof arg === 'number' || typeof arg === 'boolean') return String(arg);
    throw new HttpError(400, `ERR command arguments must be strings or numbers, not ${JSON.stringify(arg)}`);
  });
  const name = (command[0] ?? '').toUpperCase();
  if (REFUSED.has(name)) throw new HttpError(400, `ERR command not supported over REST: ${name}`);
  return command;
}

function isBlocking(command: string[]): boolean {
  const name = (command[0] ?? '').toUpperCase();
  if (BLOCKING.has(name)) return true;
  return (name === 'XREAD' || name === 'XREADGROUP') && command.some((arg) => arg.toUpperCase() === 'BLOCK');
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const text = await readBody(req, MAX_BODY_BYTES, 'ERR ');
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, 'ERR request body is not valid JSON');
  }
}

interface Context {
  redis: RespClient;
  scripts: ScriptShas;
  token: Buffer;
}

/** Runs the commands back to back (on a connection of their own if any may block). */
async function run(context: Context, commands: string[][], transaction = false): Promise<RespReply[]> {
  const prepared = commands.map((command) => context.scripts.prepare(command));
  const wire = prepared.map((p) => p.command);
  const batch = transaction ? [['MULTI'], ...wire, ['EXEC']] : wire;
  const replies = await (commands.some(isBlocking) ? context.redis.sendAlone(batch) : context.redis.send(batch));
  const fix = (results: RespReply[]) => results.map((reply, i) => prepared[i]?.reply?.(reply) ?? reply);
  if (!transaction) return fix(replies);
  const exec = replies.at(-1);
  if (Array.isArray(exec)) return fix(exec);
  // A command refused while queueing (EXECABORT) discards the whole transaction.
  const queueError = replies.slice(1, -1).find((reply) => reply instanceof RedisReplyError);
  const reason = exec instanceof RedisReplyError ? exec.message : 'ERR transaction aborted';
  throw new HttpError(400, queueError ? `${reason} ${queueError.message}` : reason);
}

async function handle(req: IncomingMessage, context: Context): Promise<{ status: number; body: unknown }> {
  const path = new URL(req.url ?? '/', 'http://localhost').pathname.replace(/\/+$/, '') || '/';
  if (path !== '/' && path !== '/pipeline' && path !== '/multi-exec') {
    throw new HttpError(404, 'ERR not found: POST a JSON command to /, /pipeline or /multi-exec');
  }
  if (req.method !== 'POST') throw new HttpError(405, 'ERR method not allowed: use POST');
  if (req.headers.origin !== undefined) throw new HttpError(403, 'ERR browser requests are refused');
  if (!tokenMatches(req.headers.authorization, context.token)) {
    throw new HttpError(401, 'Unauthorized: missing or wrong bearer token');
  }
  const base64 = String(req.headers['upstash-encoding'] ?? '').toLowerCase() === 'base64';
  const body = await readJson(req);

  if (path === '/') {
    const [reply] = await run(context, [parseCommand(body)]);
    // Upstash answers a failed command with 400; the client turns any non-2xx into a rejection.
    if (reply instanceof RedisReplyError) return { status: 400, body: { error: reply.message } };
    return { status: 200, body: { result: toJson(reply ?? null, base64) } };
  }
  if (!Array.isArray(body) || body.length === 0) {
    throw new HttpError(400, 'ERR a pipeline or transaction is a non-empty JSON array of commands');
  }
  const commands = body.map(parseCommand);
  if (path === '/pipeline') {
    // Not atomic on Upstash either; each command has its own result or error.
    return { status: 200, body: (await run(context, commands)).map((reply) => entry(reply, base64)) };
  }

  // Written back to back on one connection, so MULTI ... EXEC encloses exactly these commands.
  return { status: 200, body: (await run(context, commands, true)).map((reply) => entry(reply, base64)) };
}

export async function startUpstashRest(options: UpstashRestOptions): Promise<UpstashRest> {
  if (options.token.length < 32) throw new Error('the Upstash REST token must be at least 32 characters');
  const redis = new RespClient(options.redisUrl ?? DEFAULT_REDIS_URL);
  const context: Context = { redis, scripts: new ScriptShas(), token: tokenDigest(options.token) };

  const server = createServer((req, res) => {
    handle(req, context).then(
      ({ status, body }) => sendJson(res, status, body),
      (err: unknown) => {
        if (err instanceof HttpError) return sendJson(res, err.status, { error: err.message });
        // A JSON error body with a non-2xx status makes the client reject at once, without retrying.
        if (err instanceof RedisConnectionError)
          return sendJson(res, 503, { error: `ERR redis unavailable: ${err.message}` });
        sendJson(res, 500, { error: `ERR ${(err as Error)?.message ?? String(err)}` });
      },
    );
  });
  server.keepAliveTimeout = 30_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await redis.close();
    },
  };
}
