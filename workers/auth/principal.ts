/** Who is making a request, once their credential has been verified. */

export const ROLES = ['member', 'admin', 'owner'] as const;
export type Role = (typeof ROLES)[number];
export const API_KEY_SCOPES = ['admin', 'read', 'write', 'approvals'] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];

export interface Membership {
  id: string;
  organizationId: string;
  role: Role;
  allBoardsRead: boolean;
  allBoardsWrite: boolean;
}

export interface UserPrincipal {
  kind: 'user';
  userId: string;
  subject: string;
  platformAdmin: boolean;
  /** The membership in the user's active organization, if any. */
  membership: Membership | null;
}

export interface ApiKeyPrincipal {
  kind: 'api_key';
  apiKeyId: string;
  organizationId: string;
  scopes: ApiKeyScope[];
}

export interface AgentPrincipal {
  kind: 'agent';
  agentId: string;
  organizationId: string;
  boardId: string;
  isLead: boolean;
}

export type Principal = UserPrincipal | ApiKeyPrincipal | AgentPrincipal;

/** The organization a principal acts in, or null for a user with no active organization. */
export function organizationOf(principal: Principal): string | null {
  return principal.kind === 'user' ? (principal.membership?.organizationId ?? null) : principal.organizationId;
}

export function actorId(principal: Principal): string {
  if (principal.kind === 'user') return principal.userId;
  return principal.kind === 'api_key' ? principal.apiKeyId : principal.agentId;
}

export function roleAtLeast(role: Role, minimum: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(minimum);
}
