/**
 * The one authorization layer every route uses: who may call it (operator role, API key scope,
 * platform admin) and in which organization the call acts.
 */
import { AppError } from '../lib/errors';
import {
  type AgentPrincipal,
  type ApiKeyScope,
  type Principal,
  type Role,
  roleAtLeast,
  type UserPrincipal,
} from './principal';

export interface AccessRule {
  /** Lowest organization role an operator needs; `false` keeps operators out. Default `member`. */
  user?: Role | false;
  /** Scope an API key needs; `false` (the default) keeps API keys out. */
  apiKey?: ApiKeyScope | false;
}

export interface Access {
  principal: Principal;
  organizationId: string;
}

const forbidden = (message: string) => new AppError(403, 'forbidden', message);

export function hasScope(scopes: readonly ApiKeyScope[], needed: ApiKeyScope): boolean {
  if (scopes.includes('admin') || scopes.includes(needed)) return true;
  return needed === 'read' && (scopes.includes('write') || scopes.includes('approvals'));
}

/** Checks `rule` for an operator or API key acting in its organization. */
export function authorize(principal: Principal, rule: AccessRule): Access {
  switch (principal.kind) {
    case 'user': {
      const minimum = rule.user ?? 'member';
      if (minimum === false) throw forbidden('Operators cannot use this route.');
      if (!principal.membership)
        throw forbidden('Select an organization first (PATCH /api/v1/organizations/me/active).');
      if (!roleAtLeast(principal.membership.role, minimum)) throw forbidden(`This needs the ${minimum} role.`);
      return { principal, organizationId: principal.membership.organizationId };
    }
    case 'api_key': {
      if (!rule.apiKey) throw forbidden('API keys cannot use this route.');
      if (!hasScope(principal.scopes, rule.apiKey)) throw forbidden(`This API key lacks the ${rule.apiKey} scope.`);
      return { principal, organizationId: principal.organizationId };
    }
    case 'agent':
      throw forbidden('Agents use /api/v1/agent/*.');
  }
}

/** Operator routes that need no organization (own profile, organization list, bootstrap). */
export function requireUser(principal: Principal): UserPrincipal {
  if (principal.kind !== 'user') throw forbidden('Only operators can use this route.');
  return principal;
}

export function requirePlatformAdmin(principal: Principal): UserPrincipal {
  const user = requireUser(principal);
  if (!user.platformAdmin) throw forbidden('Only platform administrators can do this.');
  return user;
}

export function requireAgent(principal: Principal): AgentPrincipal {
  if (principal.kind !== 'agent') throw forbidden('Only agents can use this route.');
  return principal;
}
