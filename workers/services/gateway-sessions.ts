/**
 * The Worker's side of the gateway sessions (durable-objects/gateway-session.ts): start, refresh
 * and forget them, read their status, relay RPC with errors mapped to the API's, subscribe
 * dashboards, and queue agent provisioning.
 */
import { type RpcRequest, type RpcResult, SESSION_HEADERS } from '../../durable-objects/gateway-session';
import { AppError } from '../lib/errors';
import { log } from '../lib/log';
import type { JobRecord } from './agent-provisioning';

/** The session has no public address; the host only makes the URL well-formed. */
const SESSION_ORIGIN = 'https://gateway-session.internal';

function session(env: Env, gatewayId: string): DurableObjectStub {
  return env.GATEWAY_SESSION.get(env.GATEWAY_SESSION.idFromName(gatewayId));
}

async function call<T>(env: Env, gatewayId: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit =
    body === undefined
      ? { method: 'GET' }
      : { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) };
  const res = await session(env, gatewayId).fetch(`${SESSION_ORIGIN}${path}`, init);
  if (!res.ok) throw new Error(`gateway session answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as T;
}

export type SessionStatusBody = Record<string, unknown> & { status: string; connected: boolean };

/** Connects (waiting for the first attempt) and keeps the session up from then on. */
export function startSession(env: Env, gateway: { id: string; organizationId: string }): Promise<SessionStatusBody> {
  return call(env, gateway.id, '/start', { gateway_id: gateway.id, organization_id: gateway.organizationId });
}

export function sessionStatus(env: Env, gatewayId: string): Promise<SessionStatusBody> {
  return call(env, gatewayId, '/status');
}

export function forgetSession(env: Env, gatewayId: string): Promise<unknown> {
  return call(env, gatewayId, '/forget', {});
}

/**
 * Sessions re-read their settings: reconnect with new ones, or disconnect and stay down on lock or
 * emergency shutdown. Never throws, so it cannot fail the change that called it (the heartbeat
 * re-reads the same settings within 30 s anyway).
 */
export async function refreshSessions(env: Env, gatewayIds: string[]): Promise<void> {
  await Promise.all(
    gatewayIds.map((id) =>
      call(env, id, '/refresh', {}).catch((err: Error) =>
        log('error', 'gateway.refresh_failed', { gateway_id: id, error: err.message }),
      ),
    ),
  );
}

/** Closes gateway-event sockets of revoked principals (4401) or all of them on lock (4423). Never throws. */
export async function closeGatewaySubscribers(
  env: Env,
  gatewayIds: string[],
  selector: { principal_ids: string[] } | { all: true },
): Promise<void> {
  await Promise.all(
    gatewayIds.map((id) =>
      call(env, id, '/close-subscribers', selector).catch((err: Error) =>
        log('error', 'gateway.close_subscribers_failed', { gateway_id: id, error: err.message }),
      ),
    ),
  );
}

export function queueJob(env: Env, gatewayId: string, job: JobRecord): Promise<unknown> {
  return call(env, gatewayId, '/jobs', job);
}

/** The gateway's answer, or the API error for why there is none. */
export async function relay(env: Env, gatewayId: string, request: RpcRequest): Promise<unknown> {
  const result = await call<RpcResult>(env, gatewayId, '/rpc', request);
  if (result.ok) return result.payload;
  throw rpcError(request.method, result);
}

/** Gateway failures in the API's words: 503 while down, 504 on timeout, 502 for what the gateway refused. */
export function rpcError(method: string, result: Extract<RpcResult, { ok: false }>): AppError {
  if (result.kind === 'not_found') return new AppError(404, 'not_found', 'No such gateway.');
  if (result.kind === 'unavailable') {
    return new AppError(503, 'gateway_unavailable', `${result.message}. Try again once it reconnects.`, {
      details: result.details,
      headers: { 'Retry-After': '5' },
    });
  }
  if (result.kind === 'timeout') return new AppError(504, 'gateway_timeout', result.message);
  const code = String(result.details.code ?? '');
  const details = { gateway_code: code || null, gateway_message: result.message, method };
  if (/scope/i.test(`${code} ${result.message}`)) {
    return new AppError(
      502,
      'gateway_scope_missing',
      `The gateway token lacks the scope ${method} needs: ${result.message}`,
      {
        details,
      },
    );
  }
  if (/auth|unauthori[sz]ed|forbidden/i.test(`${code} ${result.message}`)) {
    return new AppError(502, 'gateway_auth_failed', `The gateway refused ${method}: ${result.message}`, { details });
  }
  if (/INVALID|BAD_REQUEST|NOT_FOUND/i.test(code)) {
    return new AppError(422, 'gateway_rejected', `The gateway rejected ${method}: ${result.message}`, { details });
  }
  return new AppError(502, 'gateway_error', `The gateway failed ${method}: ${result.message}`, { details });
}

/** Hands a dashboard's (already verified) WebSocket upgrade to the gateway's session. */
export function subscribeToSession(
  env: Env,
  gatewayId: string,
  principalId: string,
  afterId: number | null,
): Promise<Response> {
  const headers = new Headers({ Upgrade: 'websocket', [SESSION_HEADERS.principalId]: principalId });
  if (afterId !== null) headers.set(SESSION_HEADERS.afterId, String(afterId));
  return session(env, gatewayId).fetch(`${SESSION_ORIGIN}/events`, { headers });
}
