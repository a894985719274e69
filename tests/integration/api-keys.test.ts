import { describe, expect, it } from 'vitest';
import { api, bearer, json, operatorHeaders } from './helpers';

async function createKey(body: Record<string, unknown>, headers = operatorHeaders()) {
  const res = await api('/api/v1/api-keys', {
    method: 'POST',
    headers: { ...headers, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { res, body: await json(res) };
}

describe('API keys', () => {
  it('returns the secret exactly once and never lists it', async () => {
    const { res, body } = await createKey({ name: 'ci', scopes: ['read'] });
    expect(res.status).toBe(201);
    expect(body.secret).toMatch(/^mce_[A-Za-z0-9_-]{43}$/);
    expect(body.prefix).toBe(body.secret.slice(0, 10));
    expect(body.revoked_at).toBeNull();

    const list = await json(await api('/api/v1/api-keys?limit=200', { headers: operatorHeaders() }));
    const listed = list.items.find((k: { id: string }) => k.id === body.id);
    expect(listed).toMatchObject({ name: 'ci', scopes: ['read'] });
    expect(JSON.stringify(list)).not.toContain(body.secret);
    const one = await json(await api(`/api/v1/api-keys/${body.id}`, { headers: operatorHeaders() }));
    expect(one.secret).toBeUndefined();
  });

  it('authenticates automation and records when it was last used', async () => {
    const { body } = await createKey({ name: 'admin-bot', scopes: ['admin'] });
    const res = await api('/api/v1/api-keys', { headers: bearer(body.secret) });
    expect(res.status).toBe(200);
    const key = await json(await api(`/api/v1/api-keys/${body.id}`, { headers: operatorHeaders() }));
    expect(key.last_used_at).not.toBeNull();
  });

  it('refuses writes to a read-only key with 403', async () => {
    const { body } = await createKey({ name: 'reader', scopes: ['read'] });
    const { res } = await createKey({ name: 'escalate', scopes: ['admin'] }, bearer(body.secret));
    expect(res.status).toBe(403);
    const revoke = await api(`/api/v1/api-keys/${body.id}/revoke`, { method: 'POST', headers: bearer(body.secret) });
    expect(revoke.status).toBe(403);
  });

  it('gives a revoked key 401 on its very next request, and revoking again changes nothing', async () => {
    const { body } = await createKey({ name: 'short-lived', scopes: ['admin'] });
    expect((await api('/api/v1/api-keys', { headers: bearer(body.secret) })).status).toBe(200);
    const revoked = await json(
      await api(`/api/v1/api-keys/${body.id}/revoke`, { method: 'POST', headers: operatorHeaders() }),
    );
    expect(revoked.revoked_at).not.toBeNull();
    const after = await api('/api/v1/api-keys', { headers: bearer(body.secret) });
    expect(after.status).toBe(401);
    expect(after.headers.get('www-authenticate')).toContain('Bearer');
    const again = await json(
      await api(`/api/v1/api-keys/${body.id}/revoke`, { method: 'POST', headers: operatorHeaders() }),
    );
    expect(again.revoked_at).toBe(revoked.revoked_at);
  });

  it('refuses an expired key with the same 401 as an unknown one', async () => {
    const expired = await api('/api/v1/api-keys', { headers: bearer('mce_unknownkeythatdoesnotexist000000000000000') });
    expect(expired.status).toBe(401);
    expect((await json(expired)).error.message).toBe('Missing or invalid credentials.');
  });

  it('validates input with 422 and field paths', async () => {
    const { res, body } = await createKey({ name: '', scopes: ['root'], expires_at: 'tomorrow' });
    expect(res.status).toBe(422);
    const paths = body.error.details.issues.map((i: { path: string }) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['name', 'scopes.0', 'expires_at']));
    const past = await createKey({ name: 'old', scopes: ['read'], expires_at: '2001-01-01T00:00:00Z' });
    expect(past.res.status).toBe(422);
  });

  it('answers 404 for a key id that does not exist and 422 for one that is not a UUID', async () => {
    expect((await api(`/api/v1/api-keys/${crypto.randomUUID()}`, { headers: operatorHeaders() })).status).toBe(404);
    expect((await api('/api/v1/api-keys/not-a-uuid', { headers: operatorHeaders() })).status).toBe(422);
  });

  it('answers 401 without credentials and with a wrong local token', async () => {
    expect((await api('/api/v1/api-keys')).status).toBe(401);
    expect((await api('/api/v1/api-keys', { headers: bearer('x'.repeat(64)) })).status).toBe(401);
  });

  it('lets only operators mint keys: even an admin key gets 403, so no key outlives its parent', async () => {
    const { body } = await createKey({ name: 'automation admin', scopes: ['admin'] });
    const minted = await createKey({ name: 'child', scopes: ['admin'] }, bearer(body.secret));
    expect(minted.res.status).toBe(403);
    expect((await api('/api/v1/api-keys', { headers: bearer(body.secret) })).status).toBe(200);
  });
});
