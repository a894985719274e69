/** Driving the scripted gateway (tests/support/fake-gateway.ts) from workerd tests. */
import { FAKE_GATEWAY_TOKEN } from '../support/fake-gateway-shared';
import { send, testEnv } from './helpers';

export const base = testEnv.TEST_FAKE_GATEWAY_URL;

/** A gateway path of its own for each test: the scripted gateway records calls per path. */
export const path = (mode: string) => `/${mode}/${crypto.randomUUID()}`;

export const control = (action: string, gatewayPath: string, body?: unknown) =>
  fetch(`${base.replace('ws:', 'http:')}/control/${action}?path=${encodeURIComponent(gatewayPath)}`, {
    method: action === 'calls' ? 'GET' : 'POST',
    body: body === undefined ? undefined : JSON.stringify(body),
  });

export const calls = async (gatewayPath: string) =>
  (await (await control('calls', gatewayPath)).json()) as { method: string; params: Record<string, unknown> }[];

/** POST /api/v1/gateways for a fresh scripted gateway in `mode`. */
export async function createGateway(mode = 'ok', extra: Record<string, unknown> = {}) {
  const gatewayPath = path(mode);
  const res = await send('POST', '/api/v1/gateways', {
    name: `gw ${gatewayPath}`,
    url: `${base}${gatewayPath}`,
    token: FAKE_GATEWAY_TOKEN,
    ...extra,
  });
  return { ...res, gatewayPath };
}
