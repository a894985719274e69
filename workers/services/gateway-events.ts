/**
 * Gateway events that become activity rows (exec approvals asked for and settled), and the
 * gateway's pending exec approvals in the API's shape. Commands come from agents: they are capped
 * and stripped of control characters before they reach a message.
 */
import { capText, stripControlCharacters } from '../lib/external-data';
import type { GatewayActivity } from './gateway-activity';

const MAX_COMMAND_CHARS = 300;
const AGENT_PREFIX = 'mce-';

/** Our agent id from the gateway's (`mce-<uuid>`), or null for agents Mission Control did not provision. */
export function agentIdFromGateway(gatewayAgentId: unknown): string | null {
  if (typeof gatewayAgentId !== 'string' || !gatewayAgentId.startsWith(AGENT_PREFIX)) return null;
  const id = gatewayAgentId.slice(AGENT_PREFIX.length);
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id) ? id : null;
}

interface ApprovalRequest {
  command?: unknown;
  commandText?: unknown;
  agentId?: unknown;
  sessionKey?: unknown;
  host?: unknown;
  cwd?: unknown;
}

const commandOf = (request: ApprovalRequest | undefined) =>
  capText(
    stripControlCharacters(String(request?.command ?? request?.commandText ?? '')),
    MAX_COMMAND_CHARS,
    'the gateway',
  ).text;

export function activityForEvent(event: string, payload: unknown): GatewayActivity | null {
  const p = (payload ?? {}) as { id?: unknown; request?: ApprovalRequest; decision?: unknown; resolvedBy?: unknown };
  if (event === 'exec.approval.requested') {
    const command = commandOf(p.request);
    return {
      type: 'gateway.exec_approval.requested',
      message: `Agent asks to run: ${command}`,
      agentId: agentIdFromGateway(p.request?.agentId),
      payload: { approval_id: String(p.id ?? ''), command, session_key: p.request?.sessionKey ?? null },
    };
  }
  if (event === 'exec.approval.resolved') {
    const decision = String(p.decision ?? 'deny');
    const expired = p.resolvedBy === null || p.resolvedBy === undefined;
    return {
      type: 'gateway.exec_approval.resolved',
      message: expired ? 'Exec approval expired on the gateway' : `Exec approval settled: ${decision}`,
      agentId: agentIdFromGateway(p.request?.agentId),
      payload: { approval_id: String(p.id ?? ''), decision, expired, command: commandOf(p.request) },
    };
  }
  return null;
}

export interface PendingExecApproval {
  id: string;
  command: string;
  agent_id: string | null;
  gateway_agent_id: string | null;
  session_key: string | null;
  host: string | null;
  cwd: string | null;
  requested_at: string | null;
  expires_at: string | null;
}

const iso = (ms: unknown) => (typeof ms === 'number' ? new Date(ms).toISOString() : null);
const text = (value: unknown) => (typeof value === 'string' ? value : null);

/** `exec.approval.list`'s answer in the API's shape; entries without an id are skipped. */
export function pendingExecApprovals(payload: unknown): PendingExecApproval[] {
  const list = Array.isArray(payload) ? payload : [];
  return list.flatMap((entry) => {
    const e = (entry ?? {}) as {
      id?: unknown;
      request?: ApprovalRequest;
      createdAtMs?: unknown;
      expiresAtMs?: unknown;
    };
    if (typeof e.id !== 'string') return [];
    return [
      {
        id: e.id,
        command: commandOf(e.request),
        agent_id: agentIdFromGateway(e.request?.agentId),
        gateway_agent_id: text(e.request?.agentId),
        session_key: text(e.request?.sessionKey),
        host: text(e.request?.host),
        cwd: text(e.request?.cwd),
        requested_at: iso(e.createdAtMs),
        expires_at: iso(e.expiresAtMs),
      },
    ];
  });
}
