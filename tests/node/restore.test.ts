/**
 * The restore drill. The real Worker (wrangler.toml, in-process through tests/support/local-worker.ts)
 * runs over a migrated source database behind the local SQL endpoint; the test seeds it through the
 * API so every column type the schema uses holds data (uuid, text, text[], jsonb, timestamptz,
 * boolean, integer, bigserial), runs `mce backup` (which POSTs /api/v1/ops/backups until the export is
 * complete and verified), then `mce restore <id> --url <worker>` into an empty database, and compares
 * every backed-up table row for row (`row_to_json`, primary-key order) between source and target.
 * Also: a restore from a `mce backup --download` folder, a corrupted folder that loads nothing, and a
 * refused restore into a database that holds data.
 *
 * Databases: on PostgreSQL (TEST_DATABASE_URL) source and targets are fresh databases on that server,
 * the targets restored through `--database-url postgres://...`; otherwise the source is in-memory
 * PGlite and the targets PGlite data directories (`--database-url pglite:<dir>`). The drill runs
 * in full either way.
 */
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readMigrations } from '../../cli/lib/migrations.ts';
import { pgliteBackend, type SqlBackend } from '../../cli/sql-endpoint/backends.ts';
import { createTestDatabase, testPostgresUrl } from '../support/databases.ts';
import { type Run, runMce } from '../support/mce.ts';
import { type Json, startWorkerStack, type WorkerStack } from '../support/worker-stack.ts';

const TAGS = readMigrations().map((m) => m.tag);
const NEWEST = TAGS.at(-1);
const onPostgres = testPostgresUrl() !== undefined;

let dir: string;
let stack: WorkerStack;

function mce(args: string[]): Promise<Run> {
  const { MCE_TOKEN: _t, MCE_URL: _u, MCE_DEV_VARS: _d, PORT: _p, ...inherited } = process.env;
  return runMce(args, { ...inherited, MCE_DEV_VARS: join(dir, 'none.dev.vars'), MCE_TOKEN: stack.token });
}

/** A target database: `--database-url` for the CLI, and a way to read it once the CLI is done. */
interface Target {
  databaseUrl: string;
  read<T>(work: (db: SqlBackend) => Promise<T>): Promise<T>;
  /** No table and no migration was ever created there (PGlite: the directory was not even created). */
  untouched(): Promise<boolean>;
  drop(): Promise<void>;
}

const targets: Target[] = [];

async function newTarget(name: string): Promise<Target> {
  let target: Target;
  if (onPostgres) {
    const db = await createTestDatabase();
    target = {
      databaseUrl: db.url ?? '',
      read: (work) => work(db.backend),
      async untouched() {
        const { rows } = await db.backend.query({
          query: `SELECT count(*)::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname IN ('public', 'drizzle') AND c.relkind = 'r'`,
          params: [],
        });
        return rows[0]?.[0] === '0';
      },
      drop: () => db.drop(),
    };
  } else {
    // PGlite is one process's: open the directory only while no CLI run has it.
    const path = join(dir, name);
    target = {
      databaseUrl: `pglite:${path}`,
      async read(work) {
        const db = await pgliteBackend(path);
        try {
          return await work(db);
        } finally {
          await db.close();
        }
      },
      untouched: async () => !existsSync(path),
      drop: async () => rmSync(path, { recursive: true, force: true }),
    };
  }
  targets.push(target);
  return target;
}

/** A request that must succeed; its body. */
async function ok(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Json> {
  const res = await stack.api(method, path, body, headers);
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

async function hmacHex(secret: string, body: Uint8Array): Promise<string> {
  const key = await crypto.subtle.importKey(
    'raw',
    new TextEncoder().encode(secret),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign'],
  );
  return Buffer.from(await crypto.subtle.sign('HMAC', key, body as Uint8Array<ArrayBuffer>)).toString('hex');
}

async function seed(): Promise<void> {
  await ok('GET', '/api/v1/users/me');
  await ok('POST', '/api/v1/custom-fields', { key: 'estimate', field_type: 'integer' });
  await ok('POST', '/api/v1/custom-fields', { key: 'meta', label: 'Metadata', field_type: 'json' });
  await ok('POST', '/api/v1/custom-fields', { key: 'ship_at', field_type: 'date_time' });
  const group = await ok('POST', '/api/v1/board-groups', { name: 'Platform', description: 'Ops, "quoted"\nand more' });
  const ops = await ok('POST', '/api/v1/boards', { name: 'Ops', group_id: group.id, max_agents: 5 });
  const lab = await ok('POST', '/api/v1/boards', {
    name: 'Lab ünïcødé ✓',
    description: 'tab\there, backslash \\ and emoji 🚀',
    require_approval_for_done: false,
    comment_required_for_review: true,
  });
  const lead = await ok('POST', '/api/v1/agents', { board_id: ops.id, name: 'Lead', is_lead: true });
  const helper = await ok('POST', '/api/v1/agents', { board_id: ops.id, name: 'Worker' });
  await ok('POST', '/api/v1/agents', { board_id: lab.id, name: 'Lab lead', is_lead: true });

  const t1 = await ok('POST', `/api/v1/boards/${ops.id}/tasks`, {
    title: 'Rotate certificates',
    description: 'Line one\nLine two with "quotes" and {braces}',
    priority: 'high',
    due_at: '2026-12-01T10:00:00.123+02:00',
    tags: ['infra', 'needs, comma', 'quote"d', '{brace}'],
    custom_fields: {
      estimate: 5,
      meta: { nested: [1, 2.5, null, 'x'], big: 9007199254740991, empty: {} },
      ship_at: '2026-12-24T18:30:00Z',
    },
    assignee_agent_id: helper.id,
  });
  const t2 = await ok('POST', `/api/v1/boards/${ops.id}/tasks`, {
    title: 'Deploy',
    depends_on_task_ids: [t1.id],
    tags: [],
  });
  await ok('POST', `/api/v1/boards/${ops.id}/tasks`, { title: 'Write runbook', depends_on_task_ids: [t1.id, t2.id] });
  const t4 = await ok('POST', `/api/v1/boards/${lab.id}/tasks`, { title: 'Experiment', priority: 'low' });
  await ok('PATCH', `/api/v1/boards/${lab.id}/tasks/${t4.id}`, { status: 'in_progress', version: t4.version });
  await ok('PATCH', `/api/v1/boards/${lab.id}/tasks/${t4.id}`, { status: 'done', version: t4.version + 1 });

  await ok('POST', `/api/v1/boards/${ops.id}/tasks/${t1.id}/comments`, { body: 'Operator says: "go"\n\\o/' });
  await ok('POST', `/api/v1/agent/tasks/${t1.id}/comments`, { body: 'On it.' }, { 'X-Agent-Token': helper.token });
  await ok('POST', '/api/v1/agent/heartbeat', {}, { 'X-Agent-Token': lead.token });

  const approval = await ok('POST', `/api/v1/boards/${ops.id}/approvals`, {
    task_ids: [t2.id],
    action_type: 'deploy',
    payload: { reason: 'Ship the release', extra: { ticket: 42 } },
    confidence: 87,
    rubric_scores: { safety: 0.9, impact: 3 },
  });
  await ok('POST', `/api/v1/boards/${ops.id}/approvals/${approval.id}/approve`, { note: 'LGTM' });
  await ok('POST', `/api/v1/boards/${ops.id}/approvals`, {
    task_ids: [t1.id],
    action_type: 'close',
    payload: { reason: 'Done soon' },
    confidence: 10,
  });

  await ok('POST', `/api/v1/boards/${ops.id}/memory`, { content: 'Remember the freeze', tags: ['note', 'ops'] });
  await ok('POST', `/api/v1/boards/${ops.id}/memory`, { content: 'hello agents', tags: ['chat'], source: 'drill' });
  await ok('POST', '/api/v1/api-keys', {
    name: 'ci',
    scopes: ['read', 'write'],
    expires_at: '2027-01-01T00:00:00Z',
  });
  await ok('POST', '/api/v1/organizations/me/invites', { email: 'new@example.test', role: 'member' });
  await ok('POST', '/api/v1/events/ticket', {});
  await ok('POST', '/api/v1/admin/emergency-shutdown', { enabled: false, reason: 'restore drill' });

  // A webhook with a secret (sealed under ENCRYPTION_KEY) and payloads of every encoding.
  const secret = 'drill-secret-0123456789';
  const hook = await ok('POST', `/api/v1/boards/${ops.id}/webhooks`, { description: 'CI events', secret });
  const bodies: [string, Uint8Array][] = [
    ['application/json', Buffer.from('{"n": 123456789012345678901234567890, "s": "ü\\u00e9", "a": [true, null]}')],
    ['application/json', Buffer.from('null')],
    ['text/plain', Buffer.from('plain text, not JSON\nsecond line')],
    ['application/octet-stream', Uint8Array.from([0xff, 0xfe, 0x00, 0x41, 0xc3])],
  ];
  for (const [i, [type, body]] of bodies.entries()) {
    const res = await fetch(`${stack.worker.url}/api/v1/boards/${ops.id}/webhooks/${hook.id}`, {
      method: 'POST',
      headers: {
        'content-type': type,
        'x-hub-signature-256': `sha256=${await hmacHex(secret, body)}`,
        'x-github-delivery': `delivery-${i}`,
        'x-github-event': 'push',
      },
      body: body as Uint8Array<ArrayBuffer>,
    });
    expect(res.status, await res.text()).toBe(202);
  }
  // Deliveries run from the queue: wait until none is pending, so the source stands still.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const payloads = await ok('GET', `/api/v1/boards/${ops.id}/webhooks/${hook.id}/payloads`);
    if (payloads.items.length === bodies.length && payloads.items.every((p: Json) => p.status !== 'pending')) break;
    if (Date.now() > deadline) throw new Error(`webhook payloads still pending: ${JSON.stringify(payloads.items)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Every table a backup should hold (public, with a primary key, not `backups`) and its key columns. */
async function backedUpTables(db: SqlBackend): Promise<Map<string, string[]>> {
  const { rows } = await db.query({
    query: `SELECT c.relname, a.attname FROM pg_index i
      JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
      WHERE i.indisprimary AND n.nspname = 'public' AND c.relname <> 'backups' ORDER BY c.relname, k.ord`,
    params: [],
  });
  const tables = new Map<string, string[]>();
  for (const [table, column] of rows as string[][])
    tables.set(table ?? '', [...(tables.get(table ?? '') ?? []), column ?? '']);
  return tables;
}

type Dump = Map<string, string[]>;

async function dump(db: SqlBackend, tables: Map<string, string[]>): Promise<Dump> {
  const out: Dump = new Map();
  for (const [table, key] of tables) {
    const { rows } = await db.query({
      query: `SELECT row_to_json(t)::text FROM "${table}" t ORDER BY ${key.map((k) => `t."${k}"`).join(', ')}`,
      params: [],
    });
    out.set(
      table,
      rows.map((r) => r[0] ?? ''),
    );
  }
  return out;
}

/** Rows the backup itself writes while it runs: its job_runs row and its audit rows (see the drill). */
const bookkeeping: Record<string, (row: Json) => boolean> = {
  job_runs: (row) => row.job === 'backup',
  audit_logs: (row) => row.action === 'backup.run',
};

/**
 * The target holds what the source held when the backup started: identical for every table the
 * backup does not write to; for job_runs and audit_logs, every row from before plus only the
 * backup's own bookkeeping rows, as the export saw them (a `running` job row, say).
 */
function expectRestored(before: Dump, now: Dump, target: Dump): void {
  expect([...target.keys()].sort()).toEqual([...before.keys()].sort());
  for (const [table, rows] of before) {
    const restored = target.get(table) ?? [];
    const isBookkeeping = bookkeeping[table];
    if (!isBookkeeping) {
      expect(restored, table).toEqual(rows);
      expect(now.get(table), `${table} (source changed during the drill)`).toEqual(rows);
      continue;
    }
    const extra = restored.filter((line) => !rows.includes(line));
    expect(
      rows.filter((line) => !restored.includes(line)),
      `${table}: rows missing from the target`,
    ).toEqual([]);
    for (const line of extra) expect(isBookkeeping(JSON.parse(line) as Json), `${table}: ${line}`).toBe(true);
  }
}

/**
 * A copy of a downloaded backup with its rows edited and the manifest made to match (sizes, hashes,
 * counts): a backup the checks accept, holding what `edit` made of it.
 */
function rewriteBackup(from: string, to: string, edit: (manifest: Json, rows: Map<string, string[]>) => void): void {
  cpSync(from, to, { recursive: true });
  const manifest = JSON.parse(readFileSync(join(to, 'manifest.json'), 'utf8')) as Json;
  const rows = new Map<string, string[]>();
  for (const o of manifest.objects as Json[]) {
    rows.set(
      o.name,
      gunzipSync(readFileSync(join(to, o.name)))
        .toString('utf8')
        .split('\n')
        .filter(Boolean),
    );
  }
  edit(manifest, rows);
  manifest.objects = (manifest.objects as Json[]).filter((o) => rows.has(o.name));
  for (const o of manifest.objects as Json[]) {
    const lines = rows.get(o.name) ?? [];
    const body = gzipSync(`${lines.join('\n')}\n`);
    writeFileSync(join(to, o.name), body);
    Object.assign(o, {
      rows: lines.length,
      bytes: body.length,
      sha256: createHash('sha256').update(body).digest('hex'),
    });
  }
  for (const t of manifest.tables as Json[]) {
    const own = (manifest.objects as Json[]).filter((o) => o.table === t.name);
    Object.assign(t, { objects: own.length, rows: own.reduce((n, o) => n + o.rows, 0) });
  }
  writeFileSync(join(to, 'manifest.json'), JSON.stringify(manifest, null, 2));
}

const totalRows = (d: Dump) => [...d.values()].reduce((n, rows) => n + rows.length, 0);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mce-restore-drill-'));
  stack = await startWorkerStack({
    // Small objects and slices: tables span several objects, the export several POSTs.
    BACKUP_CHUNK_ROWS: '10',
    BACKUP_CHUNK_BYTES: '2048',
    BACKUP_SLICE_MS: '1000',
  });
  await seed();
}, 120_000);

afterAll(async () => {
  await stack?.close();
  for (const target of targets) await target.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

// Each CLI run into a new PGlite directory pays for its initdb (about 5 s): generous timeouts.
describe(`restore drill (${onPostgres ? 'PostgreSQL' : 'PGlite'})`, { timeout: 120_000 }, () => {
  let tables: Map<string, string[]>;
  let before: Dump;
  let backupId: string;
  let restored: Target;
  let folder: string;
  let scratch: Target;

  it('mce backup runs the export to completion through the Worker and it verifies', async () => {
    tables = await backedUpTables(stack.database.backend);
    before = await dump(stack.database.backend, tables);
    // Every column type the schema uses is exercised by data, not only by empty tables.
    for (const table of [
      'tasks',
      'task_dependencies',
      'task_comments',
      'approvals',
      'approval_tasks',
      'board_memory',
    ]) {
      expect(before.get(table)?.length, table).toBeGreaterThan(0);
    }
    for (const table of ['board_webhook_payloads', 'activity_events', 'agents', 'api_keys', 'platform_flags']) {
      expect(before.get(table)?.length, table).toBeGreaterThan(0);
    }

    const run = await mce(['backup', '--json', '--url', stack.worker.url]);
    expect(run.code, run.stderr + run.stdout).toBe(0);
    const backup = JSON.parse(run.stdout) as Json;
    expect(backup).toMatchObject({ status: 'complete', verification: 'passed', schema_version: NEWEST });
    expect(backup.objects).toBeGreaterThan(tables.size / 2);
    backupId = backup.id;
    expect(run.stdout + run.stderr).not.toContain(stack.token);
  });

  it('mce restore <id> --url rebuilds every backed-up table row for row in an empty database', async () => {
    restored = await newTarget('restored');
    const run = await mce([
      'restore',
      backupId,
      '--url',
      stack.worker.url,
      '--database-url',
      restored.databaseUrl,
      '--json',
    ]);
    expect(run.code, run.stderr + run.stdout).toBe(0);
    const summary = JSON.parse(run.stdout) as Json;
    expect(summary.backup_id).toBe(backupId);
    expect(summary.seconds).toBeGreaterThan(0);
    expect(summary.migrations_before).toEqual(TAGS);
    expect(summary.tables.map((t: Json) => t.name).sort()).toEqual([...tables.keys()].sort());

    const now = await dump(stack.database.backend, tables);
    await restored.read(async (db) => {
      const target = await dump(db, tables);
      expectRestored(before, now, target);
      expect(summary.rows).toBe(totalRows(target));
      for (const t of summary.tables as Json[]) expect(t.rows, t.name).toBe(target.get(t.name)?.length);
      // Sequences continue after the restored rows, as they would have in the source.
      for (const table of ['activity_events', 'job_runs']) {
        const { rows } = await db.query({
          query: `SELECT (SELECT coalesce(max(id), 0) FROM "${table}")::text,
            nextval(pg_get_serial_sequence('${table}', 'id'))::text`,
          params: [],
        });
        expect(Number(rows[0]?.[1]), table).toBe(Number(rows[0]?.[0]) + 1);
      }
      // The schema bookkeeping is the repository's, so `mce migrate` and the Worker agree with it.
      const { rows } = await db.query({ query: 'SELECT count(*)::text FROM drizzle.__drizzle_migrations', params: [] });
      expect(rows[0]?.[0]).toBe(String(TAGS.length));
    });
  });

  it('refuses to restore into a database that holds data, and changes nothing there', async () => {
    const run = await mce(['restore', backupId, '--url', stack.worker.url, '--database-url', restored.databaseUrl]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/already holds data \(.*tasks.*\): restore only into an empty database/);
    const now = await dump(stack.database.backend, tables);
    await restored.read(async (db) => expectRestored(before, now, await dump(db, tables)));
  });

  it('a downloaded folder restores the same; a corrupted one fails verification and loads nothing', async () => {
    folder = join(dir, 'download');
    const download = await mce([
      'backup',
      '--download',
      backupId,
      '--out',
      folder,
      '--url',
      stack.worker.url,
      '--json',
    ]);
    expect(download.code, download.stderr + download.stdout).toBe(0);
    const manifest = JSON.parse(readFileSync(join(folder, 'manifest.json'), 'utf8')) as Json;
    expect(manifest).toMatchObject({ format: 'mce-backup/1', id: backupId, schema_version: NEWEST });
    // Parents before children: the order the load relies on.
    const order = manifest.tables.map((t: Json) => t.name) as string[];
    expect(order.indexOf('organizations')).toBeLessThan(order.indexOf('boards'));
    expect(order.indexOf('boards')).toBeLessThan(order.indexOf('tasks'));
    expect(order.indexOf('tasks')).toBeLessThan(order.indexOf('task_dependencies'));
    expect(readdirSync(folder).sort()).toEqual(['manifest.json', ...manifest.objects.map((o: Json) => o.name)].sort());

    const verify = await mce(['backup', '--verify', backupId, '--url', stack.worker.url]);
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toMatch(/Verification passed/);

    const fromFolder = await newTarget('from-folder');
    const run = await mce(['restore', folder, '--database-url', fromFolder.databaseUrl]);
    expect(run.code, run.stderr + run.stdout).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`Restored backup ${backupId} into`));
    const now = await dump(stack.database.backend, tables);
    await fromFolder.read(async (db) => expectRestored(before, now, await dump(db, tables)));

    // Flip one byte in the middle of the largest object.
    const corrupted = join(dir, 'corrupted');
    cpSync(folder, corrupted, { recursive: true });
    const victim = (manifest.objects as Json[]).reduce((a, b) => (b.bytes > a.bytes ? b : a));
    const path = join(corrupted, victim.name);
    const bytes = readFileSync(path);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = (bytes[at] ?? 0) ^ 0xff;
    writeFileSync(path, bytes);
    expect(statSync(path).size).toBe(victim.bytes);

    scratch = await newTarget('scratch');
    const failed = await mce(['restore', corrupted, '--database-url', scratch.databaseUrl]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain(`${victim.name}: SHA-256 differs from the manifest`);
    expect(failed.stderr).toMatch(/failed verification; nothing was restored/);
    expect(await scratch.untouched(), 'no table created, no migration applied').toBe(true);
  });

  it('a backup with a row whose parent is missing stops at the foreign key and loads nothing', async () => {
    // What a backup taken during writes can hold: a board's children without the board.
    const orphaned = join(dir, 'orphaned');
    rewriteBackup(folder, orphaned, (manifest, rows) => {
      for (const o of (manifest.objects as Json[]).filter((x) => x.table === 'boards')) {
        rows.set(
          o.name,
          (rows.get(o.name) ?? []).filter((line) => (JSON.parse(line) as Json).name !== 'Ops'),
        );
      }
    });
    const run = await mce(['restore', orphaned, '--database-url', scratch.databaseUrl]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/table \w+: a row references a row the backup does not hold \(\w+_fk: Key \(board_id\)/);
    expect(run.stderr).toMatch(/Nothing was restored\. The backup is not consistent/);
    await scratch.read(async (db) => {
      for (const [table, rows] of await dump(db, tables)) expect(rows, table).toEqual([]);
    });

    // The target is now migrated (to the newest schema) and empty: a backup of another schema is refused there.
    const older = join(dir, 'older');
    rewriteBackup(folder, older, (manifest) => {
      manifest.schema_version = '0003_edge';
    });
    const refused = await mce(['restore', older, '--database-url', scratch.databaseUrl]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`the target is at schema ${NEWEST}, the backup at 0003_edge`);
  });

  it('a backup of an older schema loads at that schema, then the newer migrations bring it forward', async () => {
    // Later migrations only add tables (0004_ops: job_runs and backups; 0005_gateways: gateways and
    // device_identity): without them, this backup is a 0003_edge one.
    const later = new Set(['job_runs', 'gateways', 'device_identity']);
    const older = join(dir, 'older-0003');
    rewriteBackup(folder, older, (manifest, rows) => {
      manifest.schema_version = '0003_edge';
      manifest.tables = (manifest.tables as Json[]).filter((t) => !later.has(t.name));
      for (const o of manifest.objects as Json[]) if (later.has(o.table)) rows.delete(o.name);
    });
    const target = await newTarget('older');
    const run = await mce(['restore', older, '--database-url', target.databaseUrl, '--json']);
    expect(run.code, run.stderr + run.stdout).toBe(0);
    const summary = JSON.parse(run.stdout) as Json;
    expect(summary.migrations_before).toEqual(['0000_foundation', '0001_identity', '0002_domain', '0003_edge']);
    expect(summary.migrations_after).toEqual(TAGS.slice(4));
    const now = await dump(stack.database.backend, tables);
    await target.read(async (db) => {
      const restoredRows = await dump(db, tables);
      for (const table of later) {
        expect(restoredRows.get(table), table).toEqual([]);
        restoredRows.set(table, before.get(table) ?? []);
      }
      expectRestored(before, now, restoredRows);
    });
  });
});
