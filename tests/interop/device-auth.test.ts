/**
 * Device auth against the real gateway, which enforces it only for non-loopback peers: the gateway
 * runs in a network namespace this test creates (veth pair, private addresses), so the Worker
 * reaches it over a real link. The session must show pairing_required with the approval command,
 * connect once the gateway's owner ran it, and keep the device token the gateway issued.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorkerStack, until, type WorkerStack } from '../support/worker-stack.ts';
import { type OpenclawGateway, startOpenclaw } from './openclaw.ts';

const GATEWAY_TOKEN = `gw-${randomBytes(24).toString('hex')}`;
const NS = `mce-it-${randomBytes(3).toString('hex')}`;
const HOST_IF = `${NS.slice(-6)}h`;
const NS_IF = `${NS.slice(-6)}n`;
const SUBNET = 10 + ((randomBytes(1)[0] ?? 0) % 200);
const HOST_IP = `10.78.${SUBNET}.1`;
const GATEWAY_IP = `10.78.${SUBNET}.2`;
const PORT = 18_790;

/** Network namespaces need root and iproute2; CI runs as root with iproute2 installed by .ci/run. */
function canMakeNamespaces(): boolean {
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
    return process.getuid?.() === 0;
  } catch {
    return false;
  }
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });

let stack: WorkerStack;
let gateway: OpenclawGateway;
const api: WorkerStack['api'] = (...args) => stack.api(...args);

// Skipped only where the machine cannot make a network namespace (not root, or no iproute2).
describe.skipIf(!canMakeNamespaces())('device auth with a remote gateway', () => {
  beforeAll(async () => {
    ip('netns', 'add', NS);
    ip('link', 'add', HOST_IF, 'type', 'veth', 'peer', 'name', NS_IF);
    ip('link', 'set', NS_IF, 'netns', NS);
    ip('addr', 'add', `${HOST_IP}/24`, 'dev', HOST_IF);
    ip('link', 'set', HOST_IF, 'up');
    ip('netns', 'exec', NS, 'ip', 'addr', 'add', `${GATEWAY_IP}/24`, 'dev', NS_IF);
    ip('netns', 'exec', NS, 'ip', 'link', 'set', NS_IF, 'up');
    ip('netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up');
    gateway = await startOpenclaw({
      port: PORT,
      token: GATEWAY_TOKEN,
      bind: 'lan',
      host: GATEWAY_IP,
      prefix: ['ip', 'netns', 'exec', NS],
    });
    stack = await startWorkerStack({ ENVIRONMENT: 'development' });
  }, 240_000);

  afterAll(async () => {
    await stack?.close();
    await gateway?.close();
    try {
      ip('link', 'del', HOST_IF);
    } catch {
      // Gone with the namespace.
    }
    ip('netns', 'del', NS);
  });

  it('asks for pairing, shows the approval command, and connects with full scopes once approved', async () => {
    const created = await api('POST', '/api/v1/gateways', {
      name: 'remote',
      url: `ws://${GATEWAY_IP}:${PORT}`,
      token: GATEWAY_TOKEN,
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const pairing = created.body.session.pairing;
    expect(created.body.session.status).toBe('pairing_required');
    expect(pairing.device_id).toMatch(/^[0-9a-f]{64}$/);
    expect(pairing.command).toBe(`openclaw devices approve ${pairing.request_id}`);

    // The gateway's owner runs the command (on the gateway host, against its local address).
    const approved = await gateway.cli([
      ...String(pairing.command).split(' ').slice(1),
      '--url',
      `ws://127.0.0.1:${PORT}`,
      '--token',
      GATEWAY_TOKEN,
    ]);
    expect(approved.code, approved.output).toBe(0);

    // The session retries on its heartbeat (30 s) and is let in with the scopes it asked for.
    const status = await until(
      async () => (await api('GET', `/api/v1/gateways/${created.body.id}/status`)).body,
      (s) => s.connected === true,
      60_000,
    );
    expect(status).toMatchObject({ status: 'connected', pairing: null });
    expect((await api('GET', `/api/v1/gateways/${created.body.id}`)).body.has_device_token).toBe(true);
    const health = await api('POST', `/api/v1/gateways/${created.body.id}/rpc`, { method: 'sessions.list' });
    expect(health.status, JSON.stringify(health.body)).toBe(200);
  }, 120_000);
});
