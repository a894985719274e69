/**
 * Operations on cron triggers: the daily backup to the local R2 bucket (manifest, gzip NDJSON,
 * verification, resume after an interruption, retention), the hourly cleanup at its boundaries,
 * and ops health.
 */
import { createScheduledController } from 'cloudflare:test';
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { settingsSchema } from '../../workers/config';
import { DAILY, dispatchScheduled, HOURLY } from '../../workers/cron/dispatcher';
import { openDatabase } from '../../workers/db/client';
import { applyRetention, runBackup } from '../../workers/services/backups';
import { api, json, operatorHeaders, send, testEnv } from './helpers';

const settings = settingsSchema.parse(testEnv);
const db = await openDatabase(settings);

async function gunzip(bytes: ArrayBuffer): Promise<string> {
  return new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'))).text();
}

const manifestOf = async (id: string) =>
  (await (await testEnv.BACKUPS.get(`backups/${id}/manifest.json`))?.json()) as {
    id: string;
    schema_version: string;
    encryption_key_version: string;
    tables: { name: string; rows: number; objects: number }[];
    objects: { name: string; table: string; rows: number; bytes: number; sha256: string }[];
  };

describe('daily backup', () => {
  it('writes gzip NDJSON objects and a manifest to R2, and verifies them', async () => {
    const board = (await send('POST', '/api/v1/boards', { name: `backup board ${crypto.randomUUID()}` })).body;
    await dispatchScheduled(createScheduledController({ cron: DAILY }), testEnv);

    const { rows } = await db.execute<{ id: string; status: string; verification: string }>(
      sql`SELECT id, status, verification FROM backups ORDER BY created_at DESC LIMIT 1`,
    );
    const backup = rows[0];
    expect(backup).toMatchObject({ status: 'complete', verification: 'passed' });
    const manifest = await manifestOf(backup?.id ?? '');
    expect(manifest.id).toBe(backup?.id);
    expect(manifest.schema_version).toMatch(/^\d{4}_/);
    expect(manifest.encryption_key_version).toMatch(/^[0-9a-f]{16}$/);
    const names = manifest.tables.map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(['organizations', 'boards', 'tasks', 'audit_logs', 'job_runs']));
    expect(names).not.toContain('backups');
    // Parents come before the tables that reference them.
    expect(names.indexOf('organizations')).toBeLessThan(names.indexOf('boards'));
    expect(names.indexOf('boards')).toBeLessThan(names.indexOf('tasks'));

    const boardObjects = manifest.objects.filter((o) => o.table === 'boards');
    const lines = (
      await Promise.all(
        boardObjects.map(async (o) =>
          gunzip(await ((await testEnv.BACKUPS.get(`backups/${backup?.id}/${o.name}`)) as R2ObjectBody).arrayBuffer()),
        ),
      )
    )
      .join('')
      .split('\n')
      .filter(Boolean);
    expect(lines.length).toBe(boardObjects.reduce((n, o) => n + o.rows, 0));
    expect(lines.map((l) => JSON.parse(l).id)).toContain(board.id);

    const run = await db.execute<{ status: string }>(
      sql`SELECT status FROM job_runs WHERE job = 'backup' ORDER BY id DESC LIMIT 1`,
    );
    expect(run.rows[0]?.status).toBe('succeeded');
  });

  it('resumes an interrupted export at the next chunk, not from scratch', async () => {
    const small = settingsSchema.parse({ ...testEnv, BACKUP_CHUNK_ROWS: '10' });
    let puts = 0;
    const failing = {
      ...testEnv,
      BACKUPS: {
        put: async (...args: Parameters<R2Bucket['put']>) => {
          puts += 1;
          if (puts > 3) throw new Error('R2 went away');
          return testEnv.BACKUPS.put(...args);
        },
      },
    } as unknown as Env;
    await expect(runBackup(failing, db, small, { start: true })).rejects.toThrow('R2 went away');
    const { rows } = await db.execute<{ id: string; objects: number }>(
      sql`SELECT id, jsonb_array_length(objects) AS objects FROM backups WHERE status = 'running'`,
    );
    expect(rows).toHaveLength(1);
    expect(Number(rows[0]?.objects)).toBe(3);

    let resumedPuts = 0;
    const counting = {
      ...testEnv,
      BACKUPS: {
        ...testEnv.BACKUPS,
        get: testEnv.BACKUPS.get.bind(testEnv.BACKUPS),
        list: testEnv.BACKUPS.list.bind(testEnv.BACKUPS),
        delete: testEnv.BACKUPS.delete.bind(testEnv.BACKUPS),
        put: async (...args: Parameters<R2Bucket['put']>) => {
          resumedPuts += 1;
          return testEnv.BACKUPS.put(...args);
        },
      },
    } as unknown as Env;
    const result = await runBackup(counting, db, small, { start: false });
    expect(result).toMatchObject({ backup_id: rows[0]?.id, outcome: 'complete', verification: 'passed' });
    const manifest = await manifestOf(rows[0]?.id ?? '');
    // Every object but the first three came from the second run (plus the manifest).
    expect(resumedPuts).toBe(manifest.objects.length - 3 + 1);
    expect(new Set(manifest.objects.map((o) => o.name)).size).toBe(manifest.objects.length);
  });

  it('fails verification when an object is corrupted, and ops health says so', async () => {
    const res = await send('POST', '/api/v1/ops/backups', {});
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'complete', verification: 'passed' });
    const manifest = await manifestOf(res.body.id);
    const victim = manifest.objects[0];
    await testEnv.BACKUPS.put(`backups/${res.body.id}/${victim?.name}`, 'not gzip at all');
    const verified = await send('POST', `/api/v1/ops/backups/${res.body.id}/verify`, {});
    expect(verified.body.verification).toBe('failed');
    expect(JSON.stringify(verified.body.verification_detail)).toContain(victim?.name);

    const health = await send('GET', '/api/v1/ops/health');
    expect(health.status).toBe(200);
    expect(health.body.backups.last_verification).toBe('failed');
    expect(health.body.status).toBe('degraded');
    expect(JSON.stringify(health.body.problems)).toContain('failed verification');

    const download = await send('GET', `/api/v1/ops/backups/${res.body.id}/objects/manifest.json`);
    expect(download.body.id).toBe(res.body.id);
    expect((await send('GET', `/api/v1/ops/backups/${res.body.id}/objects/..%2Fsecret`)).status).toBe(404);
  });

  it('keeps the newest verified backup past retention and deletes the other old ones with their objects', async () => {
    const old = (n: number) => `bold${n}-${crypto.randomUUID().slice(0, 6)}`;
    const [verifiedOld, expired] = [old(1), old(2)];
    await db.execute(sql`DELETE FROM backups WHERE verification = 'passed'`);
    for (const [id, verification, age] of [
      [verifiedOld, 'passed', 40],
      [expired, 'failed', 50],
    ] as const) {
      await db.execute(sql`INSERT INTO backups (id, status, created_at, schema_version, key_version, verification)
        VALUES (${id}, 'complete', now() - make_interval(days => ${age}::int), 'x', 'y', ${verification})`);
      await testEnv.BACKUPS.put(`backups/${id}/manifest.json`, '{}');
    }
    expect(await applyRetention(testEnv, db, settings)).toBeGreaterThanOrEqual(1);
    const ids = (await db.execute<{ id: string }>(sql`SELECT id FROM backups`)).rows.map((r) => r.id);
    expect(ids).toContain(verifiedOld);
    expect(ids).not.toContain(expired);
    expect(await testEnv.BACKUPS.get(`backups/${expired}/manifest.json`)).toBeNull();
    expect(await testEnv.BACKUPS.head(`backups/${verifiedOld}/manifest.json`)).not.toBeNull();
  });

  it('is for platform admins only', async () => {
    const key = await send('POST', '/api/v1/api-keys', { name: 'ops key', scopes: ['admin'] });
    const headers = { Authorization: `Bearer ${key.body.secret}` };
    expect((await send('GET', '/api/v1/ops/health', undefined, headers)).status).toBe(403);
    expect((await send('POST', '/api/v1/ops/backups', {}, headers)).status).toBe(403);
  });
});

describe('hourly cleanup', () => {
  it('removes exactly the rows past their limits and nothing else', async () => {
    const org = crypto.randomUUID();
    await db.execute(sql`INSERT INTO organizations (id, name) VALUES (${org}, 'cleanup org')`);
    const at = (days: number, minutes: number) =>
      sql`now() - make_interval(days => ${days}::int) + make_interval(mins => ${minutes}::int)`;
    // Just past each limit (one minute older) and just inside it (one minute younger).
    for (const [label, minutes] of [
      ['old', -1],
      ['young', 1],
    ] as const) {
      await db.execute(sql`INSERT INTO audit_logs (organization_id, actor_type, action, created_at, details)
        VALUES (${org}, 'system', ${`cleanup.${label}`}, ${at(365, minutes)}, '{}')`);
      await db.execute(sql`INSERT INTO activity_events (organization_id, type, message, actor_type, created_at)
        VALUES (${org}, ${`cleanup.${label}`}, 'x', 'system', ${at(90, minutes)})`);
      await db.execute(sql`INSERT INTO api_keys (organization_id, name, prefix, key_hash, scopes, revoked_at)
        VALUES (${org}, ${`cleanup ${label}`}, 'mce_x', ${crypto.randomUUID()}, array['read'], ${at(30, minutes)})`);
      await db.execute(sql`INSERT INTO invites (organization_id, role, token_hash, expires_at)
        VALUES (${org}, 'member', ${crypto.randomUUID()}, ${at(30, minutes)})`);
      await db.execute(sql`INSERT INTO event_tickets (ticket_hash, organization_id, principal_type, principal_id, expires_at)
        VALUES (${`${label}-${crypto.randomUUID()}`}, ${org}, 'user', ${crypto.randomUUID()}, ${at(0, minutes)})`);
    }
    const board = (await send('POST', '/api/v1/boards', { name: 'cleanup board' })).body;
    const hook = (await send('POST', `/api/v1/boards/${board.id}/webhooks`, { description: 'cleanup' })).body;
    const payload = (status: string, days: number, minutes: number) =>
      db.execute(sql`INSERT INTO board_webhook_payloads (organization_id, board_id, webhook_id, encoding, payload, byte_size, status, created_at, enqueued_at)
        SELECT organization_id, board_id, id, 'json', '{}', 2, ${status}, ${at(days, minutes)}, now() FROM board_webhooks WHERE id = ${hook.id}`);
    await payload('delivered', 30, -1);
    await payload('delivered', 30, 1);
    await payload('dead_lettered', 30, -1);
    // Pending payloads are owed to an agent: never removed, however old.
    await payload('pending', 400, 0);

    await dispatchScheduled(createScheduledController({ cron: HOURLY }), testEnv);
    // Safe to run twice: the second run finds nothing more of ours.
    await dispatchScheduled(createScheduledController({ cron: HOURLY }), testEnv);

    const left = async (query: ReturnType<typeof sql>) =>
      (await db.execute<{ label: string }>(query)).rows.map((r) => r.label).sort();
    expect(await left(sql`SELECT action AS label FROM audit_logs WHERE organization_id = ${org}`)).toEqual([
      'cleanup.young',
    ]);
    expect(await left(sql`SELECT type AS label FROM activity_events WHERE organization_id = ${org}`)).toEqual([
      'cleanup.young',
    ]);
    expect(await left(sql`SELECT name AS label FROM api_keys WHERE organization_id = ${org}`)).toEqual([
      'cleanup young',
    ]);
    expect((await db.execute(sql`SELECT 1 FROM invites WHERE organization_id = ${org}`)).rows).toHaveLength(1);
    expect(
      await left(
        sql`SELECT split_part(ticket_hash, '-', 1) AS label FROM event_tickets WHERE organization_id = ${org}`,
      ),
    ).toEqual(['young']);
    expect(await left(sql`SELECT status AS label FROM board_webhook_payloads WHERE webhook_id = ${hook.id}`)).toEqual([
      'delivered',
      'pending',
    ]);

    const runs = await db.execute<{ status: string; counts: unknown }>(
      sql`SELECT status, counts FROM job_runs WHERE job = 'cleanup' ORDER BY id DESC LIMIT 2`,
    );
    expect(runs.rows.map((r) => r.status)).toEqual(['succeeded', 'succeeded']);
    const health = await json(await api('/api/v1/ops/health', { headers: operatorHeaders() }));
    expect(health.jobs.map((j: { job: string }) => j.job)).toEqual(expect.arrayContaining(['cleanup']));
  });
});
