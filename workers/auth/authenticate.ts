/**
 * Turns a presented credential into a Principal, or a named failure. No Hono here: the middleware
 * maps failures to responses, audit rows and rate limits.
 */
import type { Settings } from '../config';
import type { Database } from '../db/client';
import { findAgentByToken, findApiKey, findOperator, provisionOperator } from '../db/credentials';
import { constantTimeEqual, sha256Hex } from '../lib/crypto';
import { verifySessionJwt } from './jwt';
import type { AgentPrincipal, ApiKeyPrincipal, ApiKeyScope, Role, UserPrincipal } from './principal';

export const API_KEY_PREFIX = 'mce_';
export const AGENT_TOKEN_PREFIX = 'mca_';
export const LOCAL_SUBJECT = 'local';

export type Failure = { ok: false; reason: string; status: 401 | 423; organizationId?: string };
export type Verified<P> = { ok: true; principal: P } | Failure;

const fail = (reason: string, status: 401 | 423 = 401, organizationId?: string): Failure => ({
  ok: false,
  reason,
  status,
  organizationId,
});

export async function verifyApiKey(db: Database, secret: string): Promise<Verified<ApiKeyPrincipal>> {
  const row = await findApiKey(db, await sha256Hex(secret));
  if (!row) return fail('unknown_api_key');
  if (row.revoked) return fail('api_key_revoked', 401, row.organization_id);
  if (row.expired) return fail('api_key_expired', 401, row.organization_id);
  if (row.locked) return fail('organization_locked', 423, row.organization_id);
  return {
    ok: true,
    principal: {
      kind: 'api_key',
      apiKeyId: row.id,
      organizationId: row.organization_id,
      scopes: row.scopes as ApiKeyScope[],
    },
  };
}

export async function verifyAgentToken(db: Database, token: string): Promise<Verified<AgentPrincipal>> {
  const row = await findAgentByToken(db, await sha256Hex(token));
  if (!row) return fail('unknown_agent_token');
  if (row.locked) return fail('organization_locked', 423, row.organization_id);
  return {
    ok: true,
    principal: {
      kind: 'agent',
      agentId: row.id,
      organizationId: row.organization_id,
      boardId: row.board_id,
      isLead: row.is_lead,
    },
  };
}

export interface RequestOrigin {
  ip: string | null;
  userAgent: string | null;
  requestId: string;
}

/** Local token or session JWT → the user, provisioned with a Personal organization on first sight. */
export async function verifyOperator(
  db: Database,
  settings: Settings,
  token: string,
  origin: RequestOrigin,
): Promise<Verified<UserPrincipal>> {
  let subject: string;
  let issuedAt: number | null = null;
  let profile = { email: null as string | null, name: null as string | null };
  if (settings.AUTH_MODE === 'local') {
    if (!(await constantTimeEqual(token, settings.LOCAL_AUTH_TOKEN ?? ''))) return fail('wrong_local_token');
    subject = LOCAL_SUBJECT;
  } else {
    const result = await verifySessionJwt(token, settings);
    if (!result.ok) return fail(result.reason);
    ({ subject, issuedAt } = result.claims);
    profile = { email: result.claims.email, name: result.claims.name };
  }

  let row = await findOperator(db, subject);
  if (!row) {
    await provisionOperator(db, { subject, ...profile }, origin);
    row = await findOperator(db, subject);
    if (!row) return fail('provisioning_failed');
  }
  // revoke-all ends every session issued up to that instant. The local token has no issue time:
  // it is rotated by changing LOCAL_AUTH_TOKEN instead.
  if (row.revoked_after !== null && issuedAt !== null && issuedAt <= row.revoked_after) {
    return fail('session_revoked');
  }
  return {
    ok: true,
    principal: {
      kind: 'user',
      userId: row.user_id,
      subject,
      platformAdmin: settings.AUTH_MODE === 'local' || settings.PLATFORM_ADMIN_SUBJECTS.includes(subject),
      membership:
        row.member_id && row.organization_id && row.role
          ? {
              id: row.member_id,
              organizationId: row.organization_id,
              role: row.role as Role,
              allBoardsRead: row.all_boards_read === true,
              allBoardsWrite: row.all_boards_write === true,
            }
          : null,
    },
  };
}
