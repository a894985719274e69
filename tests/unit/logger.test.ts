import { afterEach, describe, expect, it, vi } from 'vitest';
import { createApp } from '../../workers/app';
import { testEnv } from '../integration/helpers';

function captureLogs() {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  for (const method of ['log', 'warn', 'error'] as const) {
    vi.spyOn(console, method).mockImplementation((line: unknown) => {
      raw.push(String(line));
      lines.push(JSON.parse(String(line)));
    });
  }
  return { lines, raw };
}

afterEach(() => vi.restoreAllMocks());

describe('request logging', () => {
  it('writes one JSON line per request with method, route, status, duration and request id', async () => {
    const { lines } = captureLogs();
    const res = await createApp().request('/healthz', { headers: { 'X-Request-Id': 'req-123' } }, testEnv);
    expect(res.status).toBe(200);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 'info',
      event: 'http.request',
      method: 'GET',
      route: '/healthz',
      path: '/healthz',
      status: 200,
      request_id: 'req-123',
    });
    expect(lines[0]?.duration_ms).toBeTypeOf('number');
  });

  it('writes one Analytics Engine datapoint per request, marking rate-limited ones', async () => {
    captureLogs();
    const points: AnalyticsEngineDataPoint[] = [];
    const METRICS = { writeDataPoint: (p: AnalyticsEngineDataPoint) => points.push(p) };
    const res = await createApp().request('/healthz', {}, { ...testEnv, METRICS });
    expect(res.status).toBe(200);
    expect(points).toEqual([
      { indexes: ['/healthz'], blobs: ['/healthz', 'GET', '2xx', '', ''], doubles: [expect.any(Number), 200] },
    ]);
    const app = createApp();
    const env = { ...testEnv, METRICS, AUTH_FAILURE_LIMIT: '1/60' };
    const ip = `10.77.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`;
    for (let i = 0; i < 2; i++) {
      await app.request(
        '/api/v1/boards',
        { headers: { Authorization: 'Bearer mce_wrong', 'CF-Connecting-IP': ip } },
        env,
      );
    }
    expect(points.at(-1)?.blobs?.slice(2, 4)).toEqual(['4xx', 'rate_limited']);
  });

  it('never logs credentials, query strings or secret settings', async () => {
    const { raw } = captureLogs();
    await createApp().request(
      '/api/v1/nothing-here?token=query-secret',
      { headers: { Authorization: 'Bearer header-secret' } },
      testEnv,
    );
    // A broken setting is logged by name only.
    await createApp().request('/api/v1/x', {}, { ...testEnv, ENCRYPTION_KEY: 'not-a-key-value-9f8e7d' });
    const all = raw.join('\n');
    expect(all).not.toMatch(/query-secret|header-secret|not-a-key-value-9f8e7d/);
    expect(all).not.toContain(testEnv.LOCAL_AUTH_TOKEN);
    expect(all).not.toContain(testEnv.DATABASE_HTTP_TOKEN);
    expect(all).toContain('ENCRYPTION_KEY');
  });

  it('reports slow requests at warn, but never the probes', async () => {
    const { lines } = captureLogs();
    const app = createApp();
    const slowEnv = { ...testEnv, REQUEST_LOG_SLOW_MS: '1', DATABASE_HTTP_ENDPOINT: 'http://127.0.0.1:9/sql' };
    app.get('/healthz-slow', async (c) => {
      await new Promise((r) => setTimeout(r, 20));
      return c.json({ ok: true });
    });
    await app.request('/healthz-slow', {}, slowEnv);
    await app.request('/readyz', {}, slowEnv);
    expect(lines.find((l) => l.path === '/healthz-slow')).toMatchObject({ level: 'warn', event: 'http.request.slow' });
    expect(lines.find((l) => l.path === '/readyz')).toMatchObject({ level: 'info', event: 'http.request' });
  });

  it('logs a failed query without its parameters, and answers 500 without internals', async () => {
    const { raw } = captureLogs();
    const app = createApp();
    app.get('/healthz-broken', () => {
      throw new Error('Failed query: insert into api_keys (key_hash) values ($1)\nparams: hash-of-a-secret', {
        cause: Object.assign(new Error('duplicate key value'), { code: '23505' }),
      });
    });
    const res = await app.request('/healthz-broken', {}, testEnv);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(res.status).toBe(500);
    expect(body.error.code).toBe('internal_error');
    expect(JSON.stringify(body)).not.toMatch(/insert|hash-of-a-secret/);
    const all = raw.join('\n');
    expect(all).toContain('23505');
    expect(all).not.toContain('hash-of-a-secret');
  });
});
