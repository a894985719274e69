import { SELF } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { appWith, json, testEnv } from './helpers';

describe('GET /healthz', () => {
  it('answers 200 JSON without touching anything', async () => {
    const res = await SELF.fetch('https://mce.test/healthz');
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ ok: true });
  });

  it('stays alive when the settings are broken', async () => {
    const res = await appWith({ LOCAL_AUTH_TOKEN: 'short' })('/healthz');
    expect(res.status).toBe(200);
  });
});

describe('GET /readyz', () => {
  it('is ready with the database reachable and migrated', async () => {
    const res = await SELF.fetch('https://mce.test/readyz');
    const body = await json(res);
    expect(res.status).toBe(200);
    expect(body.ok).toBe(true);
    expect(body.checks.db.ok).toBe(true);
    expect(body.checks.db.latency_ms).toBeGreaterThanOrEqual(0);
    expect(body.checks.schema.ok).toBe(true);
    expect(res.headers.get('cache-control')).toBe('no-store');
  });

  it('names `schema` and the fix when the database has no migrations', async () => {
    const res = await appWith({ DATABASE_HTTP_ENDPOINT: testEnv.TEST_EMPTY_SQL_ENDPOINT })('/readyz');
    const body = await json(res);
    expect(res.status).toBe(503);
    expect(body.failed).toEqual(['schema']);
    expect(body.checks.db.ok).toBe(true);
    expect(body.checks.schema.fix).toBe('npm run mce -- migrate');
  });

  it('names `db` when the endpoint is unreachable', async () => {
    const res = await appWith({ DATABASE_HTTP_ENDPOINT: 'http://127.0.0.1:9/sql' })('/readyz');
    const body = await json(res);
    expect(res.status).toBe(503);
    expect(body.failed).toEqual(['db']);
    // The public probe says what failed, not where the database lives.
    expect(body.checks.db.error).toBe('unreachable');
    expect(JSON.stringify(body)).not.toContain('127.0.0.1');
  });

  it('names `db` when the endpoint refuses our token, without leaking it', async () => {
    const res = await appWith({ DATABASE_HTTP_TOKEN: 'w'.repeat(10) + 'x'.repeat(30) })('/readyz');
    const body = await json(res);
    expect(res.status).toBe(503);
    expect(body.failed).toEqual(['db']);
    expect(JSON.stringify(body)).not.toContain('x'.repeat(30));
  });

  it('names `config` when a setting is invalid, never its value', async () => {
    const res = await appWith({ LOCAL_AUTH_TOKEN: 'change-me' })('/readyz');
    const body = await json(res);
    expect(res.status).toBe(503);
    expect(body.failed).toEqual(['config']);
    expect(body.checks.config.error).toContain('LOCAL_AUTH_TOKEN');
    expect(JSON.stringify(body)).not.toContain('change-me');
  });

  it('turns 503 when the database goes away and recovers by itself when it returns', async () => {
    const control = testEnv.TEST_FAULT_CONTROL;
    const request = appWith({ DATABASE_HTTP_ENDPOINT: testEnv.TEST_FAULTY_SQL_ENDPOINT, READYZ_TIMEOUT_MS: '3000' });
    expect((await request('/readyz')).status).toBe(200);

    await fetch(`${control}/down`, { method: 'POST' });
    try {
      const down = await request('/readyz');
      expect(down.status).toBe(503);
      expect((await json(down)).failed).toEqual(['db']);
    } finally {
      await fetch(`${control}/up`, { method: 'POST' });
    }
    await expect.poll(async () => (await request('/readyz')).status, { timeout: 20_000, interval: 250 }).toBe(200);
  });
});
