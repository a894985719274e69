/**
 * Deployment-wide controls, on a database of their own so they cannot disturb other test files:
 * emergency shutdown (everything but probes and platform admins gets 503, in every isolate within
 * seconds) and encryption-key rotation (every sealed secret re-sealed, none unreadable meanwhile).
 * The tests in this file run one after the other.
 */
import { describe, expect, it } from 'vitest';
import { settingsSchema } from '../../workers/config';
import { openDatabase } from '../../workers/db/client';
import { appWith, freshIp, hmacHex, json, operatorHeaders, send, testEnv } from './helpers';

const isolated = { DATABASE_HTTP_ENDPOINT: testEnv.TEST_ISOLATED_SQL_ENDPOINT };
const app = appWith(isolated);
/** Another isolate's view: its own settings object, so its own cached flag. */
const otherIsolate = appWith({ ...isolated });

const call = (method: string, path: string, body?: unknown, headers = operatorHeaders()) =>
  send(method, path, body, headers, app);

const deliver = (path: string, body: string, headers: Record<string, string>, through: typeof app) =>
  through(path, { method: 'POST', body, headers: { 'CF-Connecting-IP': freshIp(), ...headers } });

const until = async (check: () => Promise<boolean>, timeoutMs = 15_000) => {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return false;
};

describe('emergency shutdown', () => {
  it('refuses everything but probes and platform admins while on, and is audited', async () => {
    const board = await call('POST', '/api/v1/boards', { name: 'shutdown board' });
    const key = await call('POST', '/api/v1/api-keys', { name: 'shutdown key', scopes: ['admin'] });
    const agent = await call('POST', '/api/v1/agents', { board_id: board.body.id, name: 'shutdown agent' });
    const hook = await call('POST', `/api/v1/boards/${board.body.id}/webhooks`, { description: 'shutdown hook' });
    const apiKey = { Authorization: `Bearer ${key.body.secret}` };
    expect((await send('GET', '/api/v1/boards', undefined, apiKey, otherIsolate)).status).toBe(200);

    // A non-admin cannot switch it.
    expect((await send('POST', '/api/v1/admin/emergency-shutdown', { enabled: true }, apiKey, app)).status).toBe(403);
    expect((await call('POST', '/api/v1/admin/emergency-shutdown', { enabled: 'yes' })).status).toBe(422);

    const on = await call('POST', '/api/v1/admin/emergency-shutdown', { enabled: true, reason: 'incident 42' });
    expect(on.status).toBe(200);
    expect(on.body).toMatchObject({ enabled: true, reason: 'incident 42', updated_by: 'local' });

    const refused = await app('/api/v1/boards', { headers: apiKey });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).not.toBeNull();
    expect((await json(refused)).error.code).toBe('emergency_shutdown');
    const agentCall = await app('/api/v1/agent/me', { headers: { 'X-Agent-Token': agent.body.token } });
    expect(agentCall.status).toBe(503);
    expect((await app('/api/v1/boards')).status).toBe(503);
    expect((await app(hook.body.endpoint_path, { method: 'POST', body: '{}' })).status).toBe(503);
    expect((await app('/healthz')).status).toBe(200);
    expect((await app('/readyz')).status).toBe(200);
    // The platform admin still works, and can read what happened.
    expect((await call('GET', '/api/v1/boards')).status).toBe(200);
    const db = await openDatabase(settingsSchema.parse({ ...testEnv, ...isolated }));
    const { rows } = await db.execute<{ actor_id: string; details: unknown }>(
      "SELECT actor_id, details FROM audit_logs WHERE action = 'platform.emergency_shutdown.on'",
    );
    expect(rows).toHaveLength(1);
    expect(JSON.stringify(rows[0]?.details)).toContain('incident 42');

    // Another isolate that cached "off" follows within seconds.
    expect(await until(async () => (await otherIsolate('/api/v1/boards', { headers: apiKey })).status === 503)).toBe(
      true,
    );

    const off = await call('POST', '/api/v1/admin/emergency-shutdown', { enabled: false });
    expect(off.body.enabled).toBe(false);
    expect((await app('/api/v1/boards', { headers: apiKey })).status).toBe(200);
    expect(await until(async () => (await otherIsolate('/api/v1/boards', { headers: apiKey })).status === 200)).toBe(
      true,
    );
    expect((await call('GET', '/api/v1/admin/emergency-shutdown')).body.enabled).toBe(false);
  });
});

describe('encryption key rotation', () => {
  it('re-seals every secret under the new key and keeps each one working', async () => {
    const board = (await call('POST', '/api/v1/boards', { name: 'rotation board' })).body;
    const secret = `rot_${crypto.randomUUID()}`;
    const hook = (await call('POST', `/api/v1/boards/${board.id}/webhooks`, { description: 'rotation', secret })).body;
    const newKey = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
    const rotated = appWith({ ...isolated, ENCRYPTION_KEY: newKey, ENCRYPTION_KEY_PREVIOUS: testEnv.ENCRYPTION_KEY });
    const admin = (method: string, path: string, body?: unknown) =>
      send(method, path, body, operatorHeaders(), rotated);

    // Before re-sealing, the old ciphertext still opens under ENCRYPTION_KEY_PREVIOUS.
    const body = '{"rotation":1}';
    const signed = { 'X-Hub-Signature-256': `sha256=${await hmacHex(secret, body)}` };
    expect((await deliver(hook.endpoint_path, body, signed, rotated)).status).toBe(202);

    const before = await admin('GET', '/api/v1/admin/encryption');
    expect(before.body.remaining).toBeGreaterThan(0);
    let remaining = before.body.remaining;
    for (let i = 0; i < 100 && remaining > 0; i++) {
      const batch = await admin('POST', '/api/v1/admin/encryption/rotate', { batch_size: 50 });
      expect(batch.status).toBe(200);
      remaining = batch.body.remaining;
    }
    const after = await admin('GET', '/api/v1/admin/encryption');
    expect(after.body.remaining).toBe(0);
    expect(Object.keys(after.body.versions)).toEqual([after.body.current_version]);

    // The new key alone now opens it; the old key alone no longer does.
    const newOnly = appWith({ ...isolated, ENCRYPTION_KEY: newKey });
    const body2 = '{"rotation":2}';
    const signed2 = { 'X-Hub-Signature-256': `sha256=${await hmacHex(secret, body2)}` };
    expect((await deliver(hook.endpoint_path, body2, signed2, newOnly)).status).toBe(202);
    expect((await deliver(hook.endpoint_path, body2, signed2, app)).status).toBe(503);
  });
});
