import { describe, expect, it } from 'vitest';
import { redact, redactText } from '../../workers/lib/redact';

describe('redact', () => {
  it('hides values under sensitive keys at any depth', () => {
    const out = redact({
      headers: { Authorization: 'Bearer abc', 'x-api-key': 'k1' },
      nested: [{ token: 't1', password: 'p1', safe: 'visible' }],
      DATABASE_URL: 'postgres://u:pw@host/db',
    });
    expect(JSON.stringify(out)).not.toMatch(/abc|k1|t1|p1|pw@/);
    expect(JSON.stringify(out)).toContain('visible');
  });

  it('removes query strings, fragments and URL credentials from text', () => {
    expect(redactText('GET https://h.example/cb?code=secret#frag done')).toBe('GET https://h.example/cb done');
    expect(redactText('wss://user:pass@gw.example/ws')).toBe('wss://[redacted]@gw.example/ws');
  });

  it('removes bearer tokens from free text', () => {
    expect(redactText('failed with Authorization: Bearer eyJhbGciOi.abc-def')).toBe(
      'failed with Authorization: Bearer [redacted]',
    );
  });

  it('keeps errors readable without their stack', () => {
    expect(redact(new Error('token=Bearer xyz'))).toEqual({ name: 'Error', message: 'token=Bearer [redacted]' });
  });
});
