/**
 * Calls through a gateway's session: the generic RPC relay (allowlisted methods), the sessions
 * page's data (sessions, chat history, sending a message), and exec approvals the gateway's agents
 * wait on. Calls that change something on the gateway get an audit row.
 */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { authorize } from '../auth/policy';
import { AppError } from '../lib/errors';
import { validationHook } from '../middleware/errors';
import { auditInsert } from '../services/audit';
import { pendingExecApprovals } from '../services/gateway-events';
import { RPC_METHODS, type RpcPermission, rpcAccess, sessionMessagePermission } from '../services/gateway-rpc';
import { relay } from '../services/gateway-sessions';
import type { AppEnv } from '../types';
import { authErrors, errorContent, IdParam, jsonBody, jsonResponse, timestamp } from './schemas';

const tags = ['gateways'];

const RpcRequest = z
  .object({
    method: z.string().min(1).max(100),
    params: z.record(z.string(), z.unknown()).optional(),
    timeout_ms: z.number().int().min(100).max(120_000).optional(),
  })
  .openapi('GatewayRpcRequest');
const RpcResponse = z.object({ method: z.string(), payload: z.unknown() }).openapi('GatewayRpcResponse');

const SessionParam = IdParam.extend({
  session_key: z.string().min(1).max(300).openapi({ example: 'agent:mce-<agent id>:main' }),
});
const HistoryQuery = z.object({ limit: z.coerce.number().int().min(1).max(1_000).default(100) });
const SessionsQuery = z.object({ limit: z.coerce.number().int().min(1).max(500).default(100) });
const MessageBody = z.object({ message: z.string().trim().min(1).max(100_000) }).openapi('GatewaySessionMessage');

const ExecApproval = z
  .object({
    id: z.string(),
    command: z.string(),
    agent_id: z.uuid().nullable().openapi({ description: 'The Mission Control agent, when it provisioned it' }),
    gateway_agent_id: z.string().nullable(),
    session_key: z.string().nullable(),
    host: z.string().nullable(),
    cwd: z.string().nullable(),
    requested_at: timestamp.nullable(),
    expires_at: timestamp.nullable(),
  })
  .openapi('GatewayExecApproval');
const ApprovalParam = IdParam.extend({ approval_id: z.string().min(1).max(200) });
const Decision = z
  .object({ decision: z.enum(['allow-once', 'allow-always', 'deny']) })
  .openapi('GatewayExecApprovalDecision');

const gatewayErrors = {
  404: errorContent('No such gateway'),
  502: errorContent('The gateway refused the call'),
  503: errorContent('The gateway session is not connected'),
  504: errorContent('The gateway did not answer in time'),
};

/** Authorizes `permission`, finds the gateway in the caller's organization, and calls `method` on it. */
async function call(
  c: Context<AppEnv>,
  gatewayId: string,
  permission: RpcPermission,
  method: string,
  params: Record<string, unknown>,
  timeoutMs?: number,
) {
  const { organizationId } = authorize(c.var.principal, rpcAccess(permission));
  const idempotent = RPC_METHODS[method]?.idempotent ?? false;
  // The session checks the organization itself: no database read on the relay's path.
  const payload = await relay(c.env, gatewayId, {
    organization_id: organizationId,
    method,
    params,
    timeout_ms: timeoutMs ?? c.var.settings.GATEWAY_RPC_TIMEOUT_MS,
    idempotent,
  });
  return payload;
}

async function audit(c: Context<AppEnv>, action: string, gatewayId: string, details: Record<string, unknown>) {
  await auditInsert(c.var.db, c.var.audit, { action, targetType: 'gateway', targetId: gatewayId, details });
  c.set('audited', true);
}

export const gatewayRelayRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/gateways/{id}/rpc',
      tags,
      summary: 'Call a gateway method through the session',
      description: `Allowed methods and the permission each needs: ${Object.entries(RPC_METHODS)
        .map(([m, rule]) => `\`${m}\` (${rule.permission})`)
        .join(', ')}. Reads lost to a reconnect are retried once.`,
      request: { params: IdParam, body: jsonBody(RpcRequest) },
      responses: {
        200: jsonResponse('The gateway answered', RpcResponse),
        ...authErrors,
        ...gatewayErrors,
        422: errorContent('Invalid, or the gateway rejected the parameters'),
      },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const rule = RPC_METHODS[body.method];
      if (!rule) {
        throw new AppError(422, 'validation_failed', `method: ${body.method} is not relayed`, {
          details: { issues: [{ path: 'method', message: `must be one of ${Object.keys(RPC_METHODS).join(', ')}` }] },
        });
      }
      const id = c.req.valid('param').id;
      const payload = await call(c, id, rule.permission, body.method, body.params ?? {}, body.timeout_ms);
      if (!rule.idempotent) await audit(c, 'gateway.rpc', id, { method: body.method });
      return c.json({ method: body.method, payload }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/gateways/{id}/sessions',
      tags,
      summary: "The gateway's chat sessions (its `sessions.list`)",
      request: { params: IdParam, query: SessionsQuery },
      responses: { 200: jsonResponse('Sessions', z.record(z.string(), z.unknown())), ...authErrors, ...gatewayErrors },
    }),
    async (c) => {
      const { limit } = c.req.valid('query');
      const payload = await call(c, c.req.valid('param').id, 'read', 'sessions.list', { limit });
      return c.json(payload as Record<string, unknown>, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/gateways/{id}/sessions/{session_key}/history',
      tags,
      summary: "A session's chat history (its `chat.history`)",
      request: { params: SessionParam, query: HistoryQuery },
      responses: { 200: jsonResponse('History', z.record(z.string(), z.unknown())), ...authErrors, ...gatewayErrors },
    }),
    async (c) => {
      const { id, session_key } = c.req.valid('param');
      const { limit } = c.req.valid('query');
      const payload = await call(c, id, 'read', 'chat.history', { sessionKey: session_key, limit });
      return c.json(payload as Record<string, unknown>, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/gateways/{id}/sessions/{session_key}/messages',
      tags,
      summary: 'Send a message into a session (`chat.send`)',
      description:
        "A session of a Mission Control agent needs write access to the agent's board; any other session needs the admin role.",
      request: { params: SessionParam, body: jsonBody(MessageBody) },
      responses: {
        202: jsonResponse('Accepted by the gateway', z.record(z.string(), z.unknown())),
        ...authErrors,
        ...gatewayErrors,
        422: errorContent('Invalid'),
      },
    }),
    async (c) => {
      const { id, session_key } = c.req.valid('param');
      const { permission, agentId } = await sessionMessagePermission(c.var.db, c.var.principal, session_key);
      const { message } = c.req.valid('json');
      const payload = await call(c, id, permission, 'chat.send', {
        sessionKey: session_key,
        message,
        deliver: false,
        idempotencyKey: crypto.randomUUID(),
      });
      await audit(c, 'gateway.chat.send', id, { session_key, agent_id: agentId, chars: message.length });
      return c.json(payload as Record<string, unknown>, 202);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/gateways/{id}/exec-approvals',
      tags,
      summary: 'Commands agents on the gateway are waiting to run, pending a human decision',
      description: 'Approvals that expire on the gateway disappear from this list.',
      request: { params: IdParam },
      responses: {
        200: jsonResponse('Pending', z.object({ items: z.array(ExecApproval) })),
        ...authErrors,
        ...gatewayErrors,
      },
    }),
    async (c) => {
      const payload = await call(c, c.req.valid('param').id, 'read', 'exec.approval.list', {});
      return c.json({ items: pendingExecApprovals(payload) }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/gateways/{id}/exec-approvals/{approval_id}',
      tags,
      summary: 'Approve (once or always) or deny a pending exec approval',
      request: { params: ApprovalParam, body: jsonBody(Decision) },
      responses: {
        200: jsonResponse('Settled', z.object({ id: z.string(), decision: z.string() })),
        ...authErrors,
        ...gatewayErrors,
        422: errorContent('Invalid, or no such pending approval (expired or already settled)'),
      },
    }),
    async (c) => {
      const { id, approval_id } = c.req.valid('param');
      const { decision } = c.req.valid('json');
      await call(c, id, 'approvals', 'exec.approval.resolve', { id: approval_id, decision });
      await audit(c, 'gateway.exec_approval.resolve', id, { approval_id, decision });
      return c.json({ id: approval_id, decision }, 200);
    },
  );
