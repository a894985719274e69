/**
 * Agent lifecycle on a gateway and deliveries through it, against the scripted gateway: what is
 * sent, in which order, and how failures end (offline with the reason, never stuck).
 */
import { createMessageBatch } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { consumeWebhookDeliveries, DELIVERY_QUEUE } from '../../workers/queues/webhook-deliveries';
import { calls, control, createGateway } from './fake-gateway-client';
import { appWith, freshIp, send, testEnv, until } from './helpers';

async function boardOnGateway(mode = 'ok') {
  const gw = await createGateway(mode);
  const board = (await send('POST', '/api/v1/boards', { name: 'provisioned board', gateway_id: gw.body.id })).body;
  return { gatewayPath: gw.gatewayPath, gatewayId: gw.body.id as string, board };
}

const agentRead = async (id: string) => (await send('GET', `/api/v1/agents/${id}`)).body;

describe('agent provisioning', () => {
  it('creates the agent, writes AGENTS.md with the API and its token, and wakes its main session', async () => {
    const { gatewayPath, board } = await boardOnGateway();
    const agent = (await send('POST', '/api/v1/agents', { board_id: board.id, name: 'Lead', is_lead: true })).body;
    expect(agent.status).toBe('provisioning');
    const gatewayAgent = `mce-${agent.id}`;
    const sent = await until(
      () => calls(gatewayPath),
      (c) => c.some((x) => x.method === 'chat.send'),
    );
    expect(sent.map((c) => c.method)).toEqual(['agents.create', 'agents.files.set', 'chat.send']);
    expect(sent[0]?.params).toEqual({ name: gatewayAgent });
    expect(sent[1]?.params).toMatchObject({ agentId: gatewayAgent, name: 'AGENTS.md' });
    const content = String(sent[1]?.params.content);
    expect(content).toContain('https://mce.test/api/v1/agent/heartbeat');
    expect(content).toContain(agent.token);
    expect(sent[2]?.params).toMatchObject({ sessionKey: `agent:${gatewayAgent}:main`, deliver: false });
    expect(String(sent[2]?.params.idempotencyKey)).toMatch(/^mce-wake-/);

    const beat = await send('POST', '/api/v1/agent/heartbeat', {}, { 'X-Agent-Token': agent.token });
    expect(beat.status).toBe(200);
    expect(await agentRead(agent.id)).toMatchObject({ status: 'online', provision_error: null });

    expect((await send('DELETE', `/api/v1/agents/${agent.id}`)).status).toBe(204);
    const removed = await until(
      () => calls(gatewayPath),
      (c) => c.some((x) => x.method === 'agents.delete'),
    );
    expect(removed.at(-1)).toMatchObject({ method: 'agents.delete', params: { agentId: gatewayAgent } });
  });

  it('ends a failing provisioning offline with the gateway’s error after its retries', async () => {
    const { gatewayPath, board } = await boardOnGateway();
    await control('fail', gatewayPath, {
      method: 'agents.create',
      error: { code: 'INVALID_REQUEST', message: 'workspace is not writable' },
    });
    const agent = (await send('POST', '/api/v1/agents', { board_id: board.id, name: 'Doomed', is_lead: true })).body;
    const final = await until(
      () => agentRead(agent.id),
      (a) => a.status !== 'provisioning',
    );
    expect(final.status).toBe('offline');
    expect(final.provision_error).toMatch(/failed after 4 attempts: workspace is not writable/);
    expect((await calls(gatewayPath)).filter((c) => c.method === 'agents.create')).toHaveLength(4);
    const feed = await send('GET', `/api/v1/activity?board_id=${board.id}&type=agent.provision_failed`);
    expect(feed.body.items).toHaveLength(1);
  });

  it('re-wakes an agent that does not check in, then marks it offline', async () => {
    const { gatewayPath, board } = await boardOnGateway();
    const agent = (await send('POST', '/api/v1/agents', { board_id: board.id, name: 'Sleepy', is_lead: true })).body;
    // Check-in window 2 s (test setting), 4 wakes with doubling waits: about 30 s.
    const final = await until(
      () => agentRead(agent.id),
      (a) => a.status !== 'provisioning',
      60_000,
    );
    expect(final).toMatchObject({ status: 'offline' });
    expect(final.provision_error).toMatch(/did not check in/);
    const wakes = (await calls(gatewayPath)).filter((c) => c.method === 'chat.send');
    expect(wakes).toHaveLength(4);
    expect(new Set(wakes.map((w) => w.params.idempotencyKey)).size).toBe(4);
  }, 90_000);
});

describe('webhook delivery through the gateway', () => {
  it('sends the fenced payload into the target agent’s session once, and retries while the gateway is down', async () => {
    const { gatewayPath, board } = await boardOnGateway();
    const lead = (await send('POST', '/api/v1/agents', { board_id: board.id, name: 'Lead', is_lead: true })).body;
    const hook = (await send('POST', `/api/v1/boards/${board.id}/webhooks`, { description: 'CI events' })).body;
    // The queue is driven by hand below: the hand-off after the 202 goes nowhere.
    const noQueue = { WEBHOOK_DELIVERIES: { send: async () => {}, sendBatch: async () => {} } };
    const res = await appWith(noQueue)(hook.endpoint_path, {
      method: 'POST',
      body: '{"build":"red"}',
      headers: { 'CF-Connecting-IP': freshIp() },
    });
    const { payload_id } = (await res.json()) as { payload_id: string };
    const message = { id: 'm1', timestamp: Date.now(), attempts: 1, body: { payload_id } };

    await control('down', gatewayPath);
    await consumeWebhookDeliveries(createMessageBatch(DELIVERY_QUEUE, [message]), testEnv);
    const pending = await send('GET', `${hook.endpoint_path}/payloads/${payload_id}`);
    expect(pending.body).toMatchObject({ status: 'pending', attempts: 1 });
    expect(pending.body.last_error).toMatch(/gateway/);

    // The queue retries; once the gateway is back (the session reconnects by itself) it goes out.
    await control('up', gatewayPath);
    const status = await until(
      async () => {
        await consumeWebhookDeliveries(createMessageBatch(DELIVERY_QUEUE, [message]), testEnv);
        return (await send('GET', `${hook.endpoint_path}/payloads/${payload_id}`)).body.status;
      },
      (s) => s === 'delivered',
      40_000,
    );
    expect(status).toBe('delivered');
    const sends = (await calls(gatewayPath)).filter(
      (c) => c.method === 'chat.send' && c.params.idempotencyKey === `mce-webhook-${payload_id}`,
    );
    expect(sends).toHaveLength(1);
    expect(sends[0]?.params.sessionKey).toBe(`agent:mce-${lead.id}:main`);
    expect(String(sends[0]?.params.message)).toMatch(
      /BEGIN EXTERNAL DATA[\s\S]*"build": ?"red"[\s\S]*END EXTERNAL DATA/,
    );
  }, 60_000);
});

describe('approval outcomes through the gateway', () => {
  it('tells the board lead in its session when a human decides its approval', async () => {
    const { gatewayPath, board } = await boardOnGateway();
    const lead = (await send('POST', '/api/v1/agents', { board_id: board.id, name: 'Lead', is_lead: true })).body;
    const task = (await send('POST', `/api/v1/boards/${board.id}/tasks`, { title: 'ship it' })).body;
    const approval = (
      await send(
        'POST',
        '/api/v1/agent/approvals',
        { task_ids: [task.id], action_type: 'deploy', payload: { reason: 'release' }, confidence: 80 },
        { 'X-Agent-Token': lead.token },
      )
    ).body;
    const decided = await send('POST', `/api/v1/boards/${board.id}/approvals/${approval.id}/approve`, {
      note: 'go ahead',
    });
    expect(decided.status).toBe(200);
    const told = (await calls(gatewayPath)).filter((c) => c.params.idempotencyKey === `mce-approval-${approval.id}`);
    expect(told).toHaveLength(1);
    expect(told[0]?.params.sessionKey).toBe(`agent:mce-${lead.id}:main`);
    expect(String(told[0]?.params.message)).toMatch(/"deploy".*was approved.*go ahead/);
  });
});
