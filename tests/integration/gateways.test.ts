/**
 * Gateways API and sessions against the scripted gateway (tests/support/fake-gateway.ts): the
 * handshake's failure modes, the relay, reconnects, events, lock. The real OpenClaw gateway is
 * exercised in tests/interop.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FAKE_GATEWAY_TOKEN, FAKE_GATEWAY_VERSION } from '../support/fake-gateway-shared';
import { base, calls, control, createGateway, path } from './fake-gateway-client';
import { api, appWith, jwtOperators, operatorHeaders, send, testEnv, until } from './helpers';

const status = async (id: string) => (await send('GET', `/api/v1/gateways/${id}/status`)).body;
const rpc = (id: string, method: string, params: Record<string, unknown> = {}, headers = operatorHeaders()) =>
  send('POST', `/api/v1/gateways/${id}/rpc`, { method, params }, headers);

afterEach(() => {
  vi.restoreAllMocks();
});

describe('gateways API', () => {
  it('connects on create, reports the real handshake, and never returns the token', async () => {
    const created = await createGateway();
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ has_token: true, has_device_token: false, session: { connected: true } });
    expect(JSON.stringify(created.body)).not.toContain(FAKE_GATEWAY_TOKEN);
    const st = await status(created.body.id);
    expect(st).toMatchObject({
      status: 'connected',
      protocol: 4,
      server_version: FAKE_GATEWAY_VERSION,
      last_error: null,
    });
    for (const read of [`/api/v1/gateways/${created.body.id}`, '/api/v1/gateways?limit=200']) {
      const res = await send('GET', read);
      expect(res.status).toBe(200);
      expect(JSON.stringify(res.body)).not.toContain(FAKE_GATEWAY_TOKEN);
    }
    // A rename keeps the connection; a new token (checked first) makes a new one.
    const renamed = await send('PATCH', `/api/v1/gateways/${created.body.id}`, { name: `renamed ${created.body.id}` });
    expect(renamed.body.session.connection_id).toBe(st.connection_id);
    const bad = await send('PATCH', `/api/v1/gateways/${created.body.id}`, { token: 'not-the-token' });
    expect(bad.body.error).toMatchObject({ code: 'gateway_check_failed', details: { reason: 'auth_failed' } });
    const rekeyed = await send('PATCH', `/api/v1/gateways/${created.body.id}`, { token: FAKE_GATEWAY_TOKEN });
    expect(rekeyed.body.session).toMatchObject({ connected: true });
    expect(rekeyed.body.session.connection_id).not.toBe(st.connection_id);
    const ops = await send('GET', '/api/v1/ops/health');
    expect(ops.body.gateways_total).toBeGreaterThanOrEqual(1);
    expect(ops.body.gateways_connected).toBeGreaterThanOrEqual(1);
    const audit = await send('GET', `/api/v1/audit-logs?action=gateway.create&limit=200`);
    const row = audit.body.items.find((r: { target_id: string }) => r.target_id === created.body.id);
    expect(row).toBeDefined();
    expect(JSON.stringify(row)).not.toContain(FAKE_GATEWAY_TOKEN);
  });

  it('refuses URLs that would leak the token or cannot work from a Worker, with the reason', async () => {
    const cases: [
      Record<string, unknown>,
      RegExp,
      (path: string, body: unknown) => Promise<{ status: number; body: Record<string, unknown> }>,
    ][] = [
      [{ url: 'ws://gateway.example.com/' }, /clear text/, (p, b) => send('POST', p, b)],
      [{ url: 'wss://user:pw@gateway.example.com/' }, /credentials/, (p, b) => send('POST', p, b)],
      [{ url: 'wss://gateway.example.com/#x' }, /fragment/, (p, b) => send('POST', p, b)],
      [{ url: 'https://gateway.example.com/' }, /ws:\/\/ or wss:\/\//, (p, b) => send('POST', p, b)],
      [
        { url: 'wss://gateway.example.com/', allow_insecure_tls: true },
        /Cloudflare Tunnel/,
        (p, b) => send('POST', p, b),
      ],
      [
        { url: 'wss://gateway.example.com:8443/' },
        /port 443/,
        (p, b) => send('POST', p, b, operatorHeaders(), appWith({ ENVIRONMENT: 'production' })),
      ],
    ];
    for (const [fields, message, call] of cases) {
      const res = await call('/api/v1/gateways', { name: 'bad', token: 'x', ...fields });
      expect(res.status, JSON.stringify(fields)).toBe(422);
      expect((res.body.error as { message: string }).message).toMatch(message);
    }
  });

  it('explains each way a connectivity check fails', async () => {
    const check = (url: string, token: string | null = FAKE_GATEWAY_TOKEN) =>
      send('POST', '/api/v1/gateways/test', { url, token });
    const ok = await check(`${base}${path('ok')}`);
    expect(ok).toMatchObject({ status: 200, body: { ok: true, server_version: FAKE_GATEWAY_VERSION, protocol: 4 } });
    const reasons: [string, string | null, string][] = [
      [`${base}${path('ok')}`, 'wrong-token', 'auth_failed'],
      ['ws://127.0.0.1:9/', FAKE_GATEWAY_TOKEN, 'unreachable'],
      [`${base}${path('no-challenge')}`, FAKE_GATEWAY_TOKEN, 'no_challenge'],
      [`${base}${path('slow-hello')}`, FAKE_GATEWAY_TOKEN, 'handshake_timeout'],
      [`${base}${path('wrong-protocol')}`, FAKE_GATEWAY_TOKEN, 'protocol_mismatch'],
      [`${base}${path('old')}`, FAKE_GATEWAY_TOKEN, 'version_too_old'],
      [`${base}${path('scope')}`, FAKE_GATEWAY_TOKEN, 'scope_missing'],
      [`${base}${path('pairing')}`, FAKE_GATEWAY_TOKEN, 'pairing_required'],
      // The scripted gateway speaks plain HTTP: a TLS handshake with it fails.
      [`${base.replace('ws:', 'wss:')}${path('ok')}`, FAKE_GATEWAY_TOKEN, 'tls_failed'],
    ];
    for (const [url, token, reason] of reasons) {
      const res = await check(url, token);
      expect(res.status, reason).toBe(422);
      expect(res.body.error, `${reason}: ${res.body.error.message}`).toMatchObject({
        code: 'gateway_check_failed',
        details: { reason },
      });
    }
    // Nothing was stored by any check.
    const list = await send('GET', '/api/v1/gateways?limit=200');
    expect(JSON.stringify(list.body)).not.toContain('no-challenge');
  });

  it('stores a gateway that waits for device approval and shows the command to approve it', async () => {
    const created = await createGateway('pairing');
    expect(created.status).toBe(201);
    expect(created.body.session).toMatchObject({
      status: 'pairing_required',
      pairing: { request_id: 'req-fake-1', command: 'openclaw devices approve req-fake-1' },
    });
    expect(created.body.session.pairing.device_id).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('RPC relay', () => {
  it('relays allowed methods, refuses others, and maps permissions', async () => {
    const { body: gw, gatewayPath } = await createGateway();
    const health = await rpc(gw.id, 'health');
    expect(health).toMatchObject({ status: 200, body: { method: 'health', payload: { ok: true } } });
    expect((await rpc(gw.id, 'wizard.start')).status).toBe(422);
    const key = await send('POST', '/api/v1/api-keys', { name: 'gw reader', scopes: ['read'] });
    const reader = { Authorization: `Bearer ${key.body.secret}` };
    expect((await rpc(gw.id, 'health', {}, reader)).status).toBe(200);
    expect((await rpc(gw.id, 'agents.create', { name: 'x' }, reader)).status).toBe(403);
    expect((await calls(gatewayPath)).map((c) => c.method)).toEqual(['health', 'health']);

    await control('fail', gatewayPath, {
      method: 'agents.files.set',
      error: { code: 'FORBIDDEN', message: 'missing scope: operator.admin', details: { code: 'MISSING_SCOPE' } },
    });
    const refused = await rpc(gw.id, 'agents.files.set', { agentId: 'a', name: 'AGENTS.md', content: '' });
    expect(refused.status).toBe(502);
    expect(refused.body.error.code).toBe('gateway_scope_missing');
    const audit = await send('GET', '/api/v1/audit-logs?action=gateway.rpc&limit=200');
    expect(audit.body.items.some((r: { target_id: string }) => r.target_id === gw.id)).toBe(false);
    await rpc(gw.id, 'chat.send', { sessionKey: 'agent:x:main', message: 'hi', idempotencyKey: 'k1' });
    const after = await send('GET', '/api/v1/audit-logs?action=gateway.rpc&limit=200');
    expect(after.body.items.some((r: { target_id: string }) => r.target_id === gw.id)).toBe(true);

    await control('fail', gatewayPath, { method: 'status', error: 'hang' });
    const slow = await send('POST', `/api/v1/gateways/${gw.id}/rpc`, { method: 'status', timeout_ms: 300 });
    expect(slow.status).toBe(504);
    expect(slow.body.error.code).toBe('gateway_timeout');
    // A call that never came back leaves the session up.
    expect((await rpc(gw.id, 'health')).status).toBe(200);
  });

  it('answers 503 gateway_unavailable when the gateway misbehaves mid-call, and drops garbage and oversized frames', async () => {
    for (const mode of ['mid-call-close', 'garbage', 'oversized']) {
      const { body: gw } = await createGateway(mode);
      expect(gw.session.status, mode).toBe('connected');
      const res = await rpc(gw.id, 'health');
      expect(res.status, mode).toBe(503);
      expect(res.body.error.code, mode).toBe('gateway_unavailable');
      // The read was retried once on a fresh connection, which failed the same way.
      const st = await status(gw.id);
      expect(st.connected, mode).toBe(false);
      expect(st.last_error.kind, mode).toBe('closed');
    }
  });

  it('reconnects on its own after the gateway drops the connection or goes away for a while', async () => {
    const { body: gw, gatewayPath } = await createGateway();
    const first = (await status(gw.id)).connection_id;
    await control('drop', gatewayPath);
    const back = await until(
      () => status(gw.id),
      (s) => s.connected && s.connection_id !== first,
    );
    expect(back.connected).toBe(true);

    await control('down', gatewayPath);
    const down = await until(
      () => status(gw.id),
      (s) => !s.connected && s.reconnect_attempts >= 2,
    );
    expect(down).toMatchObject({ connected: false, status: 'disconnected' });
    expect((await rpc(gw.id, 'chat.send', { sessionKey: 'k', message: 'm', idempotencyKey: 'i' })).status).toBe(503);
    await control('up', gatewayPath);
    const up = await until(
      () => status(gw.id),
      (s) => s.connected,
      40_000,
    );
    expect(up).toMatchObject({ connected: true, reconnect_attempts: 0, last_error: null });
  }, 60_000);
});

describe('gateway events', () => {
  it('streams gateway events to subscribers and records exec approvals as activity', async () => {
    const { body: gw, gatewayPath } = await createGateway();
    const ticket = await send('POST', '/api/v1/events/ticket', {});
    const res = await api(`/api/v1/gateways/${gw.id}/events?ticket=${ticket.body.ticket}`, {
      headers: { Upgrade: 'websocket' },
    });
    expect(res.status).toBe(101);
    const ws = res.webSocket as WebSocket;
    ws.accept();
    const messages: Record<string, unknown>[] = [];
    ws.addEventListener('message', (e) => {
      messages.push(JSON.parse(String(e.data)));
    });
    await until(
      async () => messages.length,
      (n) => n > 0,
    );
    expect(messages[0]).toMatchObject({ type: 'ready', status: { connected: true } });

    const approvalId = crypto.randomUUID();
    await control('emit', gatewayPath, {
      event: 'exec.approval.requested',
      payload: {
        id: approvalId,
        request: { command: 'rm -rf /tmp/x\u0007', agentId: 'dev', sessionKey: 'agent:dev:main' },
        createdAtMs: Date.now(),
        expiresAtMs: Date.now() + 60_000,
      },
    });
    await until(
      async () => messages.length,
      (n) => n > 1,
    );
    expect(messages[1]).toMatchObject({ type: 'event', event: { event: 'exec.approval.requested' } });
    const activity = await until(
      () => send('GET', '/api/v1/activity?limit=50'),
      (r) => r.body.items.some((e: { payload: { approval_id?: string } }) => e.payload.approval_id === approvalId),
    );
    const row = activity.body.items.find(
      (e: { payload: { approval_id?: string } }) => e.payload.approval_id === approvalId,
    );
    expect(row).toMatchObject({ type: 'gateway.exec_approval.requested', message: 'Agent asks to run: rm -rf /tmp/x' });
    ws.close();
  });

  it("closes a revoked API key's gateway event socket (4401)", async () => {
    const { body: gw } = await createGateway();
    const key = await send('POST', '/api/v1/api-keys', { name: 'gw wall screen', scopes: ['read'] });
    const ticket = await send('POST', '/api/v1/events/ticket', {}, { Authorization: `Bearer ${key.body.secret}` });
    const res = await api(`/api/v1/gateways/${gw.id}/events?ticket=${ticket.body.ticket}`, {
      headers: { Upgrade: 'websocket' },
    });
    expect(res.status).toBe(101);
    const ws = res.webSocket as WebSocket;
    const closed = new Promise<number>((resolve) => {
      ws.addEventListener('close', (e) => {
        resolve(e.code);
      });
    });
    ws.accept();
    expect((await send('POST', `/api/v1/api-keys/${key.body.id}/revoke`)).status).toBe(200);
    expect(await closed).toBe(4401);
  });

  it('needs an organization-wide ticket', async () => {
    const { body: gw } = await createGateway();
    const board = await send('POST', '/api/v1/boards', { name: 'gw events board' });
    const ticket = await send('POST', '/api/v1/events/ticket', { board_id: board.body.id });
    const res = await api(`/api/v1/gateways/${gw.id}/events?ticket=${ticket.body.ticket}`, {
      headers: { Upgrade: 'websocket' },
    });
    expect(res.status).toBe(403);
  });
});

describe('organization lock', () => {
  it('disconnects the organization’s gateway sessions and keeps them down until unlocked', async () => {
    const { clerk, newOperator } = jwtOperators('gateway-lock');
    const owner = await newOperator();
    const gatewayPath = path('ok');
    const created = await send(
      'POST',
      '/api/v1/gateways',
      { name: 'locked gw', url: `${base}${gatewayPath}`, token: FAKE_GATEWAY_TOKEN },
      owner.headers,
      clerk,
    );
    expect(created.body.session.connected).toBe(true);
    const lock = await clerk(`/api/v1/admin/organizations/${owner.organizationId}/lock`, {
      method: 'POST',
      headers: owner.headers,
    });
    expect(lock.status).toBe(200);
    const stub = testEnv.GATEWAY_SESSION.get(testEnv.GATEWAY_SESSION.idFromName(created.body.id));
    const read = async () => (await stub.fetch('https://s/status')).json() as Promise<Record<string, unknown>>;
    expect(await read()).toMatchObject({ status: 'stopped', stop_reason: 'organization_locked', connected: false });
    const unlock = await clerk(`/api/v1/admin/organizations/${owner.organizationId}/unlock`, {
      method: 'POST',
      headers: owner.headers,
    });
    expect(unlock.status).toBe(200);
    expect(await until(read, (s) => s.connected === true)).toMatchObject({ status: 'connected' });
  });
});
