/**
 * Backup export throughput against `pg_dump` on the same PostgreSQL database, in rows per second.
 *
 * A fresh database is created on BENCH_DATABASE_URL's server (default: the local trust-auth server
 * at postgresql://postgres@127.0.0.1:5432/postgres; the benchmark is skipped when neither answers),
 * migrated and seeded with SQL (generate_series): 1 organization, 20 boards, 200 agents, 100,000
 * tasks, 200,000 activity events, 50,000 audit-log rows, 20,000 webhook payloads of about 1 KB, all
 * multiplied by BENCH_BACKUP_SCALE (default 1.0). The real Worker (wrangler.toml, in-process through
 * tests/support/local-worker.ts, with its local R2) reaches it through the local SQL endpoint, and
 * the benchmark calls `POST /api/v1/ops/backups` as a platform admin until the backup is complete
 * (the last call also verifies it). Then `pg_dump --format=custom --compress=6` and
 * `pg_dump --format=plain | gzip -6` dump the same database. BENCH_RUNS repetitions, medians.
 * The database, the Worker's local state and the dump files are removed afterwards.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { sqlClient } from '../cli/lib/database.ts';
import { migrate } from '../cli/lib/migrations.ts';
import { postgresBackend } from '../cli/sql-endpoint/backends.ts';
import { startSqlEndpoint } from '../cli/sql-endpoint/server.ts';
import { type LocalWorker, startLocalWorker } from '../tests/support/local-worker.ts';
import { median } from './lib/load.ts';
import type { BenchConfig } from './run.ts';

const DEFAULT_SERVER = 'postgresql://postgres@127.0.0.1:5432/postgres';
const SCALE = Number(process.env.BENCH_BACKUP_SCALE ?? 1);
const TITLE = '## Backup export vs pg_dump';

/** Seeded volume at BENCH_BACKUP_SCALE=1. */
const BASE = { boards: 20, agents: 200, tasks: 100_000, events: 200_000, audit: 50_000, payloads: 20_000 };

interface ExportRun {
  rows: number;
  bytes: number;
  objects: number;
  slices: number;
  posts: number;
  /** Backup row: created_at → completed_at (the export alone, database clock). */
  exportSeconds: number;
  /** Wall clock from the first POST to the last response (export, verification, HTTP). */
  totalSeconds: number;
}

interface DumpRun {
  seconds: number;
  bytes: number;
}

interface Backup {
  id: string;
  status: 'running' | 'complete' | 'failed';
  total_rows: number;
  total_bytes: number;
  objects: number;
  slices: number;
  verification: 'passed' | 'failed' | null;
  error: string | null;
}

const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;
const scaled = (n: number) => Math.max(1, Math.round(n * SCALE));
const int = (n: number) => Math.round(n).toLocaleString('en');
const plural = (n: number, word: string) => `${int(n)} ${word}${n === 1 ? '' : 's'}`;
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

async function reachable(url: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (err) {
    return (err as Error).message || String(err);
  } finally {
    await client.end().catch(() => {});
  }
}

function skipped(reason: string): string {
  return `${TITLE}

Skipped: ${reason}. \`pg_dump\` needs a real PostgreSQL server: set \`BENCH_DATABASE_URL\` (a role that may
create databases) or run one at \`${DEFAULT_SERVER}\`.
`;
}

async function admin<T>(serverUrl: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Realistic rows, generated server-side: one statement per table. */
async function seed(url: string, config: BenchConfig): Promise<typeof BASE> {
  const n: typeof BASE = {
    boards: scaled(BASE.boards),
    agents: scaled(BASE.agents),
    tasks: scaled(BASE.tasks),
    events: scaled(BASE.events),
    audit: scaled(BASE.audit),
    payloads: scaled(BASE.payloads),
  };
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const step = async (label: string, text: string, values: unknown[]) => {
      const start = process.hrtime.bigint();
      const r = await client.query(text, values);
      config.progress(`backup-export seed: ${int(r.rowCount ?? 0)} ${label} in ${seconds(start).toFixed(1)} s`);
    };
    await client.query('BEGIN');
    const org = crypto.randomUUID();
    await client.query('INSERT INTO organizations (id, name) VALUES ($1, $2)', [org, 'Backup benchmark']);
    await step(
      'boards',
      `INSERT INTO boards (organization_id, name, description)
       SELECT $1, 'Board ' || i, 'Work stream ' || i || ': ' || repeat(md5(i::text), 2)
       FROM generate_series(1, $2::int) AS i`,
      [org, n.boards],
    );
    await step(
      'board webhooks',
      `INSERT INTO board_webhooks (id, organization_id, board_id, description)
       SELECT gen_random_uuid(), $1, id, 'CI notifications for ' || name FROM boards`,
      [org],
    );
    await step(
      'agents',
      `WITH b AS (SELECT array_agg(id ORDER BY id) AS ids, count(*)::int AS n FROM boards)
       INSERT INTO agents (organization_id, board_id, name, status, token_hash, token_prefix, last_seen_at)
       SELECT $1, b.ids[1 + i % b.n], 'agent-' || i, 'online',
         encode(sha256(convert_to('mca_backup_' || i, 'UTF8')), 'hex'), 'mca_back', now() - i * interval '1 minute'
       FROM generate_series(1, $2::int) AS i, b`,
      [org, n.agents],
    );
    await step(
      'tasks',
      `WITH b AS (SELECT array_agg(id ORDER BY id) AS ids, count(*)::int AS n FROM boards),
         a AS (SELECT array_agg(id ORDER BY id) AS ids, count(*)::int AS n FROM agents)
       INSERT INTO tasks (organization_id, board_id, title, description, status, priority, due_at,
         assignee_agent_id, created_by_agent_id, tags, custom_fields, version, done_at, created_at, updated_at)
       SELECT $1, b.ids[1 + i % b.n], 'Task ' || i || ': investigate ' || left(md5(i::text), 12),
         left(repeat('Steps and context for task ' || i || ', see ' || md5(i::text) || '. ', 4), 200),
         (ARRAY['inbox', 'in_progress', 'review', 'done'])[1 + i % 4],
         (ARRAY['low', 'medium', 'high', 'urgent'])[1 + (i / 4) % 4],
         CASE WHEN i % 3 = 0 THEN now() + (i % 90) * interval '1 day' END,
         a.ids[1 + i % a.n], a.ids[1 + (i * 7) % a.n],
         ARRAY['area-' || i % 5, 'tag-' || i % 17, 'sprint-' || i % 31],
         jsonb_build_object('estimate', i % 13, 'component', 'component-' || i % 40,
           'customer', left(md5((i * 3)::text), 16), 'billable', i % 2 = 0),
         1 + i % 5, CASE WHEN i % 4 = 3 THEN now() - (i % 30) * interval '1 hour' END,
         now() - i * interval '1 second', now() - i * interval '500 milliseconds'
       FROM generate_series(1, $2::int) AS i, b, a`,
      [org, n.tasks],
    );
    await step(
      'activity events',
      `WITH t AS (SELECT id, board_id, assignee_agent_id, row_number() OVER (ORDER BY id) AS k FROM tasks)
       INSERT INTO activity_events (organization_id, board_id, task_id, agent_id, type, message, actor_type,
         actor_id, payload, created_at)
       SELECT $1, t.board_id, t.id, t.assignee_agent_id,
         (ARRAY['task.created', 'task.updated', 'task.status_changed', 'task.commented'])[1 + i % 4],
         'Task ' || t.k || ' changed by its agent (event ' || i || ')', 'agent', t.assignee_agent_id,
         jsonb_build_object('task_id', t.id, 'from', (ARRAY['inbox', 'in_progress', 'review'])[1 + i % 3],
           'to', (ARRAY['in_progress', 'review', 'done'])[1 + i % 3],
           'changes', jsonb_build_object('title', left(md5(i::text), 20), 'version', i % 7)),
         now() - i * interval '250 milliseconds'
       FROM generate_series(1, $2::int) AS i JOIN t ON t.k = 1 + i % (SELECT count(*) FROM tasks)`,
      [org, n.events],
    );
    await step(
      'audit-log rows',
      `INSERT INTO audit_logs (created_at, organization_id, actor_type, actor_id, action, success, target_type,
         target_id, ip, user_agent, request_id, details)
       SELECT now() - i * interval '2 seconds', $1, (ARRAY['user', 'api_key', 'agent', 'system'])[1 + i % 4],
         left(md5(i::text), 24), (ARRAY['task.update', 'agent.token_rotate', 'board.update', 'api_key.create'])[1 + i % 4],
         i % 50 <> 0, 'task', gen_random_uuid()::text, '203.0.113.' || i % 250, 'Mozilla/5.0 (X11; Linux x86_64) mce-bench/1.0',
         md5((i * 11)::text), jsonb_build_object('fields', jsonb_build_array('status', 'priority'), 'reason', 'seeded row ' || i)
       FROM generate_series(1, $2::int) AS i`,
      [org, n.audit],
    );
    await step(
      'webhook payloads',
      `WITH w AS (SELECT array_agg(id ORDER BY id) AS ids, array_agg(board_id ORDER BY id) AS boards,
           count(*)::int AS n FROM board_webhooks),
         p AS (SELECT i, w.ids[1 + i % w.n] AS webhook_id, w.boards[1 + i % w.n] AS board_id,
           jsonb_build_object('event', 'deploy.finished', 'delivery', i, 'repository', 'acme/service-' || i % 12,
             'ref', 'refs/heads/main', 'commits', jsonb_build_array(
               jsonb_build_object('sha', md5(i::text) || left(md5((i + 1)::text), 8), 'message', repeat(md5((i * 2)::text), 5)),
               jsonb_build_object('sha', md5((i * 3)::text) || left(md5((i + 2)::text), 8), 'message', repeat(md5((i * 5)::text), 5)),
               jsonb_build_object('sha', md5((i * 7)::text) || left(md5((i + 3)::text), 8), 'message', repeat(md5((i * 9)::text), 5))),
             'sender', jsonb_build_object('login', 'ci-bot', 'id', 4242)) AS payload
           FROM generate_series(1, $2::int) AS i, w)
       INSERT INTO board_webhook_payloads (organization_id, board_id, webhook_id, delivery_id, encoding, payload,
         byte_size, content_type, user_agent, headers, source_ip, status, attempts, enqueued_at, delivered_at, created_at)
       SELECT $1, board_id, webhook_id, 'dlv-' || i, 'json', payload, octet_length(payload::text), 'application/json',
         'GitHub-Hookshot/bench', jsonb_build_object('x-github-event', 'deployment_status', 'x-request-id', md5(i::text)),
         '192.0.2.' || i % 250, (ARRAY['delivered', 'delivered', 'delivered', 'pending', 'dead_lettered'])[1 + i % 5],
         1 + i % 3, now() - i * interval '3 seconds', CASE WHEN i % 5 < 3 THEN now() - i * interval '3 seconds' END,
         now() - i * interval '3 seconds'
       FROM p`,
      [org, n.payloads],
    );
    await client.query('COMMIT');
    // Hint bits and statistics now, so neither contender pays for them during its first read.
    const start = process.hrtime.bigint();
    await client.query('VACUUM (ANALYZE)');
    config.progress(`backup-export seed: VACUUM (ANALYZE) in ${seconds(start).toFixed(1)} s`);
  } finally {
    await client.end();
  }
  return n;
}

async function post(worker: LocalWorker, token: string): Promise<Backup> {
  const res = await fetch(`${worker.url}/api/v1/ops/backups`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: '{}',
  });
  const text = await res.text();
  if (res.status !== 200) {
    throw new Error(
      `POST /api/v1/ops/backups: ${res.status} ${text.slice(0, 500)}\n${worker.logs().slice(-10).join('\n')}`,
    );
  }
  return JSON.parse(text) as Backup;
}

/** One full export through the Worker: POST until complete; the last call verifies. */
async function runExport(worker: LocalWorker, token: string, db: pg.Client): Promise<ExportRun> {
  const start = process.hrtime.bigint();
  let posts = 1;
  let backup = await post(worker, token);
  while (backup.status === 'running') {
    posts += 1;
    backup = await post(worker, token);
  }
  const totalSeconds = seconds(start);
  if (backup.status !== 'complete' || backup.verification !== 'passed') {
    throw new Error(`backup ${backup.id}: ${backup.status}, verification ${backup.verification}: ${backup.error}`);
  }
  const { rows } = await db.query<{ export_seconds: number }>(
    'SELECT extract(epoch FROM completed_at - created_at)::float8 AS export_seconds FROM backups WHERE id = $1',
    [backup.id],
  );
  return {
    rows: backup.total_rows,
    bytes: backup.total_bytes,
    objects: backup.objects,
    slices: backup.slices,
    posts,
    exportSeconds: Number(rows[0]?.export_seconds ?? Number.NaN),
    totalSeconds,
  };
}

function finished(child: ChildProcess, name: string, stderr: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`${name} exited with ${code ?? signal}: ${stderr().slice(0, 1_000)}`)),
    );
  });
}

function collect(child: ChildProcess): () => string {
  let text = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  return () => text;
}

async function pgDumpCustom(url: string, file: string): Promise<DumpRun> {
  const start = process.hrtime.bigint();
  const child = spawn('pg_dump', ['--format=custom', '--compress=6', '-f', file, `--dbname=${url}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  await finished(child, 'pg_dump', collect(child));
  return { seconds: seconds(start), bytes: statSync(file).size };
}

async function pgDumpPlainGzip(url: string, file: string): Promise<DumpRun> {
  const out = openSync(file, 'w');
  try {
    const start = process.hrtime.bigint();
    const dump = spawn('pg_dump', ['--format=plain', `--dbname=${url}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    const gzip = spawn('gzip', ['-6'], { stdio: [dump.stdout ?? 'ignore', out, 'pipe'] });
    // gzip holds the pipe's read end now; this process's copy would keep pg_dump's stdout open.
    dump.stdout?.destroy();
    await Promise.all([finished(dump, 'pg_dump', collect(dump)), finished(gzip, 'gzip', collect(gzip))]);
    return { seconds: seconds(start), bytes: statSync(file).size };
  } finally {
    closeSync(out);
  }
}

export async function benchBackupExport(
  config: BenchConfig,
  _bundle: string,
  settings: Record<string, string>,
): Promise<string> {
  if (!(SCALE > 0))
    throw new Error(`BENCH_BACKUP_SCALE must be a positive number, not ${process.env.BENCH_BACKUP_SCALE}`);
  const serverUrl = process.env.BENCH_DATABASE_URL || DEFAULT_SERVER;
  const source = process.env.BENCH_DATABASE_URL ? '`BENCH_DATABASE_URL`' : `\`${DEFAULT_SERVER}\``;
  const unreachable = await reachable(serverUrl);
  if (unreachable) return skipped(`no PostgreSQL at ${source} (${unreachable})`);
  const pgDump = spawnSync('pg_dump', ['--version'], { encoding: 'utf8' });
  if (pgDump.status !== 0) return skipped('`pg_dump` is not installed');
  const pgDumpVersion = `pg_dump ${pgDump.stdout.trim().split(' ')[2] ?? ''}`.trim();
  const hasGzip = spawnSync('gzip', ['--version']).status === 0;

  const name = `mce_bench_backup_${Date.now()}_${randomBytes(4).toString('hex')}`;
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const dbUrl = url.toString();
  const serverVersion = await admin(serverUrl, async (c) => {
    await c.query(`CREATE DATABASE ${name}`);
    const { rows } = await c.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    return rows[0]?.v.split(' ')[0] ?? '?';
  });
  const dir = mkdtempSync(join(tmpdir(), 'mce-bench-backup-'));
  const backend = postgresBackend(dbUrl);
  const token = randomBytes(32).toString('base64url');
  const adminToken = settings.LOCAL_AUTH_TOKEN ?? randomBytes(48).toString('base64url');
  let endpoint: Awaited<ReturnType<typeof startSqlEndpoint>> | undefined;
  let worker: LocalWorker | undefined;
  const reader = new pg.Client({ connectionString: dbUrl });
  const exports: ExportRun[] = [];
  const custom: DumpRun[] = [];
  const plain: DumpRun[] = [];
  let seeded: typeof BASE;
  let seedSeconds: number;
  let databaseBytes: number;
  try {
    endpoint = await startSqlEndpoint({ backend, token });
    const databaseUrl = settings.DATABASE_URL ?? 'postgresql://bench@localhost/bench';
    await migrate(sqlClient({ url: databaseUrl, endpoint: endpoint.url, token }));
    const seedStart = process.hrtime.bigint();
    seeded = await seed(dbUrl, config);
    seedSeconds = seconds(seedStart);
    await reader.connect();
    databaseBytes = Number(
      (await reader.query<{ size: string }>('SELECT pg_database_size(current_database())::text AS size')).rows[0]
        ?.size ?? 0,
    );

    worker = await startLocalWorker({
      bindings: {
        ...settings,
        ENVIRONMENT: 'test',
        AUTH_MODE: 'local',
        DATABASE_URL: databaseUrl,
        DATABASE_HTTP_ENDPOINT: endpoint.url,
        DATABASE_HTTP_TOKEN: token,
        LOCAL_AUTH_TOKEN: adminToken,
        ENCRYPTION_KEY: settings.ENCRYPTION_KEY ?? randomBytes(32).toString('base64'),
      },
    });

    for (let run = 1; run <= config.runs; run++) {
      const e = await runExport(worker, adminToken, reader);
      exports.push(e);
      config.progress(
        `backup-export run ${run}/${config.runs}: export ${int(e.rows)} rows in ${e.exportSeconds.toFixed(1)} s ` +
          `(${int(e.rows / e.exportSeconds)} rows/s; ${e.totalSeconds.toFixed(1)} s with verification, ${plural(e.posts, 'POST')})`,
      );
      const c = await pgDumpCustom(dbUrl, join(dir, `run${run}.dump`));
      custom.push(c);
      config.progress(`backup-export run ${run}/${config.runs}: pg_dump custom ${c.seconds.toFixed(1)} s`);
      rmSync(join(dir, `run${run}.dump`), { force: true });
      if (hasGzip) {
        const p = await pgDumpPlainGzip(dbUrl, join(dir, `run${run}.sql.gz`));
        plain.push(p);
        config.progress(`backup-export run ${run}/${config.runs}: pg_dump plain | gzip ${p.seconds.toFixed(1)} s`);
        rmSync(join(dir, `run${run}.sql.gz`), { force: true });
      }
    }
  } finally {
    await worker?.close().catch((err: unknown) => config.progress(`backup-export: worker close: ${String(err)}`));
    await reader.end().catch(() => {});
    await endpoint?.close();
    await backend.close().catch(() => {});
    await admin(serverUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    rmSync(dir, { recursive: true, force: true });
  }

  // Same row count for every contender: what the export read (the seeded rows plus the Worker's own
  // job_runs and audit rows; pg_dump also dumps the few rows of backups and drizzle's journal).
  const rows = median(exports.map((e) => e.rows));
  const exportSeconds = median(exports.map((e) => e.exportSeconds));
  const totalSeconds = median(exports.map((e) => e.totalSeconds));
  const customSeconds = median(custom.map((d) => d.seconds));
  const baseline = rows / customSeconds;
  const line = (label: string, secs: number, bytes: number) =>
    `| ${label} | ${int(rows)} | ${secs.toFixed(2)} | ${int(rows / secs)} | ${mib(bytes)} | ${(rows / secs / baseline).toFixed(2)}× |`;
  const table = [
    line('Worker export (`created_at` → `completed_at`)', exportSeconds, median(exports.map((e) => e.bytes))),
    line(
      `Worker export + verification (wall clock, ${plural(median(exports.map((e) => e.posts)), 'POST')})`,
      totalSeconds,
      median(exports.map((e) => e.bytes)),
    ),
    line('`pg_dump --format=custom --compress=6`', customSeconds, median(custom.map((d) => d.bytes))),
    ...(plain.length
      ? [
          line(
            '`pg_dump --format=plain \\| gzip -6`',
            median(plain.map((d) => d.seconds)),
            median(plain.map((d) => d.bytes)),
          ),
        ]
      : []),
  ];
  const objects = median(exports.map((e) => e.objects));
  const volume = [
    `${int(seeded.boards)} boards`,
    `${int(seeded.agents)} agents`,
    `${int(seeded.tasks)} tasks`,
    `${int(seeded.events)} activity events`,
    `${int(seeded.audit)} audit-log rows`,
    `${int(seeded.payloads)} webhook payloads (~1 KB JSON each)`,
  ].join(', ');
  return `${TITLE}

Data: one organization with ${volume}; BENCH_BACKUP_SCALE=${SCALE}, ${mib(databaseBytes)} on disk with indexes,
seeded with SQL in ${seedSeconds.toFixed(0)} s into a fresh database on PostgreSQL ${serverVersion} (${source}).
The real Worker (wrangler.toml through \`unstable_startWorker\`, local R2, default BACKUP_CHUNK_ROWS,
BACKUP_CHUNK_BYTES and BACKUP_SLICE_MS) reaches it through the local SQL endpoint and exports it with
\`POST /api/v1/ops/backups\`, called until the backup is complete (${plural(objects, 'object')}); the last call
also verifies it. ${pgDumpVersion} dumps the same database. Rows/s is the export's row count over each
method's time, medians of ${plural(config.runs, 'run')}; the last column is rows/s ÷ \`pg_dump --format=custom\`'s.

| method | rows | seconds | rows/s | output | vs pg_dump |
|---|---|---|---|---|---|
${table.join('\n')}

Why they differ: the Worker reads each table in keyset pages of at most BACKUP_CHUNK_ROWS rows, each page one
SQL-over-HTTP request (rows serialized with \`row_to_json\`, sent as JSON by the SQL endpoint, parsed in the
Worker), then gzips the page, hashes it, writes it to R2 (here the local emulator, on disk) and updates the
\`backups\` row: several round trips per object, one object at a time. Verification re-reads, hashes and gunzips
every object. \`pg_dump\` reads each table with one \`COPY\` stream over a single connection and has no per-chunk
bookkeeping. Everything here is on one machine: no network latency between the Worker and the database. On Neon
each page and each bookkeeping statement is a round trip to the database's region, so expect the export to be
slower there than this local figure. The outputs are about the same size: NDJSON repeats every column name in
every row, but gzip absorbs most of that.
`;
}
