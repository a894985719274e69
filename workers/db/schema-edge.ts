/**
 * The internet-facing edge: board webhooks, the payloads they accepted and their delivery state,
 * and deployment-wide flags (emergency shutdown).
 */
import { sql } from 'drizzle-orm';
import {
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';
import { agents, boards, organizations } from './schema';

const createdAt = timestamp('created_at', { withTimezone: true }).notNull().defaultNow();
const updatedAt = timestamp('updated_at', { withTimezone: true }).notNull().defaultNow();

/** A board's inbound webhook. The secret is AES-GCM ciphertext (lib/secret-box.ts), never plaintext. */
export const boardWebhooks = pgTable(
  'board_webhooks',
  {
    /** Chosen by the Worker: it is bound into the secret's ciphertext before the row exists. */
    id: uuid('id').primaryKey(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    boardId: uuid('board_id')
      .notNull()
      .references(() => boards.id, { onDelete: 'cascade' }),
    /** What the payloads are and what the agent should do with them. */
    description: text('description').notNull(),
    enabled: boolean('enabled').notNull().default(true),
    /** Receives the payloads instead of the board lead when set. */
    agentId: uuid('agent_id').references(() => agents.id, { onDelete: 'set null' }),
    secretCiphertext: text('secret_ciphertext'),
    signatureHeader: text('signature_header'),
    createdAt,
    updatedAt,
  },
  (t) => [index('board_webhooks_board_idx').on(t.boardId, t.createdAt)],
);

export const PAYLOAD_STATUSES = ['pending', 'delivered', 'blocked', 'dead_lettered'] as const;

/**
 * Every payload answered with 202, and where its delivery stands. The queue cannot be counted,
 * so this table is also the queue's depth: `pending` rows are in flight or waiting for the sweep.
 */
export const boardWebhookPayloads = pgTable(
  'board_webhook_payloads',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    boardId: uuid('board_id')
      .notNull()
      .references(() => boards.id, { onDelete: 'cascade' }),
    webhookId: uuid('webhook_id')
      .notNull()
      .references(() => boardWebhooks.id, { onDelete: 'cascade' }),
    /** From X-GitHub-Delivery, X-Webhook-Id or Idempotency-Key: a repeat stores nothing new. */
    deliveryId: text('delivery_id'),
    /** `json`: the parsed body; `text`: a JSON string; `base64`: bytes that are not storable text. */
    encoding: text('encoding').notNull(),
    payload: jsonb('payload').notNull(),
    byteSize: integer('byte_size').notNull(),
    contentType: text('content_type'),
    userAgent: text('user_agent'),
    headers: jsonb('headers').notNull().default({}),
    sourceIp: text('source_ip'),
    status: text('status').notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    lastError: text('last_error'),
    /** Last hand-off to the queue; the sweep re-enqueues pending rows older than this. */
    enqueuedAt: timestamp('enqueued_at', { withTimezone: true }).notNull().defaultNow(),
    deliveredAt: timestamp('delivered_at', { withTimezone: true }),
    createdAt,
  },
  (t) => [
    uniqueIndex('board_webhook_payloads_delivery_idx').on(t.webhookId, t.deliveryId),
    index('board_webhook_payloads_webhook_idx').on(t.webhookId, t.createdAt),
    index('board_webhook_payloads_pending_idx').on(t.enqueuedAt).where(sql`${t.status} = 'pending'`),
    check(
      'board_webhook_payloads_status_check',
      sql`${t.status} in ('pending', 'delivered', 'blocked', 'dead_lettered')`,
    ),
    check('board_webhook_payloads_encoding_check', sql`${t.encoding} in ('json', 'text', 'base64')`),
  ],
);

/** Deployment-wide switches, read by every isolate (emergency shutdown). */
export const platformFlags = pgTable('platform_flags', {
  name: text('name').primaryKey(),
  enabled: boolean('enabled').notNull(),
  reason: text('reason'),
  updatedBy: text('updated_by'),
  updatedAt,
});
