/**
 * Board webhooks: their configuration (secrets sealed with lib/secret-box.ts, never returned) and
 * the payloads they accepted.
 */
import { type SQL, sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import { fromRow, parseJson } from '../db/rows';
import { boards } from '../db/schema';
import { boardWebhookPayloads, boardWebhooks } from '../db/schema-edge';
import { AppError } from '../lib/errors';
import { type EncryptionKeys, encryptSecret } from '../lib/secret-box';
import type { ActivityEvent } from './activity';
import { jsonb, runChange } from './activity-feed';
import type { AuditContext } from './audit';
import { type BoardViewer, boardNotFound, boardOpenTo } from './boards';

export type Webhook = typeof boardWebhooks.$inferSelect;
export type WebhookPayload = typeof boardWebhookPayloads.$inferSelect;

export interface WebhookFields {
  description?: string;
  enabled?: boolean;
  agent_id?: string | null;
  /** A new secret; null removes it. */
  secret?: string | null;
  signature_header?: string | null;
}

/** The context a webhook secret's ciphertext is bound to, so it cannot be moved to another row. */
export const webhookSecretContext = (webhookId: string) => `board_webhooks.secret:${webhookId}`;

export const webhookNotFound = () => new AppError(404, 'not_found', 'No such webhook.');
const noSuchAgent = () =>
  new AppError(422, 'validation_failed', 'The target agent is not on this board.', {
    details: { issues: [{ path: 'agent_id', message: 'must be an agent of this board' }] },
  });

/** The board (visible to `viewer`) and, when given, that the agent is on it: CTE `b`. */
function boardAndAgent(db: Database, viewer: BoardViewer, boardId: string, agentId: string | null | undefined): SQL {
  const agentOk = agentId
    ? sql`EXISTS (SELECT 1 FROM agents a WHERE a.id = ${agentId}::uuid AND a.board_id = boards.id)`
    : sql`true`;
  return sql`b AS (SELECT id, organization_id, ${agentOk} AS agent_ok FROM boards
    WHERE id = ${boardId}::uuid AND organization_id = ${viewer.organizationId}::uuid
      AND ${boardOpenTo(db, viewer, boards.id)})`;
}

const activityPayload = sql`jsonb_build_object('webhook_id', changed.id, 'enabled', changed.enabled,
  'agent_id', changed.agent_id, 'has_secret', changed.secret_ciphertext IS NOT NULL)`;

export async function createWebhook(
  db: Database,
  ctx: AuditContext,
  keys: EncryptionKeys,
  viewer: BoardViewer,
  boardId: string,
  input: WebhookFields & { description: string },
): Promise<{ webhook: Webhook; events: ActivityEvent[] }> {
  const id = crypto.randomUUID();
  const sealed = input.secret ? await encryptSecret(input.secret, keys, webhookSecretContext(id)) : null;
  const { rows, events, extra } = await runChange(db, ctx, {
    before: [boardAndAgent(db, viewer, boardId, input.agent_id)],
    change: sql`INSERT INTO board_webhooks (id, organization_id, board_id, description, enabled, agent_id,
        secret_ciphertext, signature_header)
      SELECT ${id}::uuid, organization_id, id, ${input.description}::text, ${input.enabled ?? true}::boolean,
        ${input.agent_id ?? null}::uuid, ${sealed}::text, ${input.signature_header ?? null}::text
      FROM b WHERE b.agent_ok
      RETURNING *`,
    audit: {
      action: 'webhook.create',
      targetType: 'webhook',
      details: jsonb({ board_id: boardId, has_secret: sealed !== null, agent_id: input.agent_id ?? null }),
    },
    activity: [
      {
        type: 'webhook.created',
        message: sql`'Webhook created'`,
        boardId: sql`changed.board_id`,
        payload: activityPayload,
      },
    ],
    extra: { board_found: sql`EXISTS (SELECT 1 FROM b)` },
  });
  const [row] = rows;
  if (!row) throw extra.board_found ? noSuchAgent() : boardNotFound();
  return { webhook: fromRow(boardWebhooks, row), events };
}

export async function updateWebhook(
  db: Database,
  ctx: AuditContext,
  keys: EncryptionKeys,
  viewer: BoardViewer,
  boardId: string,
  id: string,
  input: WebhookFields,
): Promise<{ webhook: Webhook; events: ActivityEvent[] }> {
  const sets: SQL[] = [sql`updated_at = now()`];
  if (input.description !== undefined) sets.push(sql`description = ${input.description}::text`);
  if (input.enabled !== undefined) sets.push(sql`enabled = ${input.enabled}::boolean`);
  if (input.agent_id !== undefined) sets.push(sql`agent_id = ${input.agent_id}::uuid`);
  if (input.signature_header !== undefined) sets.push(sql`signature_header = ${input.signature_header}::text`);
  if (input.secret !== undefined) {
    const sealed = input.secret === null ? null : await encryptSecret(input.secret, keys, webhookSecretContext(id));
    sets.push(sql`secret_ciphertext = ${sealed}::text`);
  }
  // Names of the changed settings only: a secret's value never reaches audit or activity rows.
  const changes = Object.keys(input).filter((k) => input[k as keyof WebhookFields] !== undefined);
  const { rows, events, extra } = await runChange(db, ctx, {
    before: [boardAndAgent(db, viewer, boardId, input.agent_id)],
    change: sql`UPDATE board_webhooks SET ${sql.join(sets, sql`, `)}
      WHERE id = ${id}::uuid AND board_id = ${boardId}::uuid AND EXISTS (SELECT 1 FROM b WHERE b.agent_ok)
      RETURNING *`,
    audit: { action: 'webhook.update', targetType: 'webhook', details: jsonb({ board_id: boardId, changes }) },
    activity: [
      {
        type: 'webhook.updated',
        message: sql`'Webhook updated'`,
        boardId: sql`changed.board_id`,
        payload: sql`${activityPayload} || jsonb_build_object('changes', ${JSON.stringify(changes)}::jsonb)`,
      },
    ],
    extra: {
      board_found: sql`EXISTS (SELECT 1 FROM b)`,
      agent_ok: sql`coalesce((SELECT agent_ok FROM b), false)`,
    },
  });
  const [row] = rows;
  if (!row) throw !extra.board_found ? boardNotFound() : !extra.agent_ok ? noSuchAgent() : webhookNotFound();
  return { webhook: fromRow(boardWebhooks, row), events };
}

/** Deletes the webhook and, through the foreign key, its stored payloads. */
export async function deleteWebhook(
  db: Database,
  ctx: AuditContext,
  viewer: BoardViewer,
  boardId: string,
  id: string,
): Promise<{ events: ActivityEvent[] }> {
  const { rows, events } = await runChange(db, ctx, {
    before: [boardAndAgent(db, viewer, boardId, null)],
    change: sql`DELETE FROM board_webhooks
      WHERE id = ${id}::uuid AND board_id = ${boardId}::uuid AND EXISTS (SELECT 1 FROM b)
      RETURNING *`,
    audit: { action: 'webhook.delete', targetType: 'webhook', details: jsonb({ board_id: boardId }) },
    activity: [
      {
        type: 'webhook.deleted',
        message: sql`'Webhook deleted'`,
        boardId: sql`changed.board_id`,
        payload: activityPayload,
      },
    ],
  });
  if (!rows.length) throw webhookNotFound();
  return { events };
}

/** One read with the visibility check: rows of `table` under a board the viewer may read. */
async function readUnderBoard(
  db: Database,
  viewer: BoardViewer,
  boardId: string,
  query: (visible: SQL) => SQL,
): Promise<Record<string, unknown>[]> {
  const visible = sql`EXISTS (SELECT 1 FROM boards WHERE id = ${boardId}::uuid
    AND organization_id = ${viewer.organizationId}::uuid AND ${boardOpenTo(db, viewer, boards.id)})`;
  const { rows } = await db.execute<Record<string, unknown>>(query(visible));
  return rows;
}

export async function listWebhooks(
  db: Database,
  viewer: BoardViewer,
  boardId: string,
  page: { limit: number; offset: number },
): Promise<{ items: Webhook[]; total: number }> {
  const [row] = await readUnderBoard(
    db,
    viewer,
    boardId,
    (visible) => sql`WITH page AS (SELECT * FROM board_webhooks WHERE board_id = ${boardId}::uuid AND ${visible}
        ORDER BY created_at, id LIMIT ${page.limit}::int OFFSET ${page.offset}::int)
      SELECT ${visible} AS board_found,
        (SELECT count(*)::int FROM board_webhooks WHERE board_id = ${boardId}::uuid AND ${visible}) AS total,
        (SELECT coalesce(json_agg(page ORDER BY page.created_at, page.id), '[]'::json) FROM page) AS items`,
  );
  if (!row?.board_found) throw boardNotFound();
  const items = parseJson<Record<string, unknown>[]>(row.items);
  return { items: items.map((r) => fromRow(boardWebhooks, r)), total: Number(row.total) };
}

export async function getWebhook(db: Database, viewer: BoardViewer, boardId: string, id: string): Promise<Webhook> {
  const [row] = await readUnderBoard(
    db,
    viewer,
    boardId,
    (visible) =>
      sql`SELECT * FROM board_webhooks WHERE id = ${id}::uuid AND board_id = ${boardId}::uuid AND ${visible}`,
  );
  if (!row) throw webhookNotFound();
  return fromRow(boardWebhooks, row);
}

/** Newest first, without the bodies (read one payload for its body). */
export async function listPayloads(
  db: Database,
  viewer: BoardViewer,
  boardId: string,
  webhookId: string,
  filter: { status?: string; limit: number; offset: number },
): Promise<{ items: WebhookPayload[]; total: number }> {
  const where = sql`webhook_id = ${webhookId}::uuid AND board_id = ${boardId}::uuid
    ${filter.status ? sql`AND status = ${filter.status}::text` : sql``}`;
  const [row] = await readUnderBoard(
    db,
    viewer,
    boardId,
    (visible) => sql`WITH w AS (SELECT 1 FROM board_webhooks WHERE id = ${webhookId}::uuid
          AND board_id = ${boardId}::uuid AND ${visible}),
        page AS (SELECT * FROM board_webhook_payloads WHERE ${where} AND EXISTS (SELECT 1 FROM w)
          ORDER BY created_at DESC, id DESC LIMIT ${filter.limit}::int OFFSET ${filter.offset}::int)
      SELECT EXISTS (SELECT 1 FROM w) AS found,
        (SELECT count(*)::int FROM board_webhook_payloads WHERE ${where}) AS total,
        (SELECT coalesce(json_agg(page ORDER BY page.created_at DESC, page.id DESC), '[]'::json) FROM page) AS items`,
  );
  if (!row?.found) throw webhookNotFound();
  const items = parseJson<Record<string, unknown>[]>(row.items);
  return { items: items.map((r) => fromRow(boardWebhookPayloads, r)), total: Number(row.total) };
}

/** A payload with its body as the stored JSON text: parsing it in JavaScript would round big numbers. */
export type StoredPayload = WebhookPayload & { payloadJson: string };

export async function getPayload(
  db: Database,
  viewer: BoardViewer,
  boardId: string,
  webhookId: string,
  id: string,
): Promise<StoredPayload> {
  const [row] = await readUnderBoard(
    db,
    viewer,
    boardId,
    (visible) => sql`SELECT *, payload::text AS payload_json FROM board_webhook_payloads
      WHERE id = ${id}::uuid AND webhook_id = ${webhookId}::uuid AND board_id = ${boardId}::uuid AND ${visible}`,
  );
  if (!row) throw new AppError(404, 'not_found', 'No such payload.');
  const { payload: _parsed, ...rest } = row;
  return { ...fromRow(boardWebhookPayloads, { ...rest, payload: null }), payloadJson: String(row.payload_json) };
}
