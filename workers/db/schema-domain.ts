/** The Mission Control domain: board groups, tasks, dependencies, comments, approvals, memory, activity. */
import { sql } from 'drizzle-orm';
import {
  bigserial,
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
import { agents, boards, organizations, users } from './schema';

const createdAt = timestamp('created_at', { withTimezone: true }).notNull().defaultNow();
const updatedAt = timestamp('updated_at', { withTimezone: true }).notNull().defaultNow();
const organizationId = () =>
  uuid('organization_id')
    .notNull()
    .references(() => organizations.id, { onDelete: 'cascade' });
const boardId = () =>
  uuid('board_id')
    .notNull()
    .references(() => boards.id, { onDelete: 'cascade' });

/** Organization-defined typed fields that tasks carry in `custom_fields`. */
export const customFieldDefinitions = pgTable(
  'custom_field_definitions',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    organizationId: organizationId(),
    key: text('key').notNull(),
    label: text('label').notNull(),
    fieldType: text('field_type').notNull(),
    required: boolean('required').notNull().default(false),
    createdAt,
  },
  (t) => [
    uniqueIndex('custom_field_definitions_org_key_idx').on(t.organizationId, t.key),
    check(
      'custom_field_definitions_type_check',
      sql`${t.fieldType} in ('text', 'integer', 'decimal', 'boolean', 'date', 'date_time', 'url', 'json')`,
    ),
  ],
);

export const tasks = pgTable(
  'tasks',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    organizationId: organizationId(),
    boardId: boardId(),
    title: text('title').notNull(),
    description: text('description').notNull().default(''),
    status: text('status').notNull().default('inbox'),
    priority: text('priority').notNull().default('medium'),
    dueAt: timestamp('due_at', { withTimezone: true }),
    assigneeAgentId: uuid('assignee_agent_id').references(() => agents.id, { onDelete: 'set null' }),
    createdByUserId: uuid('created_by_user_id').references(() => users.id, { onDelete: 'set null' }),
    createdByAgentId: uuid('created_by_agent_id').references(() => agents.id, { onDelete: 'set null' }),
    tags: text('tags').array().notNull().default(sql`'{}'::text[]`),
    customFields: jsonb('custom_fields').notNull().default({}),
    /** Optimistic concurrency: every change is `... WHERE version = $expected` and bumps it. */
    version: integer('version').notNull().default(1),
    doneAt: timestamp('done_at', { withTimezone: true }),
    createdAt,
    updatedAt,
  },
  (t) => [
    index('tasks_board_status_idx').on(t.boardId, t.status, t.createdAt, t.id),
    index('tasks_assignee_idx').on(t.assigneeAgentId),
    index('tasks_org_idx').on(t.organizationId),
    check('tasks_status_check', sql`${t.status} in ('inbox', 'in_progress', 'review', 'done')`),
    check('tasks_priority_check', sql`${t.priority} in ('low', 'medium', 'high', 'urgent')`),
  ],
);

/** `task_id` cannot leave inbox until every `depends_on_task_id` is done. */
export const taskDependencies = pgTable(
  'task_dependencies',
  {
    taskId: uuid('task_id')
      .notNull()
      .references(() => tasks.id, { onDelete: 'cascade' }),
    dependsOnTaskId: uuid('depends_on_task_id')
      .notNull()
      .references(() => tasks.id, { onDelete: 'cascade' }),
  },
  (t) => [
    primaryKey({ columns: [t.taskId, t.dependsOnTaskId] }),
    index('task_dependencies_depends_on_idx').on(t.dependsOnTaskId),
    check('task_dependencies_not_self_check', sql`${t.taskId} <> ${t.dependsOnTaskId}`),
  ],
);

export const taskComments = pgTable(
  'task_comments',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    organizationId: organizationId(),
    boardId: boardId(),
    taskId: uuid('task_id')
      .notNull()
      .references(() => tasks.id, { onDelete: 'cascade' }),
    authorType: text('author_type').notNull(),
    authorId: uuid('author_id'),
    body: text('body').notNull(),
    createdAt,
  },
  (t) => [
    index('task_comments_task_idx').on(t.taskId, t.createdAt),
    check('task_comments_author_type_check', sql`${t.authorType} in ('user', 'agent', 'api_key')`),
  ],
);

export const approvals = pgTable(
  'approvals',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    organizationId: organizationId(),
    boardId: boardId(),
    actionType: text('action_type').notNull(),
    payload: jsonb('payload').notNull().default({}),
    confidence: integer('confidence').notNull(),
    rubricScores: jsonb('rubric_scores'),
    status: text('status').notNull().default('pending'),
    requestedByType: text('requested_by_type').notNull(),
    requestedById: uuid('requested_by_id'),
    resolvedByUserId: uuid('resolved_by_user_id').references(() => users.id, { onDelete: 'set null' }),
    resolutionNote: text('resolution_note'),
    resolvedAt: timestamp('resolved_at', { withTimezone: true }),
    createdAt,
  },
  (t) => [
    index('approvals_board_status_idx').on(t.boardId, t.status, t.createdAt),
    check('approvals_status_check', sql`${t.status} in ('pending', 'approved', 'rejected')`),
    check('approvals_confidence_check', sql`${t.confidence} between 0 and 100`),
  ],
);

/** The tasks an approval covers; `pending` mirrors the approval so one index keeps one pending per task. */
export const approvalTasks = pgTable(
  'approval_tasks',
  {
    approvalId: uuid('approval_id')
      .notNull()
      .references(() => approvals.id, { onDelete: 'cascade' }),
    taskId: uuid('task_id')
      .notNull()
      .references(() => tasks.id, { onDelete: 'cascade' }),
    pending: boolean('pending').notNull().default(true),
  },
  (t) => [
    primaryKey({ columns: [t.approvalId, t.taskId] }),
    uniqueIndex('approval_tasks_one_pending_per_task_idx').on(t.taskId).where(sql`${t.pending}`),
  ],
);

/** Board memory; entries tagged `chat` are the board's chat. */
export const boardMemory = pgTable(
  'board_memory',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    organizationId: organizationId(),
    boardId: boardId(),
    content: text('content').notNull(),
    tags: text('tags').array().notNull().default(sql`'{}'::text[]`),
    source: text('source'),
    authorType: text('author_type').notNull(),
    authorId: uuid('author_id'),
    createdAt,
  },
  (t) => [index('board_memory_board_idx').on(t.boardId, t.createdAt)],
);

/**
 * Every domain change, in commit order. The id is the live event's sequence number, so a publish
 * lost between commit and event hub shows up to subscribers as a gap they can fill from here.
 */
export const activityEvents = pgTable(
  'activity_events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    organizationId: organizationId(),
    boardId: uuid('board_id').references(() => boards.id, { onDelete: 'set null' }),
    taskId: uuid('task_id').references(() => tasks.id, { onDelete: 'set null' }),
    agentId: uuid('agent_id').references(() => agents.id, { onDelete: 'set null' }),
    type: text('type').notNull(),
    message: text('message').notNull(),
    actorType: text('actor_type').notNull(),
    actorId: uuid('actor_id'),
    payload: jsonb('payload').notNull().default({}),
    createdAt,
  },
  (t) => [
    index('activity_events_org_id_idx').on(t.organizationId, t.id),
    index('activity_events_board_id_idx').on(t.boardId, t.id),
  ],
);

/** Single-use, short-lived tickets that let a browser open the events WebSocket (it cannot set headers). */
export const eventTickets = pgTable(
  'event_tickets',
  {
    ticketHash: text('ticket_hash').primaryKey(),
    organizationId: organizationId(),
    principalType: text('principal_type').notNull(),
    principalId: uuid('principal_id').notNull(),
    boardId: uuid('board_id'),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    usedAt: timestamp('used_at', { withTimezone: true }),
    createdAt,
  },
  (t) => [index('event_tickets_expires_idx').on(t.expiresAt)],
);
