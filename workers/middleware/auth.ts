import type { Context, MiddlewareHandler } from 'hono';
import {
  AGENT_TOKEN_PREFIX,
  API_KEY_PREFIX,
  type Failure,
  verifyAgentToken,
  verifyApiKey,
  verifyOperator,
} from '../auth/authenticate';
import { actorId, organizationOf, type Principal } from '../auth/principal';
import { openDatabase } from '../db/client';
import { clientKey } from '../lib/client-ip';
import { AppError } from '../lib/errors';
import { log } from '../lib/log';
import { tooManyRequests } from '../lib/rate-limiter';
import { isPublicRoute } from '../routes/registry';
import { type AuditContext, auditInsert } from '../services/audit';
import { rateLimiterFor } from '../services/rate-limit';
import type { AppEnv } from '../types';

const AGENT_API = '/api/v1/agent/';

function bearer(c: Context<AppEnv>): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('Authorization') ?? '');
  return match?.[1];
}

export function clientIp(c: Context<AppEnv>): string | null {
  return c.req.header('CF-Connecting-IP') ?? null;
}

function unauthenticated(): AppError {
  // One message for every failure, so nothing tells an unknown credential from a revoked one.
  return new AppError(401, 'unauthenticated', 'Missing or invalid credentials.', {
    headers: { 'WWW-Authenticate': 'Bearer realm="mission-control", error="invalid_token"' },
  });
}

function locked(): AppError {
  return new AppError(423, 'organization_locked', 'This organization is locked; an owner must unlock it.');
}

/**
 * Verifies the credential on every non-public /api/v1 route (one indexed query, no cache) and sets
 * `principal`, `db` and the audit context. Agents use /api/v1/agent/* only; operators and API keys
 * everything else. Failures are audited and rate limited per client IP, so refused credentials
 * can be neither guessed quickly nor used to flood the audit log.
 */
export function authenticate(): MiddlewareHandler<AppEnv> {
  return async function authenticateMiddleware(c, next) {
    if (isPublicRoute(c.req.method, c.req.path)) return next();
    const settings = c.var.settings;
    const limiter = rateLimiterFor(c.env, settings);
    const db = await openDatabase(settings);
    const origin = { ip: clientIp(c), userAgent: c.req.header('User-Agent') ?? null, requestId: c.var.requestId };
    const agentRoute = c.req.path.startsWith(AGENT_API);
    const token = agentRoute ? (c.req.header('X-Agent-Token') ?? bearer(c)) : bearer(c);
    // Cloudflare always sets CF-Connecting-IP. Agents share gateway IPs, so their failures have
    // their own budget; an operator request without an IP (local tools) is not counted.
    const failures = agentRoute
      ? { key: `agent-auth-failed:${clientKey(origin.ip)}`, rule: settings.AGENT_AUTH_FAILURE_LIMIT }
      : origin.ip
        ? { key: `auth-failed:${clientKey(origin.ip)}`, rule: settings.AUTH_FAILURE_LIMIT }
        : null;
    if (failures) {
      const budget = await limiter.peek(failures.key, failures.rule);
      if (!budget.allowed) throw tooManyRequests(budget);
    }

    const refuse = async (failure: Failure, actorType: AuditContext['actorType']) => {
      // Counted atomically after the check: of many concurrent failures exactly the rule's limit
      // get their 401 (and audit row); the rest are refused as rate limited.
      if (failures && failure.status === 401) {
        const decision = await limiter.limit(failures.key, failures.rule);
        if (!decision.allowed) throw tooManyRequests(decision);
      }
      const prefix = token?.slice(0, 6) ?? null;
      // Only the first characters, under a key the redactor lets through, to correlate attempts.
      log('warn', 'auth.failed', {
        reason: failure.reason,
        presented_prefix: prefix,
        ip: origin.ip,
        request_id: origin.requestId,
      });
      await auditInsert(
        db,
        { ...origin, organizationId: failure.organizationId ?? null, actorType, actorId: null },
        {
          action: 'auth.failed',
          success: false,
          details: { reason: failure.reason, token_prefix: prefix, path: c.req.path },
        },
      );
      throw failure.status === 423 ? locked() : unauthenticated();
    };

    let principal: Principal;
    if (agentRoute) {
      if (!token) throw unauthenticated();
      const result = await verifyAgentToken(db, token);
      if (!result.ok) return refuse(result, 'agent');
      const decision = await limiter.limit(`agent:${result.principal.agentId}`, settings.AGENT_RATE_LIMIT);
      if (!decision.allowed) throw tooManyRequests(decision);
      principal = result.principal;
    } else if (!token) {
      throw unauthenticated();
    } else if (token.startsWith(API_KEY_PREFIX)) {
      const result = await verifyApiKey(db, token);
      if (!result.ok) return refuse(result, 'api_key');
      principal = result.principal;
    } else if (token.startsWith(AGENT_TOKEN_PREFIX)) {
      // An agent token outside the agent API: refuse without a lookup, it cannot act here.
      return refuse({ ok: false, reason: 'agent_token_outside_agent_api', status: 401 }, 'agent');
    } else {
      const result = await verifyOperator(db, settings, token, origin);
      if (!result.ok) return refuse(result, 'user');
      principal = result.principal;
    }

    c.set('principal', principal);
    c.set('db', db);
    c.set('audited', false);
    c.set('audit', {
      ...origin,
      organizationId: organizationOf(principal),
      actorType: principal.kind,
      actorId: actorId(principal),
    });
    await next();
  };
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * A mutation that failed after authentication still leaves an audit row, whatever the handler
 * did: handlers mark `audited` when their own batch wrote one.
 */
export function auditFailedMutations(): MiddlewareHandler<AppEnv> {
  return async function auditFailedMutationsMiddleware(c, next) {
    await next();
    // Hono has already turned a thrown error into the response; c.error keeps the error itself.
    const status = c.res.status;
    if (!MUTATING.has(c.req.method) || status < 400 || !c.var.principal || c.var.audited) return;
    try {
      await auditInsert(c.var.db, c.var.audit, {
        action: 'request.failed',
        success: false,
        details: {
          method: c.req.method,
          path: c.req.path,
          status,
          code: c.error instanceof AppError ? c.error.code : null,
        },
      });
    } catch (err) {
      log('error', 'audit.write_failed', { request_id: c.var.requestId, error: (err as Error).message });
    }
  };
}
