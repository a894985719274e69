/**
 * Backups: a run (export slice, then verification and retention once complete), verification
 * (re-read every object, check its hash, decompress, count its rows), retention (older than
 * BACKUP_RETENTION_DAYS goes, never the newest verified one), reads.
 */
import { sql } from 'drizzle-orm';
import type { Settings } from '../config';
import {
  type BackupObject,
  exportSlice,
  MANIFEST,
  type Manifest,
  objectKey,
  runningBackupId,
  sha256Bytes,
  startBackup,
} from '../cron/backup-export';
import type { Database } from '../db/client';
import { isoText, parseJson } from '../db/rows';
import { AppError } from '../lib/errors';
import { log } from '../lib/log';
import type { JobCounts } from './job-runs';

export interface BackupSummary {
  id: string;
  status: string;
  created_at: string;
  completed_at: string | null;
  schema_version: string;
  key_version: string;
  total_rows: number;
  total_bytes: number;
  objects: number;
  slices: number;
  verification: string | null;
  verified_at: string | null;
  verification_detail: unknown;
  error: string | null;
}

const iso = (column: string) => sql.raw(`${isoText(column)} AS ${column}`);

const SUMMARY = sql`id, status, ${iso('created_at')}, ${iso('completed_at')}, schema_version, key_version,
  total_rows::float8 AS total_rows, total_bytes::float8 AS total_bytes, jsonb_array_length(objects) AS objects, slices,
  verification, ${iso('verified_at')}, verification_detail, error`;

const toSummary = (r: Record<string, unknown>): BackupSummary => ({
  ...(r as unknown as BackupSummary),
  total_rows: Number(r.total_rows),
  total_bytes: Number(r.total_bytes),
  objects: Number(r.objects),
  verification_detail: parseJson(r.verification_detail),
});

export const backupNotFound = () => new AppError(404, 'not_found', 'No such backup.');

export async function listBackups(db: Database, page: { limit: number; offset: number }) {
  const { rows } = await db.execute<Record<string, unknown>>(sql`
    SELECT ${SUMMARY}, count(*) OVER ()::int AS total FROM backups
    ORDER BY created_at DESC, id DESC LIMIT ${page.limit}::int OFFSET ${page.offset}::int`);
  return { items: rows.map(toSummary), total: Number(rows[0]?.total ?? 0) };
}

export async function getBackup(db: Database, id: string): Promise<BackupSummary> {
  const { rows } = await db.execute<Record<string, unknown>>(sql`SELECT ${SUMMARY} FROM backups WHERE id = ${id}`);
  if (!rows[0]) throw backupNotFound();
  return toSummary(rows[0]);
}

async function gunzipText(body: ReadableStream): Promise<string> {
  return new Response(body.pipeThrough(new DecompressionStream('gzip'))).text();
}

/** Re-reads the manifest and every object it lists; stores and returns the outcome. */
export async function verifyBackup(env: Env, db: Database, id: string): Promise<BackupSummary> {
  const backup = await getBackup(db, id);
  if (backup.status !== 'complete') {
    throw new AppError(409, 'backup_incomplete', 'Only a complete backup (with its manifest) can be verified.');
  }
  const failures: string[] = [];
  let checked = 0;
  const manifestObject = await env.BACKUPS.get(objectKey(id, MANIFEST));
  let objects: BackupObject[] = [];
  if (!manifestObject) failures.push('manifest.json is missing');
  else {
    const manifest = (await manifestObject.json()) as Manifest;
    objects = manifest.objects;
    if (manifest.id !== id) failures.push('manifest names another backup');
  }
  for (const object of objects) {
    checked += 1;
    const stored = await env.BACKUPS.get(objectKey(id, object.name));
    if (!stored) {
      failures.push(`${object.name}: missing`);
      continue;
    }
    const bytes = new Uint8Array(await stored.arrayBuffer());
    if (bytes.byteLength !== object.bytes)
      failures.push(`${object.name}: ${bytes.byteLength} bytes, manifest says ${object.bytes}`);
    if ((await sha256Bytes(bytes)) !== object.sha256)
      failures.push(`${object.name}: SHA-256 differs from the manifest`);
    try {
      const text = await gunzipText(new Blob([bytes]).stream());
      const rows = text.split('\n').filter((line) => line.length > 0).length;
      if (rows !== object.rows) failures.push(`${object.name}: ${rows} rows, manifest says ${object.rows}`);
    } catch {
      failures.push(`${object.name}: not valid gzip`);
    }
  }
  const passed = failures.length === 0;
  const detail = { objects_checked: checked, failures: failures.slice(0, 50) };
  if (!passed) log('error', 'backup.verification_failed', { backup_id: id, failures: failures.slice(0, 10) });
  await db.execute(sql`UPDATE backups SET verification = ${passed ? 'passed' : 'failed'}, verified_at = now(),
    verification_detail = ${JSON.stringify(detail)}::jsonb WHERE id = ${id}`);
  return getBackup(db, id);
}

/** Deletes backups past BACKUP_RETENTION_DAYS (objects first, then the row), keeping the newest verified one. */
export async function applyRetention(env: Env, db: Database, settings: Settings): Promise<number> {
  const { rows } = await db.execute<{ id: string }>(sql`
    SELECT id FROM backups
    WHERE created_at < now() - make_interval(days => ${settings.BACKUP_RETENTION_DAYS}::int) AND status <> 'running'
      AND id IS DISTINCT FROM (SELECT id FROM backups WHERE verification = 'passed' ORDER BY created_at DESC LIMIT 1)`);
  for (const { id } of rows) {
    let cursor: string | undefined;
    do {
      const listed = await env.BACKUPS.list({ prefix: `backups/${id}/`, cursor });
      if (listed.objects.length) await env.BACKUPS.delete(listed.objects.map((o) => o.key));
      cursor = listed.truncated ? listed.cursor : undefined;
    } while (cursor);
    await db.execute(sql`DELETE FROM backups WHERE id = ${id}`);
  }
  return rows.length;
}

/** A stored object of a backup, for download (restore). */
export async function backupObject(env: Env, db: Database, id: string, name: string): Promise<R2ObjectBody> {
  await getBackup(db, id);
  if (!/^[a-z0-9_]+\.\d{6}\.ndjson\.gz$|^manifest\.json$/.test(name))
    throw new AppError(404, 'not_found', 'No such object.');
  const object = await env.BACKUPS.get(objectKey(id, name));
  if (!object) throw new AppError(404, 'not_found', 'No such object.');
  return object;
}

/** Starts (or, with `start: false`, only continues) a backup; once complete, verifies it and applies retention. */
export async function runBackup(
  env: Env,
  db: Database,
  settings: Settings,
  options: { start: boolean },
): Promise<JobCounts> {
  const id = options.start ? await startBackup(db, settings) : await runningBackupId(db);
  if (!id) return { backup: 'none' };
  const outcome = await exportSlice(env, db, settings, id);
  if (outcome !== 'complete') return { backup_id: id, outcome };
  const verified = await verifyBackup(env, db, id);
  const removed = await applyRetention(env, db, settings);
  return { backup_id: id, outcome, verification: verified.verification, rows: verified.total_rows, removed };
}
