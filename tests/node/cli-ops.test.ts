/**
 * `mce onboard` and `mce doctor` as an operator runs them: child processes, each with its own .dev.vars
 * (MCE_DEV_VARS), wrangler config (MCE_WRANGLER_CONFIG) and database (a SQL endpoint over a test database).
 * The Worker's /readyz is a stand-in answering as the real one does (the real one is tested in
 * tests/integration); the Upstash check talks to the local Upstash REST server over a real redis-server.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadWorkerSettings } from '../../cli/commands/onboard.ts';
import { sqlClient } from '../../cli/lib/database.ts';
import { parseDevVars, updateDevVars } from '../../cli/lib/dev-vars.ts';
import { migrate } from '../../cli/lib/migrations.ts';
import { type SqlEndpoint, startSqlEndpoint } from '../../cli/sql-endpoint/server.ts';
import { startUpstashRest, type UpstashRest } from '../../cli/upstash-rest/server.ts';
import { createTestDatabase, type TestDatabase, testToken } from '../support/databases.ts';
import { type Run, runMce } from '../support/mce.ts';
import { startRedis, type TestRedis, unusedPort } from '../support/redis.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const ONBOARD_FIX = 'npm run mce -- onboard';
const CHECK_NAMES = [
  'ENCRYPTION_KEY',
  'LOCAL_AUTH_TOKEN',
  'settings',
  'database',
  'schema',
  'worker',
  'rate limit',
  'cron',
  'queues',
  'backup bucket',
];

interface Check {
  name: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

interface Report {
  ok: boolean;
  checks: Check[];
  notes: string[];
}

let dir: string;
let database: TestDatabase;
let endpoint: SqlEndpoint;
let sqlToken: string;
let readyz: Server;
let workerUrl: string;
/** What the stand-in Worker's /readyz answers, and the paths it was asked for. */
let readiness: 'ready' | 'db-down' = 'ready';
const workerRequests: string[] = [];
let completeConfig: string;
let brokenConfig: string;
let files = 0;

function mce(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const {
    MCE_TOKEN: _t,
    MCE_URL: _u,
    MCE_DEV_VARS: _d,
    MCE_WRANGLER_CONFIG: _w,
    PORT: _p,
    DATABASE_URL: _du,
    DATABASE_HTTP_ENDPOINT: _de,
    DATABASE_HTTP_TOKEN: _dt,
    DEV_POSTGRES_URL: _dp,
    SQL_ENDPOINT_PORT: _sp,
    ...inherited
  } = process.env;
  return runMce(args, {
    ...inherited,
    MCE_DEV_VARS: join(dir, 'none.dev.vars'),
    MCE_WRANGLER_CONFIG: completeConfig,
    ...env,
  });
}

const freshPath = (label: string) => join(dir, `${label}-${++files}.dev.vars`);
const readVars = (path: string) => parseDevVars(readFileSync(path, 'utf8'));

function expectNoneOf(run: Run, values: (string | undefined)[]): void {
  const printed = run.stdout + run.stderr;
  for (const value of values) {
    expect(value, 'a secret to look for').toBeTruthy();
    expect(printed).not.toContain(value);
  }
}

const secretsOf = (vars: Record<string, string>) => [
  vars.ENCRYPTION_KEY,
  vars.LOCAL_AUTH_TOKEN,
  vars.DATABASE_HTTP_TOKEN,
];

/** `mce onboard` into a fresh file, pointed at the test database: what a healthy local setup has. */
async function healthyDevVars(label: string): Promise<string> {
  const path = freshPath(label);
  const run = await mce(['onboard'], { MCE_DEV_VARS: path });
  expect(run.code).toBe(0);
  updateDevVars({ DATABASE_HTTP_ENDPOINT: endpoint.url, DATABASE_HTTP_TOKEN: sqlToken }, path);
  return path;
}

async function doctor(devVars: string, env: Record<string, string> = {}, ...args: string[]): Promise<Run> {
  const run = await mce(['doctor', '--url', workerUrl, ...args], { MCE_DEV_VARS: devVars, ...env });
  expectNoneOf(run, secretsOf(readVars(devVars)).filter(Boolean));
  return run;
}

async function doctorJson(devVars: string, env: Record<string, string> = {}): Promise<{ run: Run; report: Report }> {
  const run = await doctor(devVars, env, '--json');
  return { run, report: JSON.parse(run.stdout) as Report };
}

const check = (report: Report, name: string) => report.checks.find((c) => c.name === name);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mce-ops-'));
  database = await createTestDatabase();
  sqlToken = testToken();
  endpoint = await startSqlEndpoint({ backend: database.backend, token: sqlToken });

  readyz = createServer((req, res) => {
    workerRequests.push(`${req.method} ${req.url}`);
    const body =
      readiness === 'ready'
        ? { ok: true, failed: [], checks: { db: { ok: true, latency_ms: 3 }, schema: { ok: true, migration: 'x' } } }
        : { ok: false, failed: ['db'], checks: { db: { ok: false, latency_ms: 2000, error: 'timed out' } } };
    if (req.url !== '/readyz') return res.writeHead(404).end();
    res.writeHead(body.ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => readyz.listen(0, '127.0.0.1', resolve));
  workerUrl = `http://127.0.0.1:${(readyz.address() as AddressInfo).port}`;

  // The repository's config, with the backup bucket binding whether or not it has landed there yet.
  let config = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8');
  if (!/binding\s*=\s*"BACKUPS"/.test(config)) {
    config += '\n[[r2_buckets]]\nbinding = "BACKUPS"\nbucket_name = "mce-backups"\n';
  }
  completeConfig = join(dir, 'wrangler.toml');
  writeFileSync(completeConfig, config);
  brokenConfig = join(dir, 'broken-wrangler.toml');
  writeFileSync(
    brokenConfig,
    [
      'name = "mission-control-edge"',
      '[vars]',
      'AUTH_MODE = "local"',
      '[[queues.producers]]',
      'binding = "WEBHOOK_DELIVERIES"',
      'queue = "mce-webhook-deliveries"',
      '[[queues.consumers]]',
      'queue = "mce-webhook-deliveries"',
      'dead_letter_queue = "mce-webhook-deliveries-dlq"',
      '[triggers]',
      'crons = ["0 3 * * *"]',
      '',
    ].join('\n'),
  );
});

afterAll(async () => {
  await new Promise((resolve) => readyz?.close(resolve));
  await endpoint?.close();
  await database?.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe('mce onboard', () => {
  it('writes a valid ENCRYPTION_KEY and LOCAL_AUTH_TOKEN to a new 0600 .dev.vars and prints the production steps, no value', async () => {
    const path = freshPath('new');
    const run = await mce(['onboard'], { MCE_DEV_VARS: path });
    expect(run.code).toBe(0);
    expect(statSync(path).mode & 0o777).toBe(0o600);

    const vars = readVars(path);
    const key = Buffer.from(vars.ENCRYPTION_KEY ?? '', 'base64');
    expect(key).toHaveLength(32);
    expect(key.toString('base64')).toBe(vars.ENCRYPTION_KEY);
    expect((vars.LOCAL_AUTH_TOKEN ?? '').length).toBeGreaterThanOrEqual(50);
    // The Worker's own schema accepts the whole file as its settings.
    expect((await loadWorkerSettings()).loadSettings(vars)).toMatchObject({ ok: true });

    for (const step of [
      'npx wrangler secret put DATABASE_URL',
      'npx wrangler secret put ENCRYPTION_KEY',
      'npx wrangler secret put LOCAL_AUTH_TOKEN',
      'npx wrangler queues create mce-webhook-deliveries\n',
      'npx wrangler queues create mce-webhook-deliveries-dlq',
      'password manager',
    ]) {
      expect(run.stdout).toContain(step);
    }
    expect(run.stdout).toMatch(/backup is unusable without the ENCRYPTION_KEY/);
    expectNoneOf(run, secretsOf(vars));
  });

  it('keeps existing secrets and every other line without --force, and makes the file private', async () => {
    const path = freshPath('existing');
    const key = randomBytes(32).toString('base64');
    const token = randomBytes(48).toString('base64url');
    writeFileSync(path, `# mine\nENCRYPTION_KEY=${key}\nLOCAL_AUTH_TOKEN=${token}\nCUSTOM=1\n`);
    chmodSync(path, 0o644);

    const run = await mce(['onboard'], { MCE_DEV_VARS: path });
    expect(run.code).toBe(0);
    const vars = readVars(path);
    expect(vars).toMatchObject({ ENCRYPTION_KEY: key, LOCAL_AUTH_TOKEN: token, CUSTOM: '1' });
    expect(vars.DATABASE_URL).toMatch(/^postgresql:\/\//);
    expect(readFileSync(path, 'utf8')).toMatch(/^# mine\n/);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(run.stdout).toContain('Kept the existing ENCRYPTION_KEY and LOCAL_AUTH_TOKEN');
    expect(run.stderr).not.toContain('WARNING');
    expectNoneOf(run, [key, token]);

    // Run again: nothing left to write, nothing changed, but a file opened up in between is private again.
    chmodSync(path, 0o644);
    const again = await mce(['onboard', '--json'], { MCE_DEV_VARS: path });
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ written: [], kept: ['ENCRYPTION_KEY', 'LOCAL_AUTH_TOKEN'] });
    expect(readVars(path)).toEqual(vars);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('--force replaces both and warns loudly that the old key strands secrets and backups', async () => {
    const path = freshPath('force');
    const key = randomBytes(32).toString('base64');
    const token = randomBytes(48).toString('base64url');
    writeFileSync(path, `ENCRYPTION_KEY=${key}\nLOCAL_AUTH_TOKEN=${token}\nCUSTOM=1\n`, { mode: 0o600 });

    const run = await mce(['onboard', '--force'], { MCE_DEV_VARS: path });
    expect(run.code).toBe(0);
    const vars = readVars(path);
    expect(vars.ENCRYPTION_KEY).not.toBe(key);
    expect(vars.LOCAL_AUTH_TOKEN).not.toBe(token);
    expect(Buffer.from(vars.ENCRYPTION_KEY ?? '', 'base64')).toHaveLength(32);
    expect(vars.CUSTOM).toBe('1');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(run.stderr).toMatch(/WARNING: ENCRYPTION_KEY .* was REPLACED/);
    expect(run.stderr).toContain('unreadable unless the old key is kept as ENCRYPTION_KEY_PREVIOUS');
    expect(run.stderr).toContain('backups');
    expectNoneOf(run, [key, token, ...secretsOf(vars)]);
  });

  it('keeps a weak existing token without --force but says so', async () => {
    const path = freshPath('weak');
    const weak = `weak-${randomBytes(6).toString('hex')}`;
    writeFileSync(path, `ENCRYPTION_KEY=${randomBytes(32).toString('base64')}\nLOCAL_AUTH_TOKEN=${weak}\n`);

    const run = await mce(['onboard', '--json'], { MCE_DEV_VARS: path });
    expect(run.code).toBe(0);
    expect(readVars(path).LOCAL_AUTH_TOKEN).toBe(weak);
    expect(JSON.parse(run.stdout).invalid).toEqual([
      { setting: 'LOCAL_AUTH_TOKEN', problem: 'must be at least 50 characters' },
    ]);
    expect(run.stderr).toContain('LOCAL_AUTH_TOKEN');
    expect(run.stderr).toContain('--force replaces it');
    expectNoneOf(run, [weak]);
  });

  it('--show-secrets prints the two values once, as NAME=value lines alone on stdout', async () => {
    const path = freshPath('show');
    const run = await mce(['onboard', '--show-secrets'], { MCE_DEV_VARS: path });
    expect(run.code).toBe(0);
    const vars = readVars(path);
    expect(run.stdout).toBe(`ENCRYPTION_KEY=${vars.ENCRYPTION_KEY}\nLOCAL_AUTH_TOKEN=${vars.LOCAL_AUTH_TOKEN}\n`);
    expect(run.stderr).toContain('npx wrangler secret put ENCRYPTION_KEY');
    expect(run.stderr).not.toContain(vars.ENCRYPTION_KEY);
    expect(run.stderr).not.toContain(vars.LOCAL_AUTH_TOKEN);
  });

  it('--json says what it wrote and holds no value', async () => {
    const path = freshPath('json');
    const run = await mce(['onboard', '--json'], { MCE_DEV_VARS: path });
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result).toMatchObject({ path, mode: '0600', kept: [], replaced: [] });
    expect(result.written).toEqual(expect.arrayContaining(['ENCRYPTION_KEY', 'LOCAL_AUTH_TOKEN', 'DATABASE_URL']));
    expect(result).not.toHaveProperty('secrets');
    expectNoneOf(run, secretsOf(readVars(path)));
  });
});

describe('mce doctor', () => {
  it('flags pending migrations with the migrate fix, then passes every check once they are applied', async () => {
    const path = await healthyDevVars('healthy');

    const pending = await doctorJson(path);
    expect(pending.run.code).toBe(1);
    expect(check(pending.report, 'database')?.ok).toBe(true);
    expect(check(pending.report, 'schema')).toMatchObject({ ok: false, fix: 'npm run mce -- migrate' });
    expect(pending.report.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual(['schema']);

    await migrate(sqlClient({ url: 'postgresql://test@localhost/test', endpoint: endpoint.url, token: sqlToken }));
    workerRequests.length = 0;

    const human = await doctor(path);
    expect(human.code).toBe(0);
    expect(human.stdout).not.toContain('✗');
    for (const name of CHECK_NAMES) expect(human.stdout).toMatch(new RegExp(`✓ ${name} `));
    expect(human.stdout).toContain(`All ${CHECK_NAMES.length} checks passed.`);
    expect(human.stdout).toContain('crons: ');
    expect(human.stdout).toContain('"0 * * * *"');
    expect(human.stdout).toContain('durable-object backend: built in');
    expect(human.stdout).toMatch(/i backups: A backup is unusable without the ENCRYPTION_KEY/);
    expect(workerRequests).toEqual(['GET /readyz']);

    const { run, report } = await doctorJson(path);
    expect(run.code).toBe(0);
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => c.name)).toEqual(CHECK_NAMES);
    expect(report.checks.every((c) => c.ok && c.fix === undefined)).toBe(true);
    expect(report.notes).toHaveLength(1);
  });

  it('fails ENCRYPTION_KEY with the onboard fix when it is missing, and exits 1', async () => {
    const path = await healthyDevVars('no-key');
    const text = readFileSync(path, 'utf8');
    writeFileSync(path, text.replace(/^ENCRYPTION_KEY=.*\n/m, ''));
    expect(readVars(path).ENCRYPTION_KEY).toBeUndefined();

    const { run, report } = await doctorJson(path);
    expect(run.code).toBe(1);
    expect(report.ok).toBe(false);
    expect(check(report, 'ENCRYPTION_KEY')).toEqual({
      name: 'ENCRYPTION_KEY',
      ok: false,
      detail: 'missing',
      fix: ONBOARD_FIX,
    });
    // Reported once, under its own name: the other settings are judged as valid.
    expect(report.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual(['ENCRYPTION_KEY']);

    const human = await doctor(path);
    expect(human.code).toBe(1);
    expect(human.stdout).toMatch(/✗ ENCRYPTION_KEY +missing\n +fix: npm run mce -- onboard\n/);
    expect(human.stdout).toContain(`1 of ${CHECK_NAMES.length} checks failed.`);
  });

  it('names weak secrets and invalid settings and what is wrong, never their values', async () => {
    const path = await healthyDevVars('weak');
    const placeholder = `change-me-${randomBytes(30).toString('hex')}`;
    const shortKey = randomBytes(16).toString('base64');
    const badRate = `fast-${randomBytes(4).toString('hex')}`;
    updateDevVars({ LOCAL_AUTH_TOKEN: placeholder, ENCRYPTION_KEY: shortKey, AGENT_RATE_LIMIT: badRate }, path);

    const { run, report } = await doctorJson(path);
    expect(run.code).toBe(1);
    expect(check(report, 'LOCAL_AUTH_TOKEN')?.ok).toBe(false);
    expect(check(report, 'LOCAL_AUTH_TOKEN')?.detail).toContain('looks like a placeholder');
    expect(check(report, 'ENCRYPTION_KEY')?.ok).toBe(false);
    expect(check(report, 'ENCRYPTION_KEY')?.detail).toContain('must be 32 random bytes');
    expect(check(report, 'AGENT_RATE_LIMIT')).toMatchObject({
      ok: false,
      detail: 'must look like 300/60 (requests per seconds)',
    });
    expect(check(report, 'AGENT_RATE_LIMIT')?.fix).toContain('AGENT_RATE_LIMIT');
    expectNoneOf(run, [placeholder, shortKey, badRate]);
  });

  it('fails the worker check with the npm start fix when nothing answers', async () => {
    const path = await healthyDevVars('no-worker');
    const port = await unusedPort();
    const run = await mce(['doctor', '--json', '--url', `http://127.0.0.1:${port}`], { MCE_DEV_VARS: path });
    expect(run.code).toBe(1);
    const worker = check(JSON.parse(run.stdout) as Report, 'worker');
    expect(worker?.ok).toBe(false);
    expect(worker?.detail).toContain(`not answering at http://127.0.0.1:${port}`);
    expect(worker?.fix).toContain('`npm start`');
  });

  it("reports a Worker that answers but is not ready, with /readyz's failed checks", async () => {
    const path = await healthyDevVars('not-ready');
    readiness = 'db-down';
    try {
      const { run, report } = await doctorJson(path);
      expect(run.code).toBe(1);
      const worker = check(report, 'worker');
      expect(worker?.ok).toBe(false);
      expect(worker?.detail).toContain('HTTP 503');
      expect(worker?.detail).toContain('db FAILED (2000 ms, timed out)');
      expect(worker?.fix).toContain('cannot reach its database');
    } finally {
      readiness = 'ready';
    }
  });

  it('fails the database and schema checks when the database does not answer', async () => {
    const path = await healthyDevVars('no-database');
    // 127.0.0.2 is loopback but not what withDatabase treats as the local endpoint, so it cannot fall back.
    updateDevVars({ DATABASE_HTTP_ENDPOINT: `http://127.0.0.2:${await unusedPort()}/sql` }, path);
    const { run, report } = await doctorJson(path);
    expect(run.code).toBe(1);
    expect(check(report, 'database')?.ok).toBe(false);
    expect(check(report, 'database')?.detail).toMatch(/^unreachable: .*ECONNREFUSED/);
    expect(check(report, 'schema')).toMatchObject({ ok: false, detail: 'not checked: no database' });
  });

  it('fails a wrangler config without the hourly cron, the dead-letter consumer and the BACKUPS bucket', async () => {
    const path = await healthyDevVars('broken-config');
    const { run, report } = await doctorJson(path, { MCE_WRANGLER_CONFIG: brokenConfig });
    expect(run.code).toBe(1);
    expect(check(report, 'cron')).toMatchObject({ ok: false });
    expect(check(report, 'cron')?.detail).toContain('"0 3 * * *"');
    expect(check(report, 'cron')?.fix).toContain('"0 * * * *"');
    expect(check(report, 'queues')?.ok).toBe(false);
    expect(check(report, 'queues')?.detail).toContain(
      'no consumer for the dead-letter queue mce-webhook-deliveries-dlq',
    );
    expect(check(report, 'backup bucket')).toMatchObject({
      ok: false,
      detail: 'no [[r2_buckets]] binding named BACKUPS',
    });
    expect(check(report, 'backup bucket')?.fix).toContain('add the BACKUPS bucket binding');
  });

  describe('with RATE_LIMIT_BACKEND=upstash', () => {
    let redis: TestRedis;
    let upstash: UpstashRest;
    const upstashToken = testToken();

    beforeAll(async () => {
      redis = await startRedis();
      upstash = await startUpstashRest({ redisUrl: redis.url, token: upstashToken });
    });

    afterAll(async () => {
      await upstash?.close();
      await redis?.stop();
    });

    it('PINGs Upstash with the token, and fails when the token is refused', async () => {
      const path = await healthyDevVars('upstash');
      updateDevVars(
        { RATE_LIMIT_BACKEND: 'upstash', UPSTASH_REDIS_REST_URL: upstash.url, UPSTASH_REDIS_REST_TOKEN: upstashToken },
        path,
      );
      const good = await doctorJson(path);
      expect(check(good.report, 'rate limit')?.ok).toBe(true);
      expect(check(good.report, 'rate limit')?.detail).toContain(`upstash at ${upstash.url} answers PING`);
      expectNoneOf(good.run, [upstashToken]);

      const wrong = testToken();
      updateDevVars({ UPSTASH_REDIS_REST_TOKEN: wrong }, path);
      const bad = await doctorJson(path);
      expect(bad.run.code).toBe(1);
      expect(check(bad.report, 'rate limit')?.ok).toBe(false);
      expect(check(bad.report, 'rate limit')?.detail).toContain('HTTP 401');
      expect(check(bad.report, 'rate limit')?.fix).toContain('UPSTASH_REDIS_REST_TOKEN');
      expectNoneOf(bad.run, [wrong, upstashToken]);
    });
  });

  it('is listed in mce --help with onboard', async () => {
    const run = await mce(['--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('mce onboard [--force] [--show-secrets]');
    expect(run.stdout).toContain('mce doctor [--url URL]');
  });
});
