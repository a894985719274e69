/**
 * Accepting a webhook delivery, in the order the edge needs: rate limits, the webhook itself, the
 * body's size, its signature, then idempotency and storage. A 202 is answered only once the row
 * is committed; hand-off to the delivery queue happens after (services/webhook-delivery.ts).
 */
import { sql } from 'drizzle-orm';
import type { Settings } from '../config';
import type { Database } from '../db/client';
import { pgErrorCode } from '../db/errors';
import { readBoundedBody } from '../lib/bounded-body';
import { clientKey } from '../lib/client-ip';
import { AppError } from '../lib/errors';
import { isUuid } from '../lib/ids';
import { log } from '../lib/log';
import { type RateLimiter, tooManyRequests } from '../lib/rate-limiter';
import { decryptSecret, type EncryptionKeys, SecretUnreadable } from '../lib/secret-box';
import { signatureMatches } from '../lib/webhook-signature';
import { type AuditContext, auditInsert } from './audit';
import { webhookNotFound, webhookSecretContext } from './webhooks';

/** 1 MiB: the most a webhook body may carry. */
export const WEBHOOK_MAX_BYTES = 1_048_576;

const SIGNATURE_HEADERS = ['x-hub-signature-256', 'x-webhook-signature'];
const DELIVERY_ID_HEADERS = ['x-github-delivery', 'x-webhook-id', 'idempotency-key'];
/** Headers never stored with a payload: they carry credentials or signatures. */
const SECRET_HEADER = /signature|authorization|token|secret|api-key|cookie/i;

export interface IngestDeps {
  db: Database;
  limiter: RateLimiter;
  settings: Settings;
  keys: EncryptionKeys;
}

export interface IngestRequest {
  boardId: string;
  webhookId: string;
  ip: string | null;
  userAgent: string | null;
  requestId: string;
  headers: Headers;
  body: ReadableStream<Uint8Array> | null;
}

export interface IngestResult {
  payloadId: string;
  organizationId: string;
  /** False when the delivery id was seen before: nothing new was stored. */
  created: boolean;
}

type WebhookRow = {
  id: string;
  organization_id: string;
  enabled: boolean;
  secret_ciphertext: string | null;
  signature_header: string | null;
  locked: boolean;
};

export async function ingestWebhook(deps: IngestDeps, req: IngestRequest): Promise<IngestResult> {
  const { db, limiter, settings } = deps;
  const client = clientKey(req.ip);
  const missKey = `webhook-miss:${client}`;
  const [misses, budget] = await Promise.all([
    limiter.peek(missKey, settings.WEBHOOK_MISS_LIMIT),
    limiter.limit(`webhook:${client}:${req.webhookId}`, settings.WEBHOOK_RATE_LIMIT),
  ]);
  if (!misses.allowed) throw tooManyRequests(misses);
  if (!budget.allowed) throw tooManyRequests(budget);

  const webhook = await findWebhook(db, req.boardId, req.webhookId);
  if (!webhook?.enabled || webhook.locked) {
    const decision = await limiter.limit(missKey, settings.WEBHOOK_MISS_LIMIT);
    if (!decision.allowed) throw tooManyRequests(decision);
    if (!webhook) throw webhookNotFound();
    if (webhook.locked) throw new AppError(423, 'organization_locked', 'This organization is locked.');
    throw new AppError(410, 'webhook_disabled', 'This webhook is disabled.');
  }

  const body = await readBoundedBody(req.body, {
    maxBytes: WEBHOOK_MAX_BYTES,
    timeoutMs: settings.WEBHOOK_BODY_TIMEOUT_MS,
    declaredLength: req.headers.get('content-length'),
  });
  const audit: AuditContext = {
    ip: req.ip,
    userAgent: req.userAgent,
    requestId: req.requestId,
    organizationId: webhook.organization_id,
    actorType: 'webhook',
    actorId: webhook.id,
  };
  if (webhook.secret_ciphertext) await checkSignature(deps, webhook, req.headers, body, audit);

  const stored = storable(body);
  const deliveryId = firstHeader(req.headers, DELIVERY_ID_HEADERS);
  if (deliveryId !== null && deliveryId.length > 200) {
    throw new AppError(422, 'validation_failed', 'The delivery id is longer than 200 characters.');
  }
  const row = await insertPayload(db, webhook, req, stored, body.byteLength, deliveryId).catch((err: unknown) => {
    // JSON that JavaScript accepts but jsonb refuses (a number out of numeric range): keep it as text.
    const code = pgErrorCode(err);
    if (stored.encoding !== 'json' || !code || !/^(22|54)/.test(code)) throw err;
    return insertPayload(db, webhook, req, asText(new TextDecoder().decode(body)), body.byteLength, deliveryId);
  });
  return { payloadId: row.id, organizationId: webhook.organization_id, created: row.created };
}

async function findWebhook(db: Database, boardId: string, webhookId: string): Promise<WebhookRow | undefined> {
  // A malformed id is just an unknown webhook here: it counts against the sender's miss budget.
  if (!isUuid(boardId) || !isUuid(webhookId)) return undefined;
  const { rows } = await db.execute<WebhookRow>(sql`
    SELECT w.id, w.organization_id, w.enabled, w.secret_ciphertext, w.signature_header, o.locked_at IS NOT NULL AS locked
    FROM board_webhooks w JOIN organizations o ON o.id = w.organization_id
    WHERE w.id = ${webhookId}::uuid AND w.board_id = ${boardId}::uuid`);
  return rows[0];
}

async function checkSignature(
  deps: IngestDeps,
  webhook: WebhookRow,
  headers: Headers,
  body: Uint8Array,
  audit: AuditContext,
): Promise<void> {
  let secret: string;
  try {
    secret = await decryptSecret(webhook.secret_ciphertext ?? '', deps.keys, webhookSecretContext(webhook.id));
  } catch (err) {
    if (!(err instanceof SecretUnreadable)) throw err;
    // The sender did nothing wrong: an operator must restore the key. Senders retry on 503.
    log('error', 'webhook.secret_unreadable', { webhook_id: webhook.id, error: err.message });
    throw new AppError(503, 'webhook_secret_unreadable', 'This webhook cannot verify signatures right now.', {
      headers: { 'Retry-After': '300' },
    });
  }
  const names = webhook.signature_header ? [webhook.signature_header, ...SIGNATURE_HEADERS] : SIGNATURE_HEADERS;
  const presented = firstHeader(headers, names);
  const reason =
    presented === null
      ? 'signature_missing'
      : (await signatureMatches(secret, body, presented))
        ? null
        : 'signature_invalid';
  if (!reason) return;
  log('warn', 'security.webhook.signature_rejected', { webhook_id: webhook.id, reason, ip: audit.ip });
  await auditInsert(deps.db, audit, {
    action: 'webhook.signature_rejected',
    success: false,
    targetType: 'webhook',
    targetId: webhook.id,
    details: { reason },
  });
  throw new AppError(
    403,
    reason,
    presented === null ? 'The signature header is missing.' : 'The signature does not match.',
  );
}

function firstHeader(headers: Headers, names: string[]): string | null {
  for (const name of names) {
    const value = headers.get(name);
    if (value !== null && value !== '') return value;
  }
  return null;
}

interface Storable {
  encoding: 'json' | 'text' | 'base64';
  /** A JSON document for the jsonb column. */
  json: string;
}

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/** Escapes jsonb refuses: NUL and surrogates (a raw NUL is caught before this). */
const UNSTORABLE_ESCAPE = /\\u(0000|d[89a-f][0-9a-f]{2})/i;

/**
 * JSON as sent (so big numbers stay exact) when it parses and jsonb can hold it, else text, else
 * base64 of the bytes. Very deep nesting is kept as text: jsonb parses recursively.
 */
export function storable(body: Uint8Array): Storable {
  if (body.byteLength === 0) return { encoding: 'json', json: '{}' };
  let text: string;
  try {
    text = decoder.decode(body);
  } catch {
    return { encoding: 'base64', json: JSON.stringify(toBase64(body)) };
  }
  if (text.includes('\u0000')) return { encoding: 'base64', json: JSON.stringify(toBase64(body)) };
  if (!UNSTORABLE_ESCAPE.test(text) && nestingDepth(text) <= MAX_JSON_DEPTH) {
    try {
      JSON.parse(text);
      return { encoding: 'json', json: text };
    } catch {
      // Not JSON: stored as text below.
    }
  }
  return asText(text);
}

const asText = (text: string): Storable => ({ encoding: 'text', json: JSON.stringify(text) });

/** Deeper than any real webhook payload, far shallower than what exhausts Postgres's parser stack. */
const MAX_JSON_DEPTH = 200;

/** The deepest bracket nesting outside strings, in one pass. */
function nestingDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) max = Math.max(max, ++depth);
    else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

function toBase64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** `x-*` headers worth keeping for the agent and the operator; credentials and signatures never. */
function keptHeaders(headers: Headers, signatureHeader: string | null): Record<string, string> {
  const kept: Record<string, string> = {};
  const own = signatureHeader?.toLowerCase();
  let count = 0;
  for (const [name, value] of headers) {
    if (!name.startsWith('x-') || SECRET_HEADER.test(name) || name === own || count >= 50) continue;
    kept[name] = value.slice(0, 1_000);
    count += 1;
  }
  return kept;
}

/**
 * One statement: insert unless the delivery id was seen, and return the row either way. A
 * concurrent duplicate that commits between our snapshot and our insert is read back once more.
 */
async function insertPayload(
  db: Database,
  webhook: WebhookRow,
  req: IngestRequest,
  stored: Storable,
  byteSize: number,
  deliveryId: string | null,
): Promise<{ id: string; created: boolean }> {
  const existing = sql`SELECT id, false AS created FROM board_webhook_payloads
    WHERE webhook_id = ${webhook.id}::uuid AND delivery_id = ${deliveryId}::text`;
  const { rows } = await db.execute<{ id: string; created: boolean }>(sql`
    WITH ins AS (
      INSERT INTO board_webhook_payloads (organization_id, board_id, webhook_id, delivery_id, encoding, payload,
        byte_size, content_type, user_agent, headers, source_ip)
      VALUES (${webhook.organization_id}::uuid, ${req.boardId}::uuid, ${webhook.id}::uuid, ${deliveryId}::text,
        ${stored.encoding}::text, ${stored.json}::jsonb, ${byteSize}::int, ${req.headers.get('content-type')}::text,
        ${req.userAgent}::text, ${JSON.stringify(keptHeaders(req.headers, webhook.signature_header))}::jsonb, ${req.ip}::text)
      ON CONFLICT (webhook_id, delivery_id) DO NOTHING
      RETURNING id, true AS created)
    SELECT * FROM ins UNION ALL (${existing} AND NOT EXISTS (SELECT 1 FROM ins))`);
  const row = rows[0] ?? (await db.execute<{ id: string; created: boolean }>(existing)).rows[0];
  if (!row) throw new Error('payload neither inserted nor found');
  return row;
}
