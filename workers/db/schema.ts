/** The database schema. Change it here, then `npm run db:generate` writes the migration. */
import { sql } from 'drizzle-orm';
import {
  type AnyPgColumn,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';
import { gateways } from './schema-gateways';

/**
 * Who did what: one row per mutation and per security event. Append-only; organizations are
 * referenced by id without a foreign key so rows outlive what they describe.
 */
export const auditLogs = pgTable(
  'audit_logs',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    organizationId: uuid('organization_id'),
    actorType: text('actor_type').notNull(),
    actorId: text('actor_id'),
    /** Dotted: `api_key.create`, `auth.failed`, `org.lock`. */
    action: text('action').notNull(),
    success: boolean('success').notNull().default(true),
    targetType: text('target_type'),
    targetId: text('target_id'),
    ip: text('ip'),
    userAgent: text('user_agent'),
    requestId: text('request_id'),
    details: jsonb('details').notNull().default({}),
  },
  (t) => [
    index('audit_logs_org_created_idx').on(t.organizationId, t.createdAt.desc()),
    index('audit_logs_created_idx').on(t.createdAt.desc()),
    index('audit_logs_org_action_idx').on(t.organizationId, t.action),
    check(
      'audit_logs_actor_type_check',
      sql`${t.actorType} in ('user', 'api_key', 'agent', 'webhook', 'system', 'anonymous')`,
    ),
  ],
);

const timestamps = {
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
};

/** Operators. `subject` is `local` in local mode, the JWT `sub` otherwise. */
export const users = pgTable('users', {
  id: uuid('id').primaryKey().defaultRandom(),
  subject: text('subject').notNull().unique(),
  email: text('email'),
  name: text('name'),
  activeOrganizationId: uuid('active_organization_id').references((): AnyPgColumn => organizations.id, {
    onDelete: 'set null',
  }),
  /** revoke-all: sessions issued before this instant are refused. */
  credentialsRevokedAt: timestamp('credentials_revoked_at', { withTimezone: true }),
  ...timestamps,
});

export const organizations = pgTable('organizations', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull(),
  /** While set, the organization's agents and API keys get 423. */
  lockedAt: timestamp('locked_at', { withTimezone: true }),
  ...timestamps,
});

export const organizationMembers = pgTable(
  'organization_members',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    role: text('role').notNull(),
    allBoardsRead: boolean('all_boards_read').notNull().default(false),
    allBoardsWrite: boolean('all_boards_write').notNull().default(false),
    ...timestamps,
  },
  (t) => [
    uniqueIndex('organization_members_org_user_idx').on(t.organizationId, t.userId),
    index('organization_members_user_idx').on(t.userId),
    check('organization_members_role_check', sql`${t.role} in ('owner', 'admin', 'member')`),
  ],
);

export const boardGroups = pgTable(
  'board_groups',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    description: text('description').notNull().default(''),
    ...timestamps,
  },
  (t) => [index('board_groups_org_idx').on(t.organizationId)],
);

/** Boards of tasks, with the workflow rules their tasks follow. */
export const boards = pgTable(
  'boards',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    description: text('description').notNull().default(''),
    /** A deleted group detaches its boards. */
    groupId: uuid('group_id').references(() => boardGroups.id, { onDelete: 'set null' }),
    /** The gateway its agents run on; deleting the gateway detaches its boards. */
    gatewayId: uuid('gateway_id').references((): AnyPgColumn => gateways.id, { onDelete: 'set null' }),
    requireApprovalForDone: boolean('require_approval_for_done').notNull().default(true),
    requireReviewBeforeDone: boolean('require_review_before_done').notNull().default(false),
    commentRequiredForReview: boolean('comment_required_for_review').notNull().default(false),
    blockStatusChangesWithPendingApproval: boolean('block_status_changes_with_pending_approval')
      .notNull()
      .default(false),
    onlyLeadCanChangeStatus: boolean('only_lead_can_change_status').notNull().default(false),
    /** Worker agents allowed on the board, the lead not counted. */
    maxAgents: integer('max_agents').notNull().default(10),
    ...timestamps,
  },
  (t) => [
    index('boards_org_idx').on(t.organizationId),
    index('boards_group_idx').on(t.groupId),
    check('boards_max_agents_check', sql`${t.maxAgents} between 0 and 1000`),
  ],
);

export const memberBoardAccess = pgTable(
  'member_board_access',
  {
    memberId: uuid('member_id')
      .notNull()
      .references(() => organizationMembers.id, { onDelete: 'cascade' }),
    boardId: uuid('board_id')
      .notNull()
      .references(() => boards.id, { onDelete: 'cascade' }),
    canRead: boolean('can_read').notNull().default(true),
    canWrite: boolean('can_write').notNull().default(false),
  },
  (t) => [primaryKey({ columns: [t.memberId, t.boardId] })],
);

export const invites = pgTable(
  'invites',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    email: text('email'),
    role: text('role').notNull(),
    allBoardsRead: boolean('all_boards_read').notNull().default(false),
    allBoardsWrite: boolean('all_boards_write').notNull().default(false),
    tokenHash: text('token_hash').notNull().unique(),
    invitedBy: uuid('invited_by').references(() => users.id, { onDelete: 'set null' }),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    acceptedAt: timestamp('accepted_at', { withTimezone: true }),
    acceptedBy: uuid('accepted_by').references(() => users.id, { onDelete: 'set null' }),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index('invites_org_idx').on(t.organizationId),
    check('invites_role_check', sql`${t.role} in ('admin', 'member')`),
  ],
);

export const apiKeys = pgTable(
  'api_keys',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    /** First characters of the secret, to tell keys apart in lists. */
    prefix: text('prefix').notNull(),
    keyHash: text('key_hash').notNull().unique(),
    scopes: text('scopes').array().notNull(),
    createdBy: uuid('created_by').references(() => users.id, { onDelete: 'set null' }),
    expiresAt: timestamp('expires_at', { withTimezone: true }),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index('api_keys_org_idx').on(t.organizationId),
    check('api_keys_scopes_check', sql`${t.scopes} <@ array['admin', 'read', 'write', 'approvals']::text[]`),
  ],
);

/** AI agents on a board; the gateway issue provisions them on their gateway. */
export const agents = pgTable(
  'agents',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    boardId: uuid('board_id')
      .notNull()
      .references(() => boards.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    isLead: boolean('is_lead').notNull().default(false),
    /** SHA-256 of the current token; null once revoked. Unique, so lookup is one index probe. */
    tokenHash: text('token_hash').unique(),
    tokenPrefix: text('token_prefix'),
    tokenRevokedAt: timestamp('token_revoked_at', { withTimezone: true }),
    lastSeenAt: timestamp('last_seen_at', { withTimezone: true }),
    /** Lifecycle on the gateway; `online` older than 10 minutes of silence reads as offline. */
    status: text('status').notNull().default('provisioning'),
    provisionError: text('provision_error'),
    ...timestamps,
  },
  (t) => [
    index('agents_org_idx').on(t.organizationId),
    index('agents_board_idx').on(t.boardId),
    uniqueIndex('agents_one_lead_per_board_idx').on(t.boardId).where(sql`${t.isLead}`),
    check('agents_status_check', sql`${t.status} in ('provisioning', 'online', 'offline', 'updating', 'deleting')`),
  ],
);
