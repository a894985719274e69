/**
 * The local Upstash REST server, driven by the real @upstash/redis and @upstash/ratelimit clients
 * over a private redis-server; and the client options the Worker needs to fail fast.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Ratelimit } from '@upstash/ratelimit';
import { Redis, type RedisConfigNodejs } from '@upstash/redis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { RedisReplyError, RespConnection } from '../../cli/upstash-rest/resp.ts';
import { startUpstashRest, type UpstashRest } from '../../cli/upstash-rest/server.ts';
import { startHangingServer, startRedis, type TestRedis, unusedPort } from '../support/redis.ts';

const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');
const unique = (label: string) => `${label}:${randomBytes(6).toString('hex')}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits for the next window when this one ends soon, so a test's requests share one window. */
async function awayFromWindowEdge(windowMs: number, marginMs = 3_000) {
  const left = windowMs - (Date.now() % windowMs);
  if (left < marginMs) await sleep(left + 50);
}

/** How long a promise takes to settle, and how. */
async function settle(promise: Promise<unknown>) {
  const started = Date.now();
  try {
    return { value: await promise, error: undefined, ms: Date.now() - started };
  } catch (error) {
    return { value: undefined, error: error as Error, ms: Date.now() - started };
  }
}

interface Exchange {
  path: string;
  commands: string[][];
  response: unknown;
}

/** Records every request the clients make (and its JSON answer) while `fn` runs. */
async function recordRequests(fn: () => Promise<void>): Promise<Exchange[]> {
  const realFetch = globalThis.fetch;
  const seen: Exchange[] = [];
  const spy = vi.spyOn(globalThis, 'fetch').mockImplementation(async (input, init) => {
    const response = await realFetch(input, init);
    const body = JSON.parse(String(init?.body)) as unknown[];
    seen.push({
      path: new URL(String(input)).pathname,
      commands: (Array.isArray(body[0]) ? body : [body]) as string[][],
      response: await response.clone().json(),
    });
    return response;
  });
  try {
    await fn();
  } finally {
    spy.mockRestore();
  }
  return seen;
}

describe('Upstash REST server over redis-server', () => {
  let redisServer: TestRedis;
  let rest: UpstashRest;
  let token: string;
  let direct: RespConnection;
  let redis: Redis;

  /** A client as the Worker should build one: no retries, so failures surface at once. */
  const client = (config: Partial<RedisConfigNodejs> = {}) =>
    new Redis({ url: rest.url, token, retry: { retries: 0 }, enableTelemetry: false, ...config });

  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${rest.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, ...headers },
      body: JSON.stringify(body),
    });

  beforeAll(async () => {
    redisServer = await startRedis();
    token = randomBytes(32).toString('base64url');
    rest = await startUpstashRest({ redisUrl: redisServer.url, token });
    direct = await RespConnection.open({ host: '127.0.0.1', port: redisServer.port });
    redis = client();
  });

  afterAll(async () => {
    direct?.close();
    await rest?.close();
    await redisServer?.stop();
  });

  describe('commands', () => {
    it('round-trips unicode and binary-ish strings byte for byte', async () => {
      const values = [
        'héllo wörld ✓ 🚀 日本語',
        '\u0000\u0001\u0002\u007f\u0080\u00ff tab\tnl\n',
        'OK',
        'UE9ORw==',
        '',
      ];
      for (const value of values) {
        const key = unique('str');
        expect(await redis.set(key, value)).toBe('OK');
        expect(await redis.get<string>(key)).toBe(value);
        // What Redis stored is the UTF-8 of the string, not some re-encoding of it.
        expect(await direct.command('GET', key)).toEqual(Buffer.from(value, 'utf8'));
      }
    });

    it('decodes simple strings, integers, nulls and nested arrays', async () => {
      expect(await redis.ping()).toBe('PONG');
      const key = unique('hash');
      await redis.hset(key, { a: 'x', b: '日本' });
      expect(await redis.hgetall(key)).toEqual({ a: 'x', b: '日本' });
      expect(await redis.get(unique('missing'))).toBeNull();
      expect(await redis.eval('return {1, "two", {"three", 4}, false}', [], [])).toEqual([
        1,
        'two',
        ['three', 4],
        null,
      ]);
      expect(await redis.type(key)).toBe('hash');
    });

    it('round-trips JSON values the client serializes', async () => {
      const key = unique('json');
      await redis.set(key, { name: 'ünï', list: [1, 2, 3] });
      expect(await redis.get(key)).toEqual({ name: 'ünï', list: [1, 2, 3] });
    });

    it('increments, and rejects a command Redis refuses with its error', async () => {
      const key = unique('counter');
      expect(await redis.incr(key)).toBe(1);
      expect(await redis.incrby(key, 41)).toBe(42);
      await redis.set(key, 'not a number');
      await expect(redis.incr(key)).rejects.toThrow(/ERR value is not an integer/);
    });

    it('answers a failed command with HTTP 400 and {error}, as Upstash does', async () => {
      const res = await post('/', ['GET']);
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ error: "ERR wrong number of arguments for 'get' command" });
    });

    it('refuses commands that would change the shared connection', async () => {
      for (const command of [['MULTI'], ['SELECT', '1'], ['SUBSCRIBE', 'x'], ['CLIENT', 'REPLY', 'OFF']]) {
        const res = await post('/', command);
        expect(res.status).toBe(400);
        expect(((await res.json()) as { error: string }).error).toMatch(/not supported over REST/);
      }
      expect(await redis.ping()).toBe('PONG');
    });

    it('runs a blocking command on its own connection without holding up others', async () => {
      const list = unique('list');
      const blocked = redis.exec(['BLPOP', list, '5']);
      await sleep(100);
      const started = Date.now();
      expect(await redis.set(unique('k'), 'v')).toBe('OK');
      expect(Date.now() - started).toBeLessThan(1_000);
      await redis.rpush(list, 'item');
      expect(await blocked).toEqual([list, 'item']);
    });
  });

  describe('HTTP surface', () => {
    it('rejects a wrong token in the client and with 401', async () => {
      const wrong = client({ token: randomBytes(32).toString('base64url') });
      await expect(wrong.get('anything')).rejects.toThrow(/Unauthorized/);
      const res = await fetch(rest.url, { method: 'POST', body: '["PING"]' });
      expect(res.status).toBe(401);
    });

    it('answers other methods, paths and browsers with errors', async () => {
      expect((await fetch(rest.url, { headers: { authorization: `Bearer ${token}` } })).status).toBe(405);
      expect((await post('/get/foo', ['PING'])).status).toBe(404);
      expect((await post('/', ['PING'], { origin: 'https://example.com' })).status).toBe(403);
      expect((await post('/', { not: 'an array' })).status).toBe(400);
      const res = await fetch(rest.url, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: '[' });
      expect(res.status).toBe(400);
    });

    it('encodes results as base64 only when asked', async () => {
      const key = unique('enc');
      await redis.set(key, 'héllo');
      expect(await (await post('/', ['GET', key])).json()).toEqual({ result: 'héllo' });
      expect(await (await post('/', ['GET', key], { 'upstash-encoding': 'base64' })).json()).toEqual({
        result: Buffer.from('héllo').toString('base64'),
      });
      expect(await (await post('/', ['SET', key, 'x'], { 'upstash-encoding': 'base64' })).json()).toEqual({
        result: 'OK',
      });
    });
  });

  describe('pipelines and transactions', () => {
    it('runs a pipeline in order with a result or an error per command', async () => {
      const key = unique('p');
      const results = await redis.pipeline().set(key, 1).incr(key).get(key).exec();
      expect(results).toEqual(['OK', 2, 2]);
      const mixed = await redis.pipeline().set(key, 'text').incr(key).get(key).exec({ keepErrors: true });
      expect(mixed[0]).toEqual({ result: 'OK', error: undefined });
      expect(mixed[1]?.error).toMatch(/ERR value is not an integer/);
      expect(mixed[2]).toEqual({ result: 'text', error: undefined });
    });

    it('runs a transaction as a unit: nothing else runs between its commands', async () => {
      const key = unique('tx');
      const other = client({ enableAutoPipelining: false });
      const transactions = Array.from({ length: 50 }, () => redis.multi().incr(key).incr(key).incr(key).exec());
      const singles = Array.from({ length: 50 }, () => other.incr(key));
      const results = (await Promise.all(transactions)) as number[][];
      await Promise.all(singles);
      for (const [a, b, c] of results) expect([b, c]).toEqual([(a ?? 0) + 1, (a ?? 0) + 2]);
      expect(await redis.get(key)).toBe(200);
    });

    it('discards the whole transaction when a command is refused while queueing', async () => {
      const key = unique('abort');
      await redis.set(key, 'before');
      const res = await post('/multi-exec', [['SET', key, 'after'], ['GET']]);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(/^EXECABORT .*wrong number of arguments/);
      expect(await redis.get(key)).toBe('before');
    });

    it('keeps the other effects of a transaction when one command fails at run time, like Redis', async () => {
      const key = unique('partial');
      const other = unique('partial');
      await expect(redis.multi().set(key, 'text').incr(key).set(other, 'done').exec()).rejects.toThrow(
        /Command 2 \[ incr \] failed/,
      );
      expect(await redis.get(other)).toBe('done');
    });
  });

  describe('scripts', () => {
    const upstashScript = '#!lua flags=allow-key-locking\nreturn tonumber(ARGV[1]) * 2';

    it('strips the Upstash-only shebang flag that Redis itself refuses', async () => {
      const refused = await direct.command('EVAL', upstashScript, '0', '21');
      expect(refused).toBeInstanceOf(RedisReplyError);
      expect((refused as RedisReplyError).message).toMatch(/Unexpected flag in script shebang/);
      expect(await redis.eval(upstashScript, [], ['21'])).toBe(42);
    });

    it('answers SCRIPT LOAD and EVALSHA with the SHA1 of the text the client sent', async () => {
      const script = `${upstashScript} + 1 -- ${randomBytes(4).toString('hex')}`;
      const sha = await redis.scriptLoad(script);
      expect(sha).toBe(sha1(script));
      expect(await redis.evalsha(sha, [], ['20'])).toBe(41);
      expect(await redis.scriptExists(sha, sha1('never loaded'))).toEqual([1, 0]);
      // Redis itself only knows the stripped text.
      expect(await direct.command('SCRIPT', 'EXISTS', sha)).toEqual([0]);
    });

    it('answers NOSCRIPT for an unknown SHA1 exactly as Redis does', async () => {
      await expect(redis.evalsha(sha1(`return ${Date.now()}`), [], [])).rejects.toThrow(
        'NOSCRIPT No matching script. Please use EVAL.',
      );
    });

    it('lets ratelimit fall back from EVALSHA to EVAL once, then use EVALSHA', async () => {
      await direct.command('SCRIPT', 'FLUSH');
      const limiter = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '60 s'), prefix: unique('rl-sha') });
      const first = await recordRequests(async () => {
        expect((await limiter.limit('user')).success).toBe(true);
      });
      const firstCommands = first.flatMap((exchange) => exchange.commands);
      expect(firstCommands.map((command) => command[0])).toEqual(['evalsha', 'eval']);
      expect(JSON.stringify(first[0]?.response)).toContain('NOSCRIPT');
      const [evalsha, evalCommand] = firstCommands;
      // The client names the script by the SHA1 of the original text, shebang included.
      expect(evalCommand?.[1]).toMatch(/^#!lua flags=allow-key-locking\n/);
      expect(evalsha?.[1]).toBe(sha1(evalCommand?.[1] ?? ''));

      const second = await recordRequests(async () => {
        expect((await limiter.limit('user')).remaining).toBe(8);
      });
      expect(second.flatMap((exchange) => exchange.commands).map((command) => command[0])).toEqual(['evalsha']);
    });
  });

  describe('ratelimit', () => {
    it('fixedWindow(5, 60 s) admits exactly 5 sequential requests and refuses the 6th', async () => {
      await awayFromWindowEdge(60_000);
      const limiter = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(5, '60 s'), prefix: unique('rl-fixed') });
      const before = Date.now();
      const results = [];
      for (let i = 0; i < 6; i++) results.push(await limiter.limit('client-a'));
      expect(results.map((r) => r.success)).toEqual([true, true, true, true, true, false]);
      expect(results.map((r) => r.remaining)).toEqual([4, 3, 2, 1, 0, 0]);
      const refused = results[5];
      expect(refused?.limit).toBe(5);
      expect(refused?.reason).toBeUndefined();
      // Reset is the end of the current fixed window: within the next 60 s, on a window boundary.
      expect(refused?.reset).toBeGreaterThan(before);
      expect(refused?.reset).toBeLessThanOrEqual(before + 60_000);
      expect((refused?.reset ?? 1) % 60_000).toBe(0);
      // Another identifier has its own budget.
      expect((await limiter.limit('client-b')).success).toBe(true);

      expect(await limiter.getRemaining('client-a')).toMatchObject({ remaining: 0, limit: 5 });
      await limiter.resetUsedTokens('client-a');
      expect(await limiter.getRemaining('client-a')).toMatchObject({ remaining: 5, limit: 5 });
      expect((await limiter.limit('client-a')).success).toBe(true);
    });

    it('slidingWindow(5, 60 s) admits exactly 5 sequential requests and refuses the 6th', async () => {
      await awayFromWindowEdge(60_000);
      const limiter = new Ratelimit({
        redis,
        limiter: Ratelimit.slidingWindow(5, '60 s'),
        prefix: unique('rl-sliding'),
        ephemeralCache: false,
      });
      const before = Date.now();
      const results = [];
      for (let i = 0; i < 7; i++) results.push(await limiter.limit('client-a'));
      expect(results.map((r) => r.success)).toEqual([true, true, true, true, true, false, false]);
      expect(results.slice(0, 5).map((r) => r.remaining)).toEqual([4, 3, 2, 1, 0]);
      expect(results[5]?.reset).toBeGreaterThan(before);
      expect(results[5]?.reset).toBeLessThanOrEqual(before + 60_000);
      expect(await limiter.getRemaining('client-a')).toMatchObject({ remaining: 0, limit: 5 });
      await limiter.resetUsedTokens('client-a');
      expect((await limiter.limit('client-a')).success).toBe(true);
    });

    it('measures over-admission of fixedWindow(20, 60 s) under 1,000 concurrent calls', async () => {
      await awayFromWindowEdge(60_000, 10_000);
      const limiter = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(20, '60 s'), prefix: unique('rl-burst') });
      const started = Date.now();
      const results = await Promise.all(Array.from({ length: 1_000 }, () => limiter.limit('hot')));
      const elapsed = Date.now() - started;
      const admitted = results.filter((r) => r.success);
      const byRedis = admitted.filter((r) => r.reason === undefined).length;
      const byTimeout = admitted.filter((r) => r.reason === 'timeout').length;
      console.log(
        `fixedWindow(20, 60 s), 1,000 concurrent limit() for one identifier: admitted ${admitted.length} ` +
          `(${byRedis} by Redis, ${byTimeout} by the 5 s timeout), over-admission ${admitted.length - 20}, ${elapsed} ms`,
      );
      // INCRBY inside one script is atomic: Redis itself never admits more than the limit.
      expect(byRedis).toBe(20);
      expect(await limiter.getRemaining('hot')).toMatchObject({ remaining: 0 });
    });
  });
});

describe('when Redis goes away', () => {
  let redisServer: TestRedis;
  let rest: UpstashRest;
  const token = randomBytes(32).toString('base64url');

  beforeAll(async () => {
    redisServer = await startRedis();
    rest = await startUpstashRest({ redisUrl: redisServer.url, token });
  });

  afterAll(async () => {
    await rest?.close();
    await redisServer?.stop();
  });

  it('makes the client and ratelimit reject within a few seconds, and recovers when Redis is back', async () => {
    const redis = new Redis({ url: rest.url, token, retry: { retries: 0 }, enableTelemetry: false });
    const limiter = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(5, '60 s'), prefix: unique('rl-down') });
    expect(await redis.set('k', 'v')).toBe('OK');
    expect((await limiter.limit('x')).success).toBe(true);

    await redisServer.stop();
    const get = await settle(redis.get('k'));
    expect(get.error?.message).toMatch(/redis unavailable/);
    expect(get.ms).toBeLessThan(3_000);
    // limit() rejects (it does not resolve as a "timeout" success after 5 s).
    const limited = await settle(limiter.limit('x'));
    expect(limited.error?.message).toMatch(/redis unavailable/);
    expect(limited.ms).toBeLessThan(3_000);
    const raw = await fetch(rest.url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: '["PING"]',
    });
    expect(raw.status).toBe(503);

    redisServer = await startRedis({ port: redisServer.port });
    expect(await redis.set('k', 'again')).toBe('OK');
    expect(await redis.get('k')).toBe('again');
  });
});

describe('@upstash/redis options for failing fast (facts the Worker relies on)', () => {
  const token = randomBytes(32).toString('base64url');

  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('retries network errors unless retry is { retries: 0 } (retry: false still tries twice)', async () => {
    const url = `http://127.0.0.1:${await unusedPort()}`;
    const calls = async (retry: RedisConfigNodejs['retry']) => {
      const seen = { count: 0 };
      const realFetch = globalThis.fetch;
      vi.spyOn(globalThis, 'fetch').mockImplementation((input, init) => {
        seen.count += 1;
        return realFetch(input, init);
      });
      const result = await settle(new Redis({ url, token, retry, enableTelemetry: false }).get('k'));
      vi.restoreAllMocks();
      expect(result.error).toBeDefined();
      return seen.count;
    };
    expect(await calls({ retries: 0 })).toBe(1);
    expect(await calls(false)).toBe(2);
    expect(await calls({ retries: 2, backoff: () => 0 })).toBe(3);
  });

  it('rejects a hanging request with signal: () => AbortSignal.timeout(ms); a fixed signal misleads', async () => {
    const hang = await startHangingServer();
    try {
      const perRequest = new Redis({
        url: hang.url,
        token,
        retry: { retries: 0 },
        enableTelemetry: false,
        signal: () => AbortSignal.timeout(300),
      });
      const timedOut = await settle(perRequest.get('k'));
      expect(timedOut.error?.name).toBe('TimeoutError');
      expect(timedOut.ms).toBeLessThan(2_000);

      // The trap: with one AbortSignal object the client turns the abort into a null result (into
      // "res.map is not a function" with auto-pipelining), and once it fired every later call "fails".
      const fixed = new Redis({
        url: hang.url,
        token,
        retry: { retries: 0 },
        enableTelemetry: false,
        enableAutoPipelining: false,
        signal: AbortSignal.timeout(300),
      });
      const swallowed = await settle(fixed.get('k'));
      expect(swallowed.error).toBeUndefined();
      expect(swallowed.value).toBeNull();
      const later = await settle(fixed.get('k'));
      expect(later.value).toBeNull();
      expect(later.ms).toBeLessThan(100);
    } finally {
      await hang.close();
    }
  });
});
