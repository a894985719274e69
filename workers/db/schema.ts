/** The database schema. Change it here, then `npm run db:generate` writes the migration. */
import { sql } from 'drizzle-orm';
import { boolean, check, index, jsonb, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';

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
