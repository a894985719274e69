/**
 * Attacks on public webhook ingest (POST /api/v1/boards/{id}/webhooks/{webhook_id}): lying and
 * oversized bodies, slow senders, forged signatures, replays, spoofed client addresses, probing
 * for webhooks, odd bytes and odd requests. Every refusal is checked for its status, its error
 * code and for having stored nothing.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { api, appWith, type Call, freshIp, hmacHex, json, operatorHeaders, quiet, send } from './helpers';

afterEach(() => {
  vi.restoreAllMocks();
});

const MiB = 1_048_576;
const SECRET = 'abuse-suite-secret-0123456789';
const encoder = new TextEncoder();

/** Hex HMAC-SHA256 of the raw body, written here so the suite does not trust the product's signer. */
/** A board with one webhook; `rows()` counts what was stored, as the operator sees it. */
async function newWebhook(fields: Record<string, unknown> = {}) {
  const board = await send('POST', '/api/v1/boards', { name: 'webhook abuse' });
  expect(board.status).toBe(201);
  const boardId: string = board.body.id;
  const hook = await send('POST', `/api/v1/boards/${boardId}/webhooks`, { description: 'abuse target', ...fields });
  expect(hook.status).toBe(201);
  const id: string = hook.body.id;
  const base = `/api/v1/boards/${boardId}/webhooks/${id}`;
  return {
    boardId,
    id,
    path: hook.body.endpoint_path as string,
    async rows() {
      const list = await send('GET', `${base}/payloads`);
      expect(list.status).toBe(200);
      return list.body.total as number;
    },
    async payload(payloadId: string) {
      const one = await send('GET', `${base}/payloads/${payloadId}`);
      expect(one.status).toBe(200);
      return one.body;
    },
  };
}

/** One delivery from `ip` (a fresh address unless given). Streams need `duplex: 'half'`. */
function deliver(
  path: string,
  body?: BodyInit | null,
  headers: Record<string, string> = {},
  ip = freshIp(),
  call: Call = api,
) {
  const init = { method: 'POST', body, headers: { 'CF-Connecting-IP': ip, ...headers }, duplex: 'half' };
  return call(path, init as RequestInit);
}

async function expectError(res: Response, status: number, code: string) {
  expect(res.status).toBe(status);
  expect((await json(res)).error.code).toBe(code);
}

async function expectAccepted(res: Response, status: 200 | 202 = 202) {
  expect(res.status).toBe(status);
  const body = await json(res);
  expect(body).toMatchObject({ ok: true, duplicate: status === 200 });
  return body.payload_id as string;
}

/** The bytes in chunks, as a stream with no length known up front (a chunked upload). */
function streamOf(data: Uint8Array, chunk = 65_536): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= data.length) return controller.close();
      controller.enqueue(data.slice(offset, offset + chunk));
      offset += chunk;
    },
  });
}

const filled = (length: number, byte = 0x61) => new Uint8Array(length).fill(byte);

describe('oversized bodies', () => {
  const app = appWith({});

  it('counts streamed bytes, so a small Content-Length does not smuggle in more than 1 MiB', async () => {
    // In-process, the lying header reaches the app as sent (workerd keeps it on the Request).
    const hook = await newWebhook();
    const res = await deliver(hook.path, filled(MiB + 10), { 'Content-Length': '10' }, freshIp(), app);
    await expectError(res, 413, 'payload_too_large');
    expect(await hook.rows()).toBe(0);
  });

  it('refuses a declared Content-Length above 1 MiB up front, whatever follows', async () => {
    const hook = await newWebhook();
    const res = await deliver(hook.path, '{}', { 'Content-Length': String(10 * MiB) }, freshIp(), app);
    await expectError(res, 413, 'payload_too_large');
    expect(await hook.rows()).toBe(0);
  });

  it('refuses a chunked body of 1 MiB + 1 byte and stores one of exactly 1 MiB', async () => {
    const hook = await newWebhook();
    await expectError(await deliver(hook.path, streamOf(filled(MiB + 1))), 413, 'payload_too_large');
    expect(await hook.rows()).toBe(0);
    const id = await expectAccepted(await deliver(hook.path, streamOf(filled(MiB))));
    expect((await hook.payload(id)).byte_size).toBe(MiB);
  });

  it('refuses 1 MiB + 1 byte with an honest Content-Length', async () => {
    const hook = await newWebhook();
    await expectError(await deliver(hook.path, filled(MiB + 1)), 413, 'payload_too_large');
    expect(await hook.rows()).toBe(0);
  });

  it('checks the size before the signature: a signed 1 MiB + 1 body is still 413', async () => {
    const hook = await newWebhook({ secret: SECRET });
    const body = filled(MiB + 1);
    const res = await deliver(hook.path, streamOf(body), { 'X-Webhook-Signature': await hmacHex(SECRET, body) });
    await expectError(res, 413, 'payload_too_large');
    expect(await hook.rows()).toBe(0);
  });
});

describe('slow senders', () => {
  it('answers 408 when the body stalls past WEBHOOK_BODY_TIMEOUT_MS and stores nothing', async () => {
    const hook = await newWebhook();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let cancelled = false;
    const stalled = new ReadableStream<Uint8Array>({
      start: (controller) => controller.enqueue(encoder.encode('{"partial":')),
      // Stalls for 3 s (ten times the deadline) before finishing the document.
      pull: (controller) =>
        new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            controller.enqueue(encoder.encode('1}'));
            controller.close();
            resolve();
          }, 3_000);
        }),
      cancel: () => {
        cancelled = true;
        if (timer !== undefined) clearTimeout(timer);
      },
    });
    const started = Date.now();
    const app = appWith({ WEBHOOK_BODY_TIMEOUT_MS: '300' });
    await expectError(await deliver(hook.path, stalled, {}, freshIp(), app), 408, 'request_timeout');
    expect(Date.now() - started).toBeLessThan(2_500);
    expect(cancelled).toBe(true);
    expect(await hook.rows()).toBe(0);
  });
});

describe('signatures', () => {
  const body = '{"action":"opened","number":42}';

  it('refuses a missing or empty signature with signature_missing', async () => {
    const hook = await newWebhook({ secret: SECRET });
    await expectError(await deliver(hook.path, body), 403, 'signature_missing');
    await expectError(await deliver(hook.path, body, { 'X-Hub-Signature-256': '' }), 403, 'signature_missing');
    expect(await hook.rows()).toBe(0);
  });

  it('refuses wrong and malformed signatures with signature_invalid', async () => {
    const hook = await newWebhook({ secret: SECRET });
    const good = await hmacHex(SECRET, body);
    const bad = [
      `sha256=${'0'.repeat(64)}`, // well-formed, wrong
      good.slice(0, 63), // one character short
      `${good}0`, // one character long
      `sha256=${'zz'.repeat(32)}`, // not hex
      `sha1=${good.slice(0, 40)}`, // another algorithm
      `sha1=${good}`, // right MAC, wrong prefix
      `sha512=${good}`,
      await hmacHex('another-secret-0123456789', body), // another secret
      await hmacHex(SECRET, `${body} `), // valid for a different body
      'sha256=',
    ];
    const ip = freshIp();
    for (const signature of bad) {
      const res = await deliver(hook.path, body, { 'X-Hub-Signature-256': signature }, ip);
      await expectError(res, 403, 'signature_invalid');
    }
    expect(await hook.rows()).toBe(0);
  });

  it('refuses a body changed by one byte after signing', async () => {
    const hook = await newWebhook({ secret: SECRET });
    const signature = `sha256=${await hmacHex(SECRET, body)}`;
    const tampered = body.replace('42', '43');
    const res = await deliver(hook.path, tampered, { 'X-Hub-Signature-256': signature });
    await expectError(res, 403, 'signature_invalid');
    expect(await hook.rows()).toBe(0);
  });

  it('accepts GitHub style sha256=<hex> in X-Hub-Signature-256 and bare hex in X-Webhook-Signature', async () => {
    const hook = await newWebhook({ secret: SECRET });
    const hex = await hmacHex(SECRET, body);
    await expectAccepted(await deliver(hook.path, body, { 'X-Hub-Signature-256': `sha256=${hex}` }));
    await expectAccepted(await deliver(hook.path, body, { 'X-Webhook-Signature': hex }));
    await expectAccepted(await deliver(hook.path, body, { 'X-Webhook-Signature': `SHA256=${hex.toUpperCase()}` }));
    expect(await hook.rows()).toBe(3);
  });

  it('accepts the signature from a custom signature_header', async () => {
    const hook = await newWebhook({ secret: SECRET, signature_header: 'X-Acme-Signature' });
    const hex = await hmacHex(SECRET, body);
    await expectAccepted(await deliver(hook.path, body, { 'X-Acme-Signature': hex }));
    const forged = { 'X-Acme-Signature': hex.replace(/^./, (c) => (c === '0' ? '1' : '0')) };
    await expectError(await deliver(hook.path, body, forged), 403, 'signature_invalid');
    expect(await hook.rows()).toBe(1);
  });

  it('checks the signature before the delivery id, so a replayed id with a bad signature is 403', async () => {
    const hook = await newWebhook({ secret: SECRET });
    const delivery = { 'X-GitHub-Delivery': crypto.randomUUID() };
    const signed = { ...delivery, 'X-Webhook-Signature': await hmacHex(SECRET, body) };
    await expectAccepted(await deliver(hook.path, body, signed));
    await expectError(await deliver(hook.path, body, delivery), 403, 'signature_missing');
    expect(await hook.rows()).toBe(1);
  });
});

describe('replayed deliveries', () => {
  it.each(['X-GitHub-Delivery', 'Idempotency-Key', 'X-Webhook-Id'])(
    'stores a repeated %s once and answers the repeat 200 with the same payload id',
    async (header) => {
      const hook = await newWebhook();
      const headers = { [header]: `delivery-${crypto.randomUUID()}` };
      const first = await expectAccepted(await deliver(hook.path, '{"n":1}', headers));
      const again = await expectAccepted(await deliver(hook.path, '{"n":2}', headers), 200);
      expect(again).toBe(first);
      expect(await hook.rows()).toBe(1);
    },
  );

  it('stores one row for 20 concurrent posts with one delivery id', async () => {
    const hook = await newWebhook();
    const headers = { 'X-GitHub-Delivery': crypto.randomUUID() };
    const ip = freshIp();
    const responses = await Promise.all(Array.from({ length: 20 }, () => deliver(hook.path, '{}', headers, ip)));
    const bodies = await Promise.all(responses.map((r) => json(r)));
    expect(responses.filter((r) => r.status === 202)).toHaveLength(1);
    expect(responses.filter((r) => r.status === 200)).toHaveLength(19);
    expect(new Set(bodies.map((b) => b.payload_id)).size).toBe(1);
    expect(bodies.filter((b) => b.duplicate)).toHaveLength(19);
    expect(await hook.rows()).toBe(1);
  });
});

describe('rate limits per (client IP, webhook)', () => {
  it('ignores 10,000 spoofed X-Forwarded-For, X-Real-IP, True-Client-IP and Forwarded values', async () => {
    const hook = await newWebhook();
    quiet();
    const ip = freshIp();
    const statuses: number[] = [];
    let limited: Response | undefined;
    // Concurrent batches of 500 keep the pressure on without holding 10,000 responses at once.
    for (let start = 0; start < 10_000; start += 500) {
      const batch = Array.from({ length: 500 }, (_, j) => {
        const n = start + j;
        const spoof = `198.18.${(n >> 8) & 255}.${n & 255}`;
        const forged = { 'X-Forwarded-For': spoof, 'X-Real-IP': spoof, 'True-Client-IP': spoof };
        return deliver(hook.path, '{}', { ...forged, Forwarded: `for=${spoof}` }, ip);
      });
      for (const res of await Promise.all(batch)) {
        statuses.push(res.status);
        if (res.status === 429 && !limited) limited = res;
        else await res.body?.cancel();
      }
    }
    expect(statuses.filter((s) => s === 202)).toHaveLength(60);
    expect(statuses.filter((s) => s === 429)).toHaveLength(10_000 - 60);
    if (!limited) throw new Error('nothing was rate limited');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(limited.headers.get('ratelimit-limit')).toBe('60');
    await expectError(limited, 429, 'rate_limited');
    expect(await hook.rows()).toBe(60);
  }, 120_000);

  it('refuses the 61st request from one IP, but not another IP or another webhook', async () => {
    const hook = await newWebhook();
    const other = await newWebhook();
    const ip = freshIp();
    for (let i = 0; i < 60; i++) expect((await deliver(hook.path, '{}', {}, ip)).status).toBe(202);
    const res = await deliver(hook.path, '{}', {}, ip);
    const retryAfter = Number(res.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(res.headers.get('ratelimit-limit')).toBe('60');
    await expectError(res, 429, 'rate_limited');
    expect(await hook.rows()).toBe(60);
    await expectAccepted(await deliver(hook.path, '{}', {}, freshIp()));
    await expectAccepted(await deliver(other.path, '{}', {}, ip));
  });
});

describe('unknown and disabled webhooks', () => {
  it('answers 404 for an unknown webhook id, malformed ids and a webhook of another board', async () => {
    const hook = await newWebhook();
    const otherBoard = (await newWebhook()).boardId;
    const paths = [
      `/api/v1/boards/${hook.boardId}/webhooks/${crypto.randomUUID()}`,
      `/api/v1/boards/${hook.boardId}/webhooks/not-a-uuid`,
      `/api/v1/boards/${hook.boardId}/webhooks/123`,
      `/api/v1/boards/${hook.boardId}/webhooks/${hook.id.toUpperCase().replace(/.$/, 'Z')}`,
      `/api/v1/boards/${hook.boardId}/webhooks/%00`,
      `/api/v1/boards/${hook.boardId}/webhooks/${encodeURIComponent("' OR 1=1 --")}`,
      `/api/v1/boards/not-a-board/webhooks/${hook.id}`,
      `/api/v1/boards/${otherBoard}/webhooks/${hook.id}`,
    ];
    for (const path of paths) {
      const res = await deliver(path, '{}');
      expect(res.status, path).toBe(404);
      expect((await json(res)).error.code).toBe('not_found');
    }
    expect(await hook.rows()).toBe(0);
  });

  it('answers 410 webhook_disabled for a disabled webhook and stores nothing', async () => {
    const hook = await newWebhook();
    const patch = await send('PATCH', `/api/v1/boards/${hook.boardId}/webhooks/${hook.id}`, { enabled: false });
    expect(patch.status).toBe(200);
    await expectError(await deliver(hook.path, '{"late":true}'), 410, 'webhook_disabled');
    expect(await hook.rows()).toBe(0);
  });

  it('caps misses per IP: after 5 misses even a valid webhook is refused from that IP alone', async () => {
    const app = appWith({ WEBHOOK_MISS_LIMIT: '5/60' });
    const hook = await newWebhook();
    const prober = freshIp();
    const unknown = () => `/api/v1/boards/${hook.boardId}/webhooks/${crypto.randomUUID()}`;
    for (let i = 0; i < 5; i++) await expectError(await deliver(unknown(), '{}', {}, prober, app), 404, 'not_found');
    const blocked = await deliver(hook.path, '{}', {}, prober, app);
    expect(blocked.headers.get('retry-after')).not.toBeNull();
    await expectError(blocked, 429, 'rate_limited');
    expect(await hook.rows()).toBe(0);
    await expectAccepted(await deliver(hook.path, '{}', {}, freshIp(), app));
  });
});

describe('odd bodies are stored without loss', () => {
  // The second is invalid UTF-8 whose base64 ("1234") also reads as a JSON number.
  it.each([[[0xff, 0xfe, 0x00, 0x80]], [[0xd7, 0x6d, 0xf8]]])(
    'stores non-UTF-8 bytes %j as base64 that decodes to the exact bytes',
    async (sent) => {
      const hook = await newWebhook();
      const raw = new Uint8Array(sent);
      const stored = await hook.payload(await expectAccepted(await deliver(hook.path, raw)));
      expect(stored).toMatchObject({ encoding: 'base64', byte_size: raw.length });
      expect(typeof stored.payload).toBe('string');
      expect(Uint8Array.from(atob(stored.payload), (c) => c.charCodeAt(0))).toEqual(raw);
    },
  );

  it('keeps a JSON \\u0000 escape (which jsonb refuses) as the exact text', async () => {
    const hook = await newWebhook();
    const text = '{"a":"\\u0000"}';
    const stored = await hook.payload(await expectAccepted(await deliver(hook.path, text)));
    expect(stored).toMatchObject({ encoding: 'text', payload: text });
  });

  it('keeps invalid JSON as text and an empty body as {}', async () => {
    const hook = await newWebhook();
    const text = '{"unterminated": [1, 2,';
    const asText = await hook.payload(await expectAccepted(await deliver(hook.path, text)));
    expect(asText).toMatchObject({ encoding: 'text', payload: text });
    const empty = await hook.payload(await expectAccepted(await deliver(hook.path, null)));
    expect(empty).toMatchObject({ encoding: 'json', payload: {}, byte_size: 0 });
  });

  it('stores a JSON number above 2^53 (and reports whether the read path keeps it exact)', async () => {
    const hook = await newWebhook();
    const big = '12345678901234567890123';
    const id = await expectAccepted(await deliver(hook.path, `{"big":${big}}`));
    const res = await api(`/api/v1/boards/${hook.boardId}/webhooks/${hook.id}/payloads/${id}`, {
      headers: operatorHeaders(),
    });
    expect(res.status).toBe(200);
    const raw = await res.text();
    expect(JSON.parse(raw)).toMatchObject({ id, encoding: 'json' });
    if (!raw.includes(big))
      console.warn(`[webhook-abuse] big JSON number read back inexactly: ${raw.match(/"big":[^,}]+/)}`);
  });
});

describe('stored headers', () => {
  it('keeps x-* headers but never signatures, credentials or anything named token/secret', async () => {
    // No "signature" in its name, so only knowing the webhook's own header can keep it out.
    const hook = await newWebhook({ secret: SECRET, signature_header: 'X-Acme-Hmac' });
    const body = '{"ok":true}';
    const hex = await hmacHex(SECRET, body);
    const headers = {
      'X-Acme-Hmac': hex,
      'X-Hub-Signature-256': `sha256=${hex}`,
      'X-Webhook-Signature': hex,
      Authorization: 'Bearer sender-credential',
      'X-Api-Token': 'tok',
      'X-Client-Secret': 'shh',
      'X-Auth-Token': 'tok2',
      'X-GitHub-Event': 'push',
      'X-Request-Source': 'abuse-suite',
    };
    const stored = await hook.payload(await expectAccepted(await deliver(hook.path, body, headers)));
    expect(stored.headers).toMatchObject({ 'x-github-event': 'push', 'x-request-source': 'abuse-suite' });
    const names = Object.keys(stored.headers);
    for (const banned of ['x-acme-hmac', 'x-hub-signature-256', 'x-webhook-signature', 'authorization']) {
      expect(names).not.toContain(banned);
    }
    expect(names.filter((n) => /token|secret/i.test(n))).toEqual([]);
    expect(JSON.stringify(stored.headers)).not.toContain(hex);
  });
});

describe('no 500 for anything', () => {
  it('answers every odd request with a status below 500', async () => {
    const hook = await newWebhook();
    const app = appWith({});
    type Case = { name: string; init: RequestInit; call?: Call; path?: string };
    const post = (name: string, body: BodyInit | null, headers: Record<string, string> = {}, more = {}): Case => ({
      name,
      init: { method: 'POST', body, headers },
      ...more,
    });
    const ids = `/api/v1/boards/${hook.boardId}/webhooks`;
    const cases: Case[] = [
      ...['PUT', 'PATCH', 'DELETE', 'GET', 'OPTIONS', 'HEAD'].map((method) => ({
        name: method,
        init: { method, body: ['GET', 'HEAD'].includes(method) ? undefined : '{}' },
      })),
      post('huge header', '{}', { 'X-Garbage': 'x'.repeat(60_000) }),
      post('huge user agent', '{}', { 'User-Agent': 'u'.repeat(60_000) }),
      post('long delivery id', '{}', { 'X-GitHub-Delivery': 'd'.repeat(300) }),
      ...['', ';;;==', 'application/json; charset=nonsense', 'multipart/form-data; boundary=', '*/*'.repeat(3_000)].map(
        (type) => post(`content-type ${type.slice(0, 20)}`, '{', { 'Content-Type': type }),
      ),
      post('non-numeric Content-Length', '{}', { 'Content-Length': 'abc' }, { call: app }),
      post('negative Content-Length', '{}', { 'Content-Length': '-1' }, { call: app }),
      post('deeply nested JSON', `${'['.repeat(50_000)}${']'.repeat(50_000)}`),
      post('JSON number out of numeric range', '{"n":1e999999}'),
      post('lone surrogate escape', '{"s":"\\ud800"}'),
      post('bad percent-encoding', '{}', {}, { path: `${ids}/%ZZ` }),
      post('very long id', null, {}, { path: `${ids}/${'a'.repeat(8_000)}` }),
    ];
    const failures: string[] = [];
    for (const { name, call = api, path = hook.path, init } of cases) {
      const res = await call(path, { ...init, headers: { 'CF-Connecting-IP': freshIp(), ...init.headers } });
      const text = await res.text();
      if (res.status >= 500) failures.push(`${name}: ${res.status} ${text.slice(0, 200)}`);
    }
    expect(failures).toEqual([]);
  });
});
