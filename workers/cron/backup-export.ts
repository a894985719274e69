/**
 * Backup export to R2: every table as gzip-compressed NDJSON objects of bounded size, read in
 * primary-key order by keyset paging, then `manifest.json`, written last (a backup without one is
 * incomplete by definition). An export runs in slices of BACKUP_SLICE_MS: the cursor in the
 * `backups` row says where the next slice resumes, at the next chunk rather than from scratch.
 *
 * Consistency: each object is one statement's snapshot of its key range. The backup as a whole is
 * not one snapshot (the HTTP driver cannot hold a transaction across requests): rows written while
 * an export runs may appear in their old or new state, or not at all. A backup of a database not
 * being written to is exact; the restore drill checks that row for row.
 */
import { sql } from 'drizzle-orm';
import type { Settings } from '../config';
import { type Database, EXPECTED_SCHEMA } from '../db/client';
import { isoText, parseJson } from '../db/rows';
import { hex } from '../lib/crypto';
import { keyVersion } from '../lib/secret-box';
import { type BackupTable, backupTables } from '../services/backup-tables';

export interface BackupObject {
  name: string;
  table: string;
  rows: number;
  bytes: number;
  sha256: string;
}

export interface BackupCursor {
  tables: string[];
  index: number;
  after: string[] | null;
  seq: number;
}

export const MANIFEST = 'manifest.json';
export const FORMAT = 'mce-backup/1';
export const objectKey = (backupId: string, name: string) => `backups/${backupId}/${name}`;

export async function sha256Bytes(bytes: Uint8Array): Promise<string> {
  return hex(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>)));
}

async function gzip(text: string): Promise<Uint8Array> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function newBackupId(now = new Date()): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `b${stamp}-${hex(crypto.getRandomValues(new Uint8Array(3)))}`;
}

/** The unfinished backup, if any (there is at most one: startBackup continues it). */
export async function runningBackupId(db: Database): Promise<string | undefined> {
  const { rows } = await db.execute<{ id: string }>(
    sql`SELECT id FROM backups WHERE status = 'running' ORDER BY created_at LIMIT 1`,
  );
  return rows[0]?.id;
}

/** A new backup row, unless one is already running (then that one continues). */
export async function startBackup(db: Database, settings: Settings): Promise<string> {
  const running = await runningBackupId(db);
  if (running) return running;
  const id = newBackupId();
  const cursor: BackupCursor = { tables: (await backupTables(db)).map((t) => t.name), index: 0, after: null, seq: 1 };
  await db.execute(sql`INSERT INTO backups (id, schema_version, key_version, cursor)
    VALUES (${id}, ${EXPECTED_SCHEMA.tag}, ${await keyVersion(settings.ENCRYPTION_KEY)}, ${JSON.stringify(cursor)}::jsonb)`);
  return id;
}

/** One chunk of `table` after `after`: at most BACKUP_CHUNK_ROWS rows and about BACKUP_CHUNK_BYTES. */
async function readChunk(db: Database, table: BackupTable, after: string[] | null, settings: Settings) {
  const cols = table.key.map((k, i) => ({ ...k, alias: `_k${i}` }));
  const keyList = sql.join(
    cols.map((c) => sql`t.${sql.identifier(c.column)} AS ${sql.identifier(c.alias)}`),
    sql`, `,
  );
  const order = sql.raw(cols.map((c) => `"${c.alias}"`).join(', '));
  const orderT = sql.join(
    cols.map((c) => sql`t.${sql.identifier(c.column)}`),
    sql`, `,
  );
  const where = after
    ? sql`WHERE ROW(${orderT}) > ROW(${sql.join(
        cols.map((c, i) => sql`${after[i] ?? null}::${sql.raw(c.type)}`),
        sql`, `,
      )})`
    : sql``;
  const keyText = sql.raw(`ARRAY[${cols.map((c) => `"${c.alias}"::text`).join(', ')}]`);
  const { rows } = await db.execute<{ line: string; k: string[] | string }>(sql`
    WITH page AS (SELECT row_to_json(t)::text AS line, ${keyList} FROM ${sql.identifier(table.name)} t ${where}
      ORDER BY ${orderT} LIMIT ${settings.BACKUP_CHUNK_ROWS}::int),
    sized AS (SELECT *, sum(octet_length(line)) OVER (ORDER BY ${order} ROWS UNBOUNDED PRECEDING) - octet_length(line) AS before
      FROM page)
    SELECT line, ${keyText} AS k FROM sized WHERE before < ${settings.BACKUP_CHUNK_BYTES}::bigint ORDER BY ${order}`);
  return rows.map((r) => ({ line: r.line, key: typeof r.k === 'string' ? (JSON.parse(r.k) as string[]) : r.k }));
}

export type SliceOutcome = 'running' | 'complete' | 'failed';

/** Exports chunks until the backup is complete or the slice's time is up. */
export async function exportSlice(env: Env, db: Database, settings: Settings, backupId: string): Promise<SliceOutcome> {
  const { rows } = await db.execute<{ status: string; cursor: BackupCursor | string }>(
    sql`SELECT status, cursor FROM backups WHERE id = ${backupId}`,
  );
  const row = rows[0];
  if (!row) throw new Error(`no backup ${backupId}`);
  if (row.status !== 'running') return row.status as SliceOutcome;
  const cursor = parseJson<BackupCursor>(row.cursor);
  const tables = new Map((await backupTables(db)).map((t) => [t.name, t]));
  const deadline = Date.now() + settings.BACKUP_SLICE_MS;
  try {
    while (cursor.index < cursor.tables.length && Date.now() < deadline) {
      const table = tables.get(cursor.tables[cursor.index] ?? '');
      const chunk = table ? await readChunk(db, table, cursor.after, settings) : [];
      if (!table || chunk.length === 0) {
        cursor.index += 1;
        cursor.after = null;
        await db.execute(sql`UPDATE backups SET cursor = ${JSON.stringify(cursor)}::jsonb WHERE id = ${backupId}`);
        continue;
      }
      const body = await gzip(`${chunk.map((c) => c.line).join('\n')}\n`);
      const object: BackupObject = {
        name: `${table.name}.${String(cursor.seq).padStart(6, '0')}.ndjson.gz`,
        table: table.name,
        rows: chunk.length,
        bytes: body.byteLength,
        sha256: await sha256Bytes(body),
      };
      // Same name on a retry after a crash: the object is simply written again.
      await env.BACKUPS.put(objectKey(backupId, object.name), body, {
        httpMetadata: { contentType: 'application/gzip' },
        sha256: object.sha256,
      });
      cursor.after = chunk.at(-1)?.key ?? null;
      cursor.seq += 1;
      await db.execute(sql`UPDATE backups SET cursor = ${JSON.stringify(cursor)}::jsonb,
          objects = objects || ${JSON.stringify([object])}::jsonb,
          total_rows = total_rows + ${object.rows}, total_bytes = total_bytes + ${object.bytes}
        WHERE id = ${backupId}`);
    }
    if (cursor.index < cursor.tables.length) {
      await db.execute(sql`UPDATE backups SET slices = slices + 1 WHERE id = ${backupId}`);
      return 'running';
    }
    await writeManifest(env, db, backupId);
    return 'complete';
  } catch (err) {
    await db.execute(sql`UPDATE backups SET slices = slices + 1, error = ${(err as Error).message.slice(0, 1_000)}
      WHERE id = ${backupId}`);
    throw err;
  }
}

export interface Manifest {
  format: string;
  id: string;
  created_at: string;
  completed_at: string;
  schema_version: string;
  encryption_key_version: string;
  consistency: string;
  tables: { name: string; rows: number; objects: number }[];
  objects: BackupObject[];
}

async function writeManifest(env: Env, db: Database, backupId: string): Promise<void> {
  const { rows } = await db.execute<{
    created_at: string;
    schema_version: string;
    key_version: string;
    objects: BackupObject[] | string;
    cursor: BackupCursor | string;
  }>(sql`SELECT ${sql.raw(isoText('created_at'))} AS created_at,
      schema_version, key_version, objects, cursor FROM backups WHERE id = ${backupId}`);
  const row = rows[0];
  if (!row) throw new Error(`no backup ${backupId}`);
  const objects = parseJson<BackupObject[]>(row.objects);
  const cursor = parseJson<BackupCursor>(row.cursor);
  const manifest: Manifest = {
    format: FORMAT,
    id: backupId,
    created_at: row.created_at,
    completed_at: new Date().toISOString(),
    schema_version: row.schema_version,
    encryption_key_version: row.key_version,
    consistency: 'per-object snapshot; exact when the database is not written to during the export',
    tables: cursor.tables.map((name) => {
      const own = objects.filter((o) => o.table === name);
      return { name, rows: own.reduce((n, o) => n + o.rows, 0), objects: own.length };
    }),
    objects,
  };
  await env.BACKUPS.put(objectKey(backupId, MANIFEST), JSON.stringify(manifest, null, 2), {
    httpMetadata: { contentType: 'application/json' },
  });
  await db.execute(
    sql`UPDATE backups SET status = 'complete', completed_at = now(), error = NULL WHERE id = ${backupId}`,
  );
}
