/**
 * Which gateway methods the relay passes on, and the permission each needs. Anything not listed is
 * refused: the gateway token has admin scopes, so the list is the boundary.
 */
import { type AccessRule, authorize } from '../auth/policy';
import type { Principal } from '../auth/principal';
import type { Database } from '../db/client';
import { getAgent } from './agents';
import { boardViewer } from './boards';
import { agentIdFromGateway } from './gateway-events';

export type RpcPermission = 'read' | 'write' | 'approvals' | 'admin';

export interface RpcRule {
  permission: RpcPermission;
  /** A read: safe to repeat after a reconnect, and not audited. */
  idempotent: boolean;
}

const read: RpcRule = { permission: 'read', idempotent: true };
const write: RpcRule = { permission: 'write', idempotent: false };
const admin: RpcRule = { permission: 'admin', idempotent: false };

export const RPC_METHODS: Readonly<Record<string, RpcRule>> = {
  health: read,
  status: read,
  'agents.list': read,
  'agents.files.list': read,
  'agents.files.get': read,
  'sessions.list': read,
  'chat.history': read,
  'models.list': read,
  'exec.approval.list': read,
  'exec.approval.get': read,
  'chat.send': write,
  'sessions.patch': write,
  'sessions.reset': write,
  'exec.approval.resolve': { permission: 'approvals', idempotent: false },
  'config.get': { permission: 'admin', idempotent: true },
  'config.patch': admin,
  'agents.create': admin,
  'agents.update': admin,
  'agents.delete': admin,
  'agents.files.set': admin,
  'agents.files.delete': admin,
  'sessions.delete': admin,
};

const ACCESS: Record<RpcPermission, AccessRule> = {
  read: { user: 'member', apiKey: 'read' },
  write: { user: 'member', apiKey: 'write' },
  approvals: { user: 'member', apiKey: 'approvals' },
  admin: { user: 'admin', apiKey: 'admin' },
};

export const rpcAccess = (permission: RpcPermission): AccessRule => ACCESS[permission];

/**
 * Writing into a gateway session: a Mission Control agent's session (`agent:mce-<id>:…`) needs write
 * access to that agent's board (404 when the caller cannot see it); any other session needs admin.
 */
export async function sessionMessagePermission(
  db: Database,
  principal: Principal,
  sessionKey: string,
): Promise<{ permission: RpcPermission; agentId: string | null }> {
  const agentId = agentIdFromGateway(sessionKey.split(':')[1]);
  if (!agentId) return { permission: 'admin', agentId: null };
  const { organizationId } = authorize(principal, rpcAccess('write'));
  await getAgent(db, boardViewer(principal, organizationId, 'write'), agentId);
  return { permission: 'write', agentId };
}
