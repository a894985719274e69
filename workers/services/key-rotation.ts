/**
 * ENCRYPTION_KEY rotation: which key version every sealed column is under, and re-sealing rows
 * under the current key in batches. Each batch is one conditional statement, so a secret changed
 * meanwhile is never overwritten with its old value.
 */
import { sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import { decryptSecret, type EncryptionKeys, encryptSecret, keyVersion, SecretUnreadable } from '../lib/secret-box';
import { jsonb } from './activity-feed';
import { type AuditContext, auditRowsFrom } from './audit';
import { deviceKeyContext } from './device-identity';
import { deviceTokenContext, gatewayTokenContext } from './gateways';
import { webhookSecretContext } from './webhooks';

/** Every column holding sealed secrets, and the context each row's ciphertext is bound to. */
export const SEALED_COLUMNS: readonly {
  table: string;
  column: string;
  context: (id: string) => string;
  /** The type of the table's `id`. */
  idType: 'uuid' | 'text';
}[] = [
  { table: 'board_webhooks', column: 'secret_ciphertext', context: webhookSecretContext, idType: 'uuid' },
  { table: 'gateways', column: 'token_ciphertext', context: gatewayTokenContext, idType: 'uuid' },
  { table: 'gateways', column: 'device_token_ciphertext', context: deviceTokenContext, idType: 'uuid' },
  { table: 'device_identity', column: 'private_key_ciphertext', context: deviceKeyContext, idType: 'text' },
];

export interface KeyStatus {
  current_version: string;
  /** Sealed values per key version, over every sealed column. */
  versions: Record<string, number>;
  /** Values not yet under the current key: 0 once a rotation is complete. */
  remaining: number;
}

const ref = (name: string) => sql.identifier(name);

export async function keyStatus(db: Database, keys: EncryptionKeys): Promise<KeyStatus> {
  const current = await keyVersion(keys.current);
  const versions: Record<string, number> = {};
  for (const { table, column } of SEALED_COLUMNS) {
    const { rows } = await db.execute<{ version: string; n: number }>(sql`
      SELECT split_part(${ref(column)}, '.', 2) AS version, count(*)::int AS n FROM ${ref(table)}
      WHERE ${ref(column)} IS NOT NULL GROUP BY 1`);
    for (const row of rows) versions[row.version] = (versions[row.version] ?? 0) + Number(row.n);
  }
  const remaining = Object.entries(versions).reduce((sum, [v, n]) => (v === current ? sum : sum + n), 0);
  return { current_version: current, versions, remaining };
}

export interface RotationBatch {
  resealed: number;
  /** Rows under a key neither ENCRYPTION_KEY nor ENCRYPTION_KEY_PREVIOUS opens: left as they are. */
  unreadable: number;
  remaining: number;
}

/** Re-seals up to `batchSize` values per column under the current key. Run until `remaining` is 0. */
export async function rotateBatch(
  db: Database,
  ctx: AuditContext,
  keys: EncryptionKeys,
  batchSize: number,
): Promise<RotationBatch> {
  const current = await keyVersion(keys.current);
  let resealed = 0;
  let unreadable = 0;
  for (const { table, column, context, idType } of SEALED_COLUMNS) {
    const { rows } = await db.execute<{ id: string; sealed: string }>(sql`
      SELECT id, ${ref(column)} AS sealed FROM ${ref(table)}
      WHERE ${ref(column)} IS NOT NULL AND split_part(${ref(column)}, '.', 2) <> ${current}
      ORDER BY id LIMIT ${batchSize}::int`);
    const updates: { id: string; old: string; new: string }[] = [];
    for (const row of rows) {
      try {
        const plain = await decryptSecret(row.sealed, keys, context(row.id));
        updates.push({ id: row.id, old: row.sealed, new: await encryptSecret(plain, keys, context(row.id)) });
      } catch (err) {
        if (!(err instanceof SecretUnreadable)) throw err;
        unreadable += 1;
      }
    }
    if (updates.length === 0) continue;
    const { rows: changed } = await db.execute<{ n: number }>(sql`
      WITH changed AS (
        UPDATE ${ref(table)} t SET ${ref(column)} = v.new
        FROM jsonb_to_recordset(${JSON.stringify(updates)}::jsonb) AS v(id ${sql.raw(idType)}, old text, new text)
        WHERE t.id = v.id AND t.${ref(column)} = v.old
        RETURNING t.id),
      summary AS (SELECT ${`${table}.${column}`}::text AS id, count(*)::int AS n FROM changed),
      audit AS (${auditRowsFrom(ctx, {
        action: 'platform.encryption.reseal',
        targetType: 'sealed_column',
        organizationId: sql`NULL::uuid`,
        targetId: sql`summary.id`,
        details: sql`${jsonb({ key_version: current })} || jsonb_build_object('rows', summary.n)`,
        from: sql`summary WHERE summary.n > 0`,
      })})
      SELECT n FROM summary`);
    resealed += Number(changed[0]?.n ?? 0);
  }
  const { remaining } = await keyStatus(db, keys);
  return { resealed, unreadable, remaining };
}
