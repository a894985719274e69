/**
 * Against the real OpenClaw gateway (the `openclaw` package) and the real Worker (workerd through
 * wrangler): connect, status, the relay, sessions, agent provisioning, events and exec approvals,
 * and a gateway killed and restarted. The gateway token must appear in no response and no log line.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unusedPort } from '../support/redis.ts';
import { type Json, startWorkerStack, until, type WorkerStack } from '../support/worker-stack.ts';
import { connectDirect } from './direct-client.ts';
import { type OpenclawGateway, startOpenclaw } from './openclaw.ts';

const GATEWAY_TOKEN = `gw-${randomBytes(24).toString('hex')}`;
const OPENCLAW_VERSION = (
  JSON.parse(readFileSync(join(import.meta.dirname, 'node_modules', 'openclaw', 'package.json'), 'utf8')) as {
    version: string;
  }
).version;

let stack: WorkerStack;
let gateway: OpenclawGateway;
let gatewayId = '';
/** Every response body the tests saw: none may carry the gateway token. */
const seen: string[] = [];
const api: WorkerStack['api'] = (...args) => stack.api(...args);

const status = async () => (await api('GET', `/api/v1/gateways/${gatewayId}/status`)).body;
const rpc = (method: string, params: Json = {}) => api('POST', `/api/v1/gateways/${gatewayId}/rpc`, { method, params });

beforeAll(async () => {
  gateway = await startOpenclaw({ port: await unusedPort(), token: GATEWAY_TOKEN });
  stack = await startWorkerStack(
    { ENVIRONMENT: 'development', AGENT_CHECKIN_TIMEOUT_SECONDS: '2', AGENT_PROVISION_RETRY_MS: '500' },
    (text) => seen.push(text),
  );
}, 180_000);

afterAll(async () => {
  await stack?.close();
  await gateway?.close();
});

describe('a real OpenClaw gateway', () => {
  it('connects within 5 s of creating the gateway and reports the real server version', async () => {
    const started = Date.now();
    const created = await api('POST', '/api/v1/gateways', { name: 'interop', url: gateway.url, token: GATEWAY_TOKEN });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    gatewayId = created.body.id;
    const connected = await until(status, (s) => s.connected, 5_000);
    const elapsed = Date.now() - started;
    console.log(`interop: gateway connected ${elapsed} ms after the create request`);
    expect(connected).toMatchObject({ status: 'connected', protocol: 4, server_version: OPENCLAW_VERSION });
    expect(elapsed).toBeLessThan(5_000);
  });

  it("relays health and sessions.list with the gateway's own answers", async () => {
    const direct = await connectDirect(gateway.url, GATEWAY_TOKEN);
    try {
      const mine = await direct.request('health');
      const relayed = await rpc('health');
      expect(relayed.status).toBe(200);
      expect(relayed.body.payload).toMatchObject({
        ok: true,
        defaultAgentId: (mine.payload as Json).defaultAgentId,
      });
      expect(Object.keys(relayed.body.payload).sort()).toEqual(Object.keys(mine.payload as Json).sort());
      const sessions = await api('GET', `/api/v1/gateways/${gatewayId}/sessions`);
      expect(sessions.status).toBe(200);
      expect(Array.isArray(sessions.body.sessions)).toBe(true);
    } finally {
      direct.close();
    }
  });

  it('provisions an agent created on a board: created, AGENTS.md written, woken; deleting removes it', async () => {
    const board = await api('POST', '/api/v1/boards', { name: 'interop board', gateway_id: gatewayId });
    expect(board.status).toBe(201);
    const agent = await api('POST', '/api/v1/agents', { board_id: board.body.id, name: 'Interop Lead', is_lead: true });
    expect(agent.status).toBe(201);
    const agentId = `mce-${agent.body.id}`;
    const files = await until(
      () => rpc('agents.files.list', { agentId }),
      (r) => r.status === 200 && r.body.payload.files.some((f: Json) => f.name === 'AGENTS.md' && !f.missing),
      30_000,
    );
    expect(files.body.payload.files.find((f: Json) => f.name === 'AGENTS.md').missing).toBe(false);
    const file = await rpc('agents.files.get', { agentId, name: 'AGENTS.md' });
    expect(file.body.payload.file.content).toContain(`${stack.worker.url}/api/v1/agent`);
    expect(file.body.payload.file.content).toContain('/heartbeat');
    // The wake went into the agent's main session.
    const sessions = await until(
      () => api('GET', `/api/v1/gateways/${gatewayId}/sessions`),
      (r) => r.body.sessions?.some((s: Json) => s.key === `agent:${agentId}:main`),
      20_000,
    );
    expect(sessions.body.sessions.some((s: Json) => s.key === `agent:${agentId}:main`)).toBe(true);
    // The sessions page: the wake is in the history, and an operator can write into the session.
    const sessionPath = `/api/v1/gateways/${gatewayId}/sessions/${encodeURIComponent(`agent:${agentId}:main`)}`;
    // The gateway writes the transcript as the (model-less, so failing) run settles.
    const history = await until(
      () => api('GET', `${sessionPath}/history?limit=20`),
      (r) => JSON.stringify(r.body?.messages ?? []).includes('Mission Control: you are provisioned'),
      30_000,
    );
    expect(history.status).toBe(200);
    expect(JSON.stringify(history.body.messages)).toContain('Mission Control: you are provisioned');
    const sent = await api('POST', `${sessionPath}/messages`, { message: 'Status update, please.' });
    expect(sent.status, JSON.stringify(sent.body)).toBe(202);
    expect(sent.body.status).toBe('started');
    // The agent checks in as its instructions say: online.
    const beat = await api('POST', '/api/v1/agent/heartbeat', {}, { 'X-Agent-Token': agent.body.token });
    expect(beat.status).toBe(200);
    expect((await api('GET', `/api/v1/agents/${agent.body.id}`)).body.status).toBe('online');

    expect((await api('DELETE', `/api/v1/agents/${agent.body.id}`)).status).toBe(204);
    const gone = await until(
      () => rpc('agents.list'),
      (r) => r.status === 200 && !r.body.payload.agents.some((a: Json) => a.id === agentId),
      20_000,
    );
    expect(gone.body.payload.agents.some((a: Json) => a.id === agentId)).toBe(false);
  }, 90_000);

  it('marks an agent that never checks in offline with a readable error, never stuck in provisioning', async () => {
    const board = await api('POST', '/api/v1/boards', { name: 'silent board', gateway_id: gatewayId });
    const agent = await api('POST', '/api/v1/agents', { board_id: board.body.id, name: 'Silent', is_lead: true });
    // Check-in window 2 s, woken 4 times with doubling waits (2 + 4 + 8 + 16 s): about 30 s to give up.
    const final = await until(
      async () => (await api('GET', `/api/v1/agents/${agent.body.id}`)).body,
      (a) => a.status !== 'provisioning',
      60_000,
    );
    expect(final.status).toBe('offline');
    expect(final.provision_error).toMatch(/did not check in/);
  }, 90_000);

  it('streams gateway events and lets an operator settle an exec approval', async () => {
    const ticket = await api('POST', '/api/v1/events/ticket', {});
    const url = `${stack.worker.url.replace('http', 'ws')}/api/v1/gateways/${gatewayId}/events?ticket=${ticket.body.ticket}`;
    const ws = new WebSocket(url);
    const messages: Json[] = [];
    ws.onmessage = (m) => {
      messages.push(JSON.parse(String(m.data)));
    };
    await until(
      async () => messages.length,
      (n) => n > 0,
      10_000,
    );
    expect(messages[0], JSON.stringify(messages[0])).toMatchObject({ type: 'ready', status: { connected: true } });

    // An agent-side client asks to run a command; the relay's session is an approval client.
    const requester = await connectDirect(gateway.url, GATEWAY_TOKEN);
    try {
      const asked = await requester.request('exec.approval.request', {
        command: 'echo interop',
        host: 'gateway',
        timeoutMs: 60_000,
        twoPhase: true,
      });
      expect(asked).toMatchObject({ ok: true, payload: { status: 'accepted' } });
      const approvalId = (asked.payload as Json).id as string;
      const event = await until(
        async () => messages.find((m) => m.type === 'event' && m.event.event === 'exec.approval.requested'),
        (m) => m !== undefined,
        10_000,
      );
      expect(event?.event.payload.id).toBe(approvalId);
      const pending = await api('GET', `/api/v1/gateways/${gatewayId}/exec-approvals`);
      expect(pending.body.items).toEqual([
        expect.objectContaining({ id: approvalId, command: 'echo interop', host: 'gateway' }),
      ]);
      const settled = await api('POST', `/api/v1/gateways/${gatewayId}/exec-approvals/${approvalId}`, {
        decision: 'deny',
      });
      expect(settled).toMatchObject({ status: 200, body: { id: approvalId, decision: 'deny' } });
      expect((await api('GET', `/api/v1/gateways/${gatewayId}/exec-approvals`)).body.items).toEqual([]);
      const activity = await until(
        () => api('GET', '/api/v1/activity?limit=50'),
        (r) => r.body.items.some((e: Json) => e.type === 'gateway.exec_approval.resolved'),
        10_000,
      );
      expect(activity.body.items.map((e: Json) => e.type)).toContain('gateway.exec_approval.requested');
    } finally {
      requester.close();
      ws.close();
    }
  }, 60_000);

  it('notices a killed gateway within one heartbeat and reconnects by itself when it comes back', async () => {
    await gateway.stop();
    const killedAt = Date.now();
    const down = await until(status, (s) => !s.connected, 30_000);
    console.log(`interop: status disconnected ${Date.now() - killedAt} ms after the gateway was killed`);
    expect(down.connected).toBe(false);
    expect((await rpc('health')).status).toBe(503);

    await gateway.start();
    const restartedAt = Date.now();
    const up = await until(status, (s) => s.connected, 90_000);
    console.log(`interop: reconnected ${Date.now() - restartedAt} ms after the gateway was serving again`);
    expect(up).toMatchObject({ connected: true, server_version: OPENCLAW_VERSION });
    expect((await rpc('health')).status).toBe(200);
  }, 180_000);

  it('never shows the gateway token in a response or a log line', () => {
    expect(seen.length).toBeGreaterThan(10);
    for (const body of seen) expect(body).not.toContain(GATEWAY_TOKEN);
    const logs = stack.worker.logs();
    expect(logs.length).toBeGreaterThan(10);
    for (const line of logs) expect(line).not.toContain(GATEWAY_TOKEN);
  });
});
