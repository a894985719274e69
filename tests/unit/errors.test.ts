import { SELF } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { appWith, json, operatorHeaders, testEnv } from '../integration/helpers';

describe('error shape', () => {
  it('answers unknown routes with 404 JSON, a request id and the security headers', async () => {
    const res = await SELF.fetch('https://mce.test/api/v1/no-such-thing', { headers: operatorHeaders() });
    const body = await json(res);
    expect(res.status).toBe(404);
    expect(body.error.code).toBe('not_found');
    expect(body.error.message).toContain('/api/v1/no-such-thing');
    expect(body.request_id).toBe(res.headers.get('x-request-id'));
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('echoes a safe X-Request-Id and replaces an unsafe one', async () => {
    const echoed = await SELF.fetch('https://mce.test/healthz', { headers: { 'X-Request-Id': 'abc-123' } });
    expect(echoed.headers.get('x-request-id')).toBe('abc-123');
    const replaced = await SELF.fetch('https://mce.test/healthz', {
      headers: { 'X-Request-Id': 'bad id\twith"quotes' },
    });
    expect(replaced.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers 500 config_invalid naming the bad setting, never its value', async () => {
    const weak = 'abcdefghij'.repeat(3);
    const res = await appWith({ LOCAL_AUTH_TOKEN: weak })('/api/v1/openapi.json');
    const body = await json(res);
    expect(res.status).toBe(500);
    expect(body.error.code).toBe('config_invalid');
    expect(body.error.message).toContain('LOCAL_AUTH_TOKEN');
    expect(body.error.details.problems[0].problem).toContain('at least 50 characters');
    expect(JSON.stringify(body)).not.toContain(weak);
  });

  it('treats a placeholder secret and a missing database URL as invalid', async () => {
    const res = await appWith({ LOCAL_AUTH_TOKEN: `change-me-${'x'.repeat(60)}`, DATABASE_URL: '' })('/docs');
    const body = await json(res);
    expect(res.status).toBe(500);
    const settings = body.error.details.problems.map((p: { setting: string }) => p.setting).sort();
    expect(settings).toEqual(['DATABASE_URL', 'LOCAL_AUTH_TOKEN']);
  });

  it('keeps the default protections when a header setting is blank', async () => {
    const res = await appWith({ CONTENT_SECURITY_POLICY: '   ', STRICT_TRANSPORT_SECURITY: '' })('/healthz');
    expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(res.headers.get('strict-transport-security')).toContain('max-age=');
  });

  it('applies a configured Content-Security-Policy', async () => {
    const res = await appWith({ CONTENT_SECURITY_POLICY: "default-src 'none'" })('/healthz');
    expect(res.headers.get('content-security-policy')).toBe("default-src 'none'");
  });

  it('sets every security header', async () => {
    const res = await SELF.fetch('https://mce.test/healthz');
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('referrer-policy')).toBe('strict-origin-when-cross-origin');
    expect(res.headers.get('permissions-policy')).toContain('camera=()');
    expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(testEnv.ENVIRONMENT).toBe('test');
  });
});

describe('CORS', () => {
  const request = appWith({ CORS_ORIGINS: 'https://ops.example.com, https://admin.example.com' });

  it('allows a listed origin, preflight included', async () => {
    const res = await request('/api/v1/openapi.json', {
      method: 'OPTIONS',
      headers: { Origin: 'https://admin.example.com', 'Access-Control-Request-Method': 'POST' },
    });
    expect(res.headers.get('access-control-allow-origin')).toBe('https://admin.example.com');
    expect(res.headers.get('access-control-allow-methods')).toContain('POST');
  });

  it('gives other origins no CORS headers', async () => {
    const res = await request('/api/v1/openapi.json', { headers: { Origin: 'https://evil.example.net' } });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    const none = await SELF.fetch('https://mce.test/healthz', { headers: { Origin: 'https://ops.example.com' } });
    expect(none.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('rejects a CORS_ORIGINS value that is not a list of origins', async () => {
    const res = await appWith({ CORS_ORIGINS: 'https://ok.example.com/path' })('/docs');
    expect(res.status).toBe(500);
    expect((await json(res)).error.message).toContain('CORS_ORIGINS');
  });
});
