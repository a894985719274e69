/**
 * Restoring a backup (format: workers/cron/backup-export.ts) into an empty database.
 *
 * Order of work, so that a bad backup or a wrong target changes nothing:
 * 1. Source: a folder (`manifest.json` + objects, as `mce backup --download` saves them), or a backup
 *    id, downloaded from the Worker's admin API into a temporary folder first.
 * 2. Every object is checked before anything is written to the database: byte size and SHA-256
 *    against the manifest, gunzip, row count. (A folder is checked before the target is even opened;
 *    for a backup id the target is inspected, read-only, before the objects are downloaded.)
 * 3. Target: its newest applied migration must be the backup's `schema_version`, or it must have
 *    none (then the repository's migrations up to that version are applied first). Every backed-up
 *    table must be empty: restore never merges into existing data.
 * 4. One transaction loads every table in manifest order (parents first), in batches of
 *    `INSERT ... SELECT FROM json_populate_recordset(NULL::t, $1)`, which reads `row_to_json`
 *    output back into every column type; resets sequences (bigserial) to the loaded maximum;
 *    checks each table's row count against the manifest. Any failure rolls it all back.
 * 5. Pending repository migrations are applied, bringing the data forward to this checkout's schema.
 *
 * Foreign keys: parents load before children, which satisfies every constraint for a consistent
 * backup. A backup taken while the database was written to can hold a row whose parent is missing
 * (see the manifest's `consistency`); restore does not drop or patch such rows: it stops at the
 * first violation, rolls back, and says which table and constraint, so the operator takes a backup
 * in a quiet period instead (e.g. during `mce emergency-shutdown on`).
 *
 * One ambiguity of the format: `row_to_json` writes SQL NULL and a jsonb `null` value alike. In a
 * NOT NULL json(b) column the value must have been jsonb `null`, and is restored as that; in a
 * nullable one it comes back as SQL NULL.
 *
 * The target is `postgres://...` (a real PostgreSQL, through `pg`) or `pglite:<dir>` (a PGlite data
 * directory, as the local SQL endpoint serves). Migrations go through the same Neon HTTP driver
 * path `mce migrate` uses (an in-process SQL endpoint over the target); the load uses one direct
 * connection, because only that can hold a transaction across statements.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { PGlite } from '@electric-sql/pglite';
import type { NeonQueryFunction } from '@neondatabase/serverless';
import pg from 'pg';
import { z } from 'zod';
import { pgliteBackend, postgresBackend, type SqlBackend } from '../sql-endpoint/backends.ts';
import { startSqlEndpoint } from '../sql-endpoint/server.ts';
import { type ApiTargetOptions, createApiClient } from './api-client.ts';
import { sqlClient } from './database.ts';
import { type Migration, migrate, readMigrations } from './migrations.ts';
import { CliError, type Output } from './output.ts';

export const MANIFEST = 'manifest.json';
export const FORMAT = 'mce-backup/1';
/** Rows per INSERT statement. */
export const BATCH_ROWS = 500;

const tableName = z.string().regex(/^[a-z_][a-z0-9_]*$/, 'must be a lower-case SQL identifier');
const count = z.number().int().min(0);

const manifestSchema = z
  .object({
    format: z.string(),
    id: z.string().regex(/^[A-Za-z0-9_-]{1,100}$/, 'must be a backup id'),
    created_at: z.string(),
    completed_at: z.string(),
    schema_version: z.string().min(1),
    encryption_key_version: z.string(),
    consistency: z.string(),
    tables: z.array(z.object({ name: tableName, rows: count, objects: count })),
    objects: z.array(
      z.object({
        name: z.string().regex(/^[a-z0-9_]+\.\d{6}\.ndjson\.gz$/, 'must be <table>.<NNNNNN>.ndjson.gz'),
        table: tableName,
        rows: count,
        bytes: count,
        sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 hex digits'),
      }),
    ),
  })
  .superRefine((m, ctx) => {
    const tables = new Set(m.tables.map((t) => t.name));
    if (tables.size !== m.tables.length) ctx.addIssue({ code: 'custom', message: 'a table is listed twice' });
    const names = new Set(m.objects.map((o) => o.name));
    if (names.size !== m.objects.length) ctx.addIssue({ code: 'custom', message: 'an object is listed twice' });
    for (const o of m.objects) {
      if (!tables.has(o.table)) ctx.addIssue({ code: 'custom', message: `${o.name}: table ${o.table} is not listed` });
      if (!o.name.startsWith(`${o.table}.`))
        ctx.addIssue({ code: 'custom', message: `${o.name}: name does not match its table ${o.table}` });
    }
    for (const t of m.tables) {
      const own = m.objects.filter((o) => o.table === t.name);
      const rows = own.reduce((n, o) => n + o.rows, 0);
      if (own.length !== t.objects || rows !== t.rows)
        ctx.addIssue({
          code: 'custom',
          message: `table ${t.name}: ${t.rows} rows in ${t.objects} objects listed, the objects hold ${rows} in ${own.length}`,
        });
    }
  });

export type Manifest = z.infer<typeof manifestSchema>;
export type ManifestObject = Manifest['objects'][number];

/** The manifest from its text; a CliError naming the problem when it is not one this CLI can restore. */
export function parseManifest(text: string, where: string): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CliError(`${where} is not JSON`);
  }
  const format = (json as { format?: unknown } | null)?.format;
  if (format !== FORMAT) {
    throw new CliError(
      `${where}: format ${JSON.stringify(format ?? null)} is not ${FORMAT}; this CLI restores ${FORMAT} backups only`,
    );
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue?.path.length ? `${issue.path.join('.')}: ` : '';
    throw new CliError(`${where} is not a valid manifest (${path}${issue?.message})`);
  }
  return parsed.data;
}

// ---------------------------------------------------------------------------------------------
// Checking objects

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** The NDJSON lines of an object (its rows), or a description of what is wrong with it. */
function objectLines(object: ManifestObject, bytes: Uint8Array): { lines: string[] } | { problem: string } {
  if (bytes.byteLength !== object.bytes)
    return { problem: `${object.name}: ${bytes.byteLength} bytes, the manifest says ${object.bytes}` };
  if (sha256(bytes) !== object.sha256) return { problem: `${object.name}: SHA-256 differs from the manifest` };
  let text: string;
  try {
    text = gunzipSync(bytes).toString('utf8');
  } catch {
    return { problem: `${object.name}: not valid gzip` };
  }
  const lines = text.split('\n').filter((line) => line.length > 0);
  if (lines.length !== object.rows)
    return { problem: `${object.name}: ${lines.length} rows, the manifest says ${object.rows}` };
  return { lines };
}

function failVerification(where: string, problems: string[]): never {
  const shown = problems.slice(0, 10).map((p) => `  ${p}`);
  if (problems.length > 10) shown.push(`  ... and ${problems.length - 10} more`);
  throw new CliError(
    `the backup in ${where} failed verification; nothing was restored:\n${shown.join('\n')}\n` +
      'Download it again (mce backup --download ID --out DIR), or restore another backup.',
  );
}

/** Reads and checks a downloaded folder: the manifest, then every object it lists. */
export function verifyFolder(dir: string): Manifest {
  const manifestPath = join(dir, MANIFEST);
  if (!existsSync(manifestPath)) throw new CliError(`no ${MANIFEST} in ${dir}: not a downloaded backup`);
  const manifest = parseManifest(readFileSync(manifestPath, 'utf8'), manifestPath);
  const problems: string[] = [];
  for (const object of manifest.objects) {
    const path = join(dir, object.name);
    if (!existsSync(path)) {
      problems.push(`${object.name}: missing`);
      continue;
    }
    const checked = objectLines(object, readFileSync(path));
    if ('problem' in checked) problems.push(checked.problem);
  }
  if (problems.length > 0) failVerification(dir, problems);
  return manifest;
}

// ---------------------------------------------------------------------------------------------
// Downloading from the Worker

interface BackupSummary {
  id: string;
  status: string;
  verification: string | null;
  total_rows: number;
  objects: number;
}

/**
 * Downloads a complete backup into `dir` (created; it must be empty): every object checked as it
 * arrives (size, SHA-256, gzip, rows), `manifest.json` written last, as the export writes it.
 * `beforeObjects` sees the manifest before the objects are fetched (restore checks its target there).
 */
export async function downloadBackup(
  api: ApiTargetOptions,
  id: string,
  dir: string,
  out: Output,
  beforeObjects: (manifest: Manifest) => Promise<void> = async () => {},
): Promise<{ manifest: Manifest; bytes: number }> {
  if (!/^[A-Za-z0-9_-]{1,100}$/.test(id)) throw new CliError(`"${id}" is not a backup id`);
  const client = createApiClient(api);
  const summary = await client.get<BackupSummary>(`/api/v1/ops/backups/${id}`);
  if (summary.status !== 'complete') {
    throw new CliError(
      `backup ${id} is ${summary.status}, not complete: ${summary.status === 'running' ? 'run `mce backup` to finish it' : 'take a new one with `mce backup`'}`,
    );
  }
  if (existsSync(dir) && (!statSync(dir).isDirectory() || readdirSync(dir).length > 0)) {
    throw new CliError(`${dir} exists and is not an empty folder`);
  }
  mkdirSync(dir, { recursive: true });
  const prefix = `/api/v1/ops/backups/${id}/objects`;
  const manifestBytes = await client.getBytes(`${prefix}/${MANIFEST}`);
  const manifest = parseManifest(Buffer.from(manifestBytes).toString('utf8'), `${MANIFEST} of ${id}`);
  if (manifest.id !== id) throw new CliError(`the manifest of ${id} names another backup (${manifest.id})`);
  await beforeObjects(manifest);
  const bar = out.progress('Downloading', manifest.objects.length);
  let bytes = manifestBytes.byteLength;
  const problems: string[] = [];
  for (const object of manifest.objects) {
    const body = await client.getBytes(`${prefix}/${object.name}`);
    const checked = objectLines(object, body);
    if ('problem' in checked) problems.push(checked.problem);
    else writeFileSync(join(dir, object.name), body);
    bytes += body.byteLength;
    bar.tick(object.name);
  }
  bar.done();
  if (problems.length > 0) failVerification(`${client.url} (backup ${id})`, problems);
  writeFileSync(join(dir, MANIFEST), manifestBytes);
  return { manifest, bytes };
}

// ---------------------------------------------------------------------------------------------
// The target database

export type RestoreTarget = { kind: 'postgres'; url: string } | { kind: 'pglite'; dir: string };

export function parseTarget(databaseUrl: string | undefined): RestoreTarget {
  if (!databaseUrl) throw new CliError('--database-url is required: postgres://... or pglite:<dir>');
  if (/^postgres(ql)?:\/\//.test(databaseUrl)) {
    try {
      new URL(databaseUrl);
    } catch {
      throw new CliError('--database-url is not a valid URL');
    }
    return { kind: 'postgres', url: databaseUrl };
  }
  if (databaseUrl.startsWith('pglite:')) {
    const dir = databaseUrl.slice('pglite:'.length);
    if (!dir) throw new CliError('--database-url pglite:<dir> needs a directory');
    return { kind: 'pglite', dir: resolve(dir) };
  }
  throw new CliError('--database-url must be a postgres:// or postgresql:// URL, or pglite:<dir>');
}

/** For messages: host and database, never the password. */
export function describeTarget(target: RestoreTarget): string {
  if (target.kind === 'pglite') return `PGlite ${target.dir}`;
  const url = new URL(target.url);
  return `PostgreSQL ${url.host}${url.pathname}`;
}

/** One session: a transaction spans statements. Rows as objects; the SQL casts what it reads. */
interface Connection {
  query<T = Record<string, unknown>>(text: string, params?: string[]): Promise<T[]>;
  close(): Promise<void>;
}

async function connect(target: RestoreTarget): Promise<Connection> {
  if (target.kind === 'pglite') {
    if (!existsSync(target.dir)) mkdirSync(target.dir, { recursive: true });
    let db: PGlite;
    try {
      db = await PGlite.create(target.dir);
    } catch (err) {
      throw new CliError(`cannot open ${describeTarget(target)}: ${(err as Error).message}`);
    }
    return {
      query: async <T>(text: string, params: string[] = []) => (await db.query<T>(text, params)).rows,
      close: () => db.close(),
    };
  }
  const client = new pg.Client({ connectionString: target.url, connectionTimeoutMillis: 10_000 });
  // A dropped connection emits 'error'; the query in flight rejects with it anyway.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    throw new CliError(`cannot connect to ${describeTarget(target)}: ${(err as Error).message}`);
  }
  return {
    query: async <T>(text: string, params: string[] = []) => (await client.query(text, params)).rows as T[],
    close: () => client.end(),
  };
}

async function withConnection<T>(target: RestoreTarget, work: (conn: Connection) => Promise<T>): Promise<T> {
  const conn = await connect(target);
  try {
    return await work(conn);
  } finally {
    await conn.close();
  }
}

/** Applies `migrations` with the Neon HTTP driver over an in-process SQL endpoint on the target (as `mce migrate`). */
async function migrateTarget(target: RestoreTarget, migrations: Migration[]): Promise<string[]> {
  try {
    return await withNeon(target, (sql) => migrate(sql, migrations));
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`migrating ${describeTarget(target)} failed: ${(err as Error).message}`);
  }
}

async function withNeon<T>(target: RestoreTarget, work: (sql: NeonQueryFunction<false, false>) => Promise<T>) {
  const backend: SqlBackend =
    target.kind === 'postgres' ? postgresBackend(target.url) : await pgliteBackend(target.dir);
  const token = randomBytes(32).toString('base64url');
  try {
    const endpoint = await startSqlEndpoint({ backend, token });
    try {
      return await work(sqlClient({ url: 'postgresql://restore@localhost/restore', endpoint: endpoint.url, token }));
    } finally {
      await endpoint.close();
    }
  } finally {
    await backend.close();
  }
}

const ident = (name: string) => `"${name.replaceAll('"', '""')}"`;
const qualified = (table: string) => `public.${ident(table)}`;

/** The newest applied migration's timestamp (drizzle's bookkeeping), 0 when none is. */
async function appliedWhen(conn: Connection): Promise<number> {
  const [present] = await conn.query<{ present: boolean }>(
    `SELECT to_regclass('drizzle.__drizzle_migrations') IS NOT NULL AS present`,
  );
  if (!present?.present) return 0;
  const [row] = await conn.query<{ last: string }>(
    'SELECT coalesce(max(created_at), 0)::text AS last FROM drizzle.__drizzle_migrations',
  );
  return Number(row?.last ?? 0);
}

/** Public tables of the target (ordinary or partitioned). */
async function publicTables(conn: Connection): Promise<Set<string>> {
  const rows = await conn.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')`,
  );
  return new Set(rows.map((r) => r.name));
}

async function nonEmptyTables(conn: Connection, tables: string[]): Promise<string[]> {
  const present = await publicTables(conn);
  const full: string[] = [];
  for (const table of tables.filter((t) => present.has(t))) {
    const [row] = await conn.query<{ any: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${qualified(table)}) AS any`);
    if (row?.any) full.push(table);
  }
  return full;
}

interface Column {
  name: string;
  type: string;
  not_null: boolean;
  generated: boolean;
}

async function columnsOf(conn: Connection, table: string): Promise<Column[]> {
  return conn.query<Column>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
       a.attgenerated <> '' AS generated
     FROM pg_attribute a WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped
     ORDER BY a.attnum`,
    [qualified(table)],
  );
}

/** The INSERT for one table: generated columns are computed, not loaded; see the header for json nulls. */
function insertStatement(table: string, columns: Column[]): string {
  const loaded = columns.filter((c) => !c.generated);
  const values = loaded.map((c) =>
    c.not_null && (c.type === 'jsonb' || c.type === 'json')
      ? `coalesce(${ident(c.name)}, 'null'::${c.type})`
      : ident(c.name),
  );
  return `INSERT INTO ${qualified(table)} (${loaded.map((c) => ident(c.name)).join(', ')})
    SELECT ${values.join(', ')} FROM json_populate_recordset(NULL::${qualified(table)}, $1::text::json)`;
}

/** Backup rows must carry exactly the target's columns (same schema version, so they should). */
function checkColumns(table: string, columns: Column[], firstLine: string): void {
  const keys = Object.keys(JSON.parse(firstLine) as Record<string, unknown>);
  const names = new Set(columns.map((c) => c.name));
  const extra = keys.filter((k) => !names.has(k));
  const missing = [...names].filter((n) => !keys.includes(n));
  if (extra.length > 0 || missing.length > 0) {
    const parts = [
      extra.length ? `the backup has ${extra.join(', ')}, which the target lacks` : '',
      missing.length ? `the target has ${missing.join(', ')}, which the backup lacks` : '',
    ].filter(Boolean);
    throw new CliError(`table ${table}: columns differ (${parts.join('; ')})`);
  }
}

async function resetSequences(conn: Connection, table: string): Promise<void> {
  const rows = await conn.query<{ column: string; sequence: string | null }>(
    `SELECT a.attname AS column, pg_get_serial_sequence($1::text, a.attname) AS sequence
     FROM pg_attribute a WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped`,
    [qualified(table)],
  );
  for (const { column, sequence } of rows) {
    if (!sequence) continue;
    // Empty table: the next value is the sequence's first, as after a fresh migration.
    await conn.query(
      `SELECT setval($1::text::regclass, coalesce(max(${ident(column)}), 1), max(${ident(column)}) IS NOT NULL)
       FROM ${qualified(table)}`,
      [sequence],
    );
  }
}

interface PgError {
  code?: string;
  message: string;
  constraint?: string;
  detail?: string;
}

/** PostgreSQL's detail can quote a whole row: enough of it to find the row, not pages of it. */
const brief = (detail: string | undefined) =>
  detail ? `: ${detail.length > 300 ? `${detail.slice(0, 300)}...` : detail}` : '';

function loadError(table: string, err: unknown): CliError {
  if (err instanceof CliError) return err;
  const e = err as PgError;
  if (e.code === '23503') {
    return new CliError(
      `table ${table}: a row references a row the backup does not hold (${e.constraint ?? 'foreign key'}` +
        `${brief(e.detail)}). Nothing was restored. The backup is not consistent: it was taken ` +
        'while the database was being written to (see the manifest\'s "consistency"). Take a backup in a quiet ' +
        'period (e.g. under `mce emergency-shutdown on`) and restore that one.',
    );
  }
  return new CliError(`table ${table}: ${e.message}${brief(e.detail)}. Nothing was restored.`);
}

/** Loads every table in one transaction; returns rows per table. Rolls back on any failure. */
async function loadTables(
  conn: Connection,
  dir: string,
  manifest: Manifest,
  out: Output,
  batchRows: number,
): Promise<{ name: string; rows: number }[]> {
  const total = manifest.tables.reduce((n, t) => n + t.rows, 0);
  const present = await publicTables(conn);
  const missing = manifest.tables.filter((t) => !present.has(t.name)).map((t) => t.name);
  if (missing.length > 0) {
    throw new CliError(
      `the target has no table ${missing.join(', ')} although it is at ${manifest.schema_version}; is it the right database?`,
    );
  }
  const bar = out.progress('Restoring', total);
  const loaded: { name: string; rows: number }[] = [];
  let current = manifest.tables[0]?.name ?? '';
  await conn.query('BEGIN');
  try {
    for (const table of manifest.tables) {
      current = table.name;
      const columns = await columnsOf(conn, table.name);
      const insert = insertStatement(table.name, columns);
      for (const object of manifest.objects.filter((o) => o.table === table.name)) {
        // Checked before the transaction began; re-checked here, as the file is read again.
        const checked = objectLines(object, readFileSync(join(dir, object.name)));
        if ('problem' in checked) throw new CliError(checked.problem);
        const { lines } = checked;
        if (lines[0]) checkColumns(table.name, columns, lines[0]);
        for (let i = 0; i < lines.length; i += batchRows) {
          const batch = lines.slice(i, i + batchRows);
          await conn.query(insert, [`[${batch.join(',')}]`]);
          for (const _ of batch) bar.tick(table.name);
        }
      }
      const [row] = await conn.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${qualified(table.name)}`);
      const rows = Number(row?.n ?? -1);
      if (rows !== table.rows)
        throw new CliError(`table ${table.name}: ${rows} rows after loading, manifest says ${table.rows}`);
      await resetSequences(conn, table.name);
      loaded.push({ name: table.name, rows });
    }
    await conn.query('COMMIT');
  } catch (err) {
    await conn.query('ROLLBACK').catch(() => {});
    throw loadError(current, err);
  } finally {
    bar.done();
  }
  return loaded;
}

// ---------------------------------------------------------------------------------------------
// The whole restore

export interface RestoreOptions {
  /** A folder holding manifest.json and the objects, or a backup id to download through the API. */
  source: string;
  databaseUrl: string | undefined;
  api: ApiTargetOptions;
  out: Output;
  batchRows?: number;
}

export interface RestoreResult {
  backup_id: string;
  schema_version: string;
  encryption_key_version: string;
  target: string;
  tables: { name: string; rows: number }[];
  rows: number;
  /** Migrations applied before loading (empty target) and after (bringing the data forward). */
  migrations_before: string[];
  migrations_after: string[];
  seconds: number;
}

/** A folder when `source` names one (or its manifest.json); a backup id otherwise. */
export function sourceKind(source: string): { folder: string } | { id: string } {
  if (existsSync(source)) {
    const stat = statSync(source);
    if (stat.isDirectory()) return { folder: resolve(source) };
    if (source.endsWith(MANIFEST)) return { folder: resolve(source, '..') };
    throw new CliError(`${source} is a file: give the folder holding ${MANIFEST}`);
  }
  if (/^[A-Za-z0-9_-]{1,100}$/.test(source)) return { id: source };
  throw new CliError(`no folder ${source} (and it is not a backup id)`);
}

async function planMigrations(conn: Connection, manifest: Manifest, migrations: Migration[]) {
  const index = migrations.findIndex((m) => m.tag === manifest.schema_version);
  if (index < 0) {
    throw new CliError(
      `the backup's schema ${manifest.schema_version} is not among this checkout's migrations ` +
        `(newest ${migrations.at(-1)?.tag ?? 'none'}): restore it with the version of mce that made it, or a newer one`,
    );
  }
  const when = await appliedWhen(conn);
  if (when === 0) return { fresh: true, index };
  const applied = migrations.find((m) => m.when === when)?.tag ?? `an unknown migration (${when})`;
  if (applied !== manifest.schema_version) {
    throw new CliError(
      `the target is at schema ${applied}, the backup at ${manifest.schema_version}: restore into an empty ` +
        `database (no migrations applied), or one migrated to exactly ${manifest.schema_version}`,
    );
  }
  return { fresh: false, index };
}

export async function restoreBackup(options: RestoreOptions): Promise<RestoreResult> {
  const started = Date.now();
  const { out } = options;
  const target = parseTarget(options.databaseUrl);
  const source = sourceKind(options.source);
  const batchRows = options.batchRows ?? BATCH_ROWS;

  let dir: string;
  let temporary: string | undefined;
  if ('id' in source) {
    temporary = mkdtempSync(join(tmpdir(), 'mce-restore-'));
    dir = join(temporary, source.id);
  } else dir = source.folder;

  try {
    const migrations = readMigrations();
    // Schema version and emptiness, checked before anything is written (and, for a backup id,
    // before the objects are downloaded).
    let plan: { fresh: boolean; index: number } | undefined;
    const inspect = async (manifest: Manifest) => {
      plan = await withConnection(target, async (conn) => {
        const found = await planMigrations(conn, manifest, migrations);
        const full = await nonEmptyTables(
          conn,
          manifest.tables.map((t) => t.name),
        );
        if (full.length > 0) {
          throw new CliError(
            `${describeTarget(target)} already holds data (${full.join(', ')}): restore only into an empty database`,
          );
        }
        return found;
      });
    };
    let manifest: Manifest;
    if ('id' in source) {
      ({ manifest } = await downloadBackup(options.api, source.id, dir, out, inspect));
      out.info(`Downloaded backup ${manifest.id}: ${manifest.objects.length} objects, each checked.`);
    } else {
      // A folder is checked first: a damaged one never opens (or creates) the target.
      manifest = verifyFolder(dir);
      out.info(`Checked backup ${manifest.id} in ${dir}: ${manifest.objects.length} objects.`);
      await inspect(manifest);
    }
    if (!plan) throw new Error('the target was not inspected');
    const { fresh, index } = plan;

    let before: string[] = [];
    if (fresh) {
      before = await migrateTarget(target, migrations.slice(0, index + 1));
      out.info(`Migrated the empty database to ${manifest.schema_version} (${before.length} migrations).`);
    }
    const loaded = await withConnection(target, (conn) => loadTables(conn, dir, manifest, out, batchRows));
    // The target is at the backup's schema now; anything newer in this checkout brings it forward.
    const after = index < migrations.length - 1 ? await migrateTarget(target, migrations) : [];
    if (after.length > 0) out.info(`Brought the data forward: ${after.join(', ')}.`);

    return {
      backup_id: manifest.id,
      schema_version: manifest.schema_version,
      encryption_key_version: manifest.encryption_key_version,
      target: describeTarget(target),
      tables: loaded,
      rows: loaded.reduce((n, t) => n + t.rows, 0),
      migrations_before: before,
      migrations_after: after,
      seconds: Math.round((Date.now() - started) / 100) / 10,
    };
  } finally {
    if (temporary) rmSync(temporary, { recursive: true, force: true });
  }
}
