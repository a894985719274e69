/** API keys for automation: secret shown once, stored as SHA-256, scoped, expiring, revocable. */
import { and, desc, eq, isNull } from 'drizzle-orm';
import { API_KEY_PREFIX } from '../auth/authenticate';
import type { ApiKeyScope } from '../auth/principal';
import type { Database } from '../db/client';
import { pageOf } from '../db/paging';
import { fromRow } from '../db/rows';
import { apiKeys } from '../db/schema';
import { randomSecret, sha256Hex } from '../lib/crypto';
import { AppError } from '../lib/errors';
import { type AuditContext, mutateWithAudit } from './audit';

export type ApiKey = typeof apiKeys.$inferSelect;

/** How many characters of the secret lists show, enough to tell keys apart and nothing more. */
const DISPLAY_PREFIX_LENGTH = API_KEY_PREFIX.length + 6;

export interface NewApiKey {
  name: string;
  scopes: ApiKeyScope[];
  expiresAt: Date | null;
}

export async function createApiKey(
  db: Database,
  ctx: AuditContext,
  organizationId: string,
  input: NewApiKey,
): Promise<{ key: ApiKey; secret: string }> {
  if (input.expiresAt && input.expiresAt.getTime() <= Date.now()) {
    throw new AppError(422, 'validation_failed', 'expires_at must be in the future.', {
      details: { issues: [{ path: 'expires_at', message: 'must be in the future' }] },
    });
  }
  const secret = randomSecret(API_KEY_PREFIX);
  const insert = db
    .insert(apiKeys)
    .values({
      organizationId,
      name: input.name,
      prefix: secret.slice(0, DISPLAY_PREFIX_LENGTH),
      keyHash: await sha256Hex(secret),
      scopes: [...new Set(input.scopes)],
      createdBy: ctx.actorType === 'user' ? ctx.actorId : null,
      expiresAt: input.expiresAt,
    })
    .returning();
  const [row] = await mutateWithAudit(
    db,
    ctx,
    { action: 'api_key.create', targetType: 'api_key', details: { name: input.name, scopes: input.scopes } },
    insert,
  );
  if (!row) throw new Error('api key insert returned nothing');
  return { key: fromRow(apiKeys, row), secret };
}

export async function listApiKeys(db: Database, organizationId: string, page: { limit: number; offset: number }) {
  const where = eq(apiKeys.organizationId, organizationId);
  return pageOf(db, apiKeys, where, [desc(apiKeys.createdAt), desc(apiKeys.id)], page);
}

export async function getApiKey(db: Database, organizationId: string, id: string): Promise<ApiKey> {
  const [key] = await db
    .select()
    .from(apiKeys)
    .where(and(eq(apiKeys.id, id), eq(apiKeys.organizationId, organizationId)));
  if (!key) throw notFound();
  return key;
}

/** Idempotent: revoking a revoked key keeps its first revocation time (and writes no second audit row). */
export async function revokeApiKey(
  db: Database,
  ctx: AuditContext,
  organizationId: string,
  id: string,
): Promise<ApiKey> {
  const update = db
    .update(apiKeys)
    .set({ revokedAt: new Date() })
    .where(and(eq(apiKeys.id, id), eq(apiKeys.organizationId, organizationId), isNull(apiKeys.revokedAt)))
    .returning();
  const [row] = await mutateWithAudit(db, ctx, { action: 'api_key.revoke', targetType: 'api_key' }, update);
  return row ? fromRow(apiKeys, row) : getApiKey(db, organizationId, id);
}

const notFound = () => new AppError(404, 'not_found', 'No such API key.');
