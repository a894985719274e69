/**
 * `mce doctor`: is the configuration complete, and is everything the system needs there and answering?
 * A checklist of ✓/✗, each ✗ with the one thing to do about it; exit 1 when anything failed. It reads the
 * local side of the configuration (.dev.vars over wrangler.toml [vars], judged by the Worker's own settings
 * schema); production secrets cannot be read back, so a deployed Worker is judged by its /readyz (--url).
 * Setting values never appear in the output: only their names and what is wrong with them.
 */

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'smol-toml';
import { DEFAULT_WORKER_PORT } from '../lib/api-client.ts';
import { withDatabase } from '../lib/database.ts';
import { defaultDevVars, devVarsPath, ROOT, readDevVars } from '../lib/dev-vars.ts';
import { migrationStatus, readMigrations } from '../lib/migrations.ts';
import { CliError, type Output } from '../lib/output.ts';
import { BACKUP_KEY_WARNING, loadWorkerSettings, settingProblem, type WorkerSettings } from './onboard.ts';

export const doctorHelp = `mce doctor [--url URL] [--json]
  Checks settings and secret strength (.dev.vars over wrangler.toml [vars], by the Worker's own schema),
  the database and its migrations, the Worker's /readyz, the rate-limit backend, and the cron, queue and
  R2 bindings in wrangler.toml. Prints ✓ or ✗ with a fix per check; exits 1 on any ✗. Never prints a value.
  Worker: --url, else MCE_URL, else http://127.0.0.1:${DEFAULT_WORKER_PORT} (--port / PORT as for mce start).
  Files: MCE_DEV_VARS (default ./.dev.vars), MCE_WRANGLER_CONFIG (default ./wrangler.toml).`;

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

export interface DoctorOptions {
  url?: string;
  port?: number;
}

const ONBOARD = 'npm run mce -- onboard';
const MIGRATE = 'npm run mce -- migrate';
const HOURLY = '0 * * * *';
const DATABASE_TIMEOUT_MS = 20_000;
const HTTP_TIMEOUT_MS = 5_000;
/** Settings whose values are credentials: scrubbed from anything printed, set with `wrangler secret put`. */
const SECRET_SETTINGS = [
  'DATABASE_URL',
  'DATABASE_HTTP_TOKEN',
  'ENCRYPTION_KEY',
  'ENCRYPTION_KEY_PREVIOUS',
  'LOCAL_AUTH_TOKEN',
  'UPSTASH_REDIS_REST_TOKEN',
];

// ---- wrangler.toml ------------------------------------------------------------------------------------------

type TomlValue = string | number | boolean | TomlValue[] | TomlTable;
interface TomlTable {
  [key: string]: TomlValue;
}

const isTable = (v: TomlValue | undefined): v is TomlTable => typeof v === 'object' && v !== null && !Array.isArray(v);
const tablesOf = (v: TomlValue | undefined): TomlTable[] => (Array.isArray(v) ? v.filter(isTable) : []);

/** wrangler.toml as data; a file that does not parse fails the checks that read it. */
export function parseToml(text: string): TomlTable {
  return parse(text) as TomlTable;
}

export function wranglerConfigPath(): string {
  return process.env.MCE_WRANGLER_CONFIG || join(ROOT, 'wrangler.toml');
}

// ---- configuration checks -----------------------------------------------------------------------------------

function encryptionKeyCheck(settings: WorkerSettings, env: Record<string, string>): Check {
  const name = 'ENCRYPTION_KEY';
  if (!env[name]?.trim()) return { name, ok: false, detail: 'missing', fix: ONBOARD };
  const problem = settingProblem(settings, name, env[name]);
  if (problem) {
    return {
      name,
      ok: false,
      detail: problem,
      fix: `put back the key your secrets were sealed under; only if none are, delete the line and run \`${ONBOARD}\``,
    };
  }
  const rotating = env.ENCRYPTION_KEY_PREVIOUS?.trim()
    ? '; ENCRYPTION_KEY_PREVIOUS is set: a rotation is under way (`npm run mce -- rotate-key status`)'
    : '';
  return { name, ok: true, detail: `present, 32 bytes${rotating}` };
}

function localTokenCheck(settings: WorkerSettings, env: Record<string, string>): Check {
  const name = 'LOCAL_AUTH_TOKEN';
  const value = env[name]?.trim();
  const mode = env.AUTH_MODE?.trim() || 'local';
  if (!value && mode !== 'local') return { name, ok: true, detail: `not used (AUTH_MODE=${mode})` };
  if (!value) return { name, ok: false, detail: 'missing (required when AUTH_MODE is local)', fix: ONBOARD };
  const problem = settingProblem(settings, name, value);
  if (problem) {
    return {
      name,
      ok: false,
      detail: `${problem} (it has ${value.length} characters)`,
      fix: `replace it with a random value (openssl rand -base64 48), or delete the line and run \`${ONBOARD}\``,
    };
  }
  return { name, ok: true, detail: `${value.length} characters (at least ${settings.LOCAL_TOKEN_MIN_LENGTH})` };
}

function settingFix(setting: string, problem: string): string {
  if (problem.startsWith('is required') && setting in defaultDevVars(0)) return `${ONBOARD} (writes the local one)`;
  if (SECRET_SETTINGS.includes(setting)) {
    return `fix ${setting} in .dev.vars; production: npx wrangler secret put ${setting}`;
  }
  return `fix ${setting} in wrangler.toml [vars] or .dev.vars (README.md lists what it accepts)`;
}

/** Every other setting, judged by the Worker's own schema, one ✗ per problem. */
function settingsChecks(settings: WorkerSettings, env: Record<string, string>, dedicated: Check[]): Check[] {
  // Stand-ins for the secrets checked above, so their problems are not reported twice and zod does not
  // stop before the cross-field rules (it skips those while any single field fails).
  const standIns: Record<string, string> = {
    ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64'),
    LOCAL_AUTH_TOKEN: 'stand-in-'.padEnd(settings.LOCAL_TOKEN_MIN_LENGTH + 10, 'q7'),
  };
  const judged = { ...env };
  for (const check of dedicated) if (!check.ok) judged[check.name] = standIns[check.name] ?? '';
  const loaded = settings.loadSettings(judged);
  if (loaded.ok) return [{ name: 'settings', ok: true, detail: 'valid (.dev.vars over wrangler.toml [vars])' }];
  return loaded.problems.map(({ setting, problem }) => ({
    name: setting,
    ok: false,
    detail: problem,
    fix: settingFix(setting, problem),
  }));
}

function cronCheck(config: TomlTable, file: string): Check {
  const crons = isTable(config.triggers) ? config.triggers.crons : undefined;
  const list = Array.isArray(crons) ? crons.filter((c): c is string => typeof c === 'string') : [];
  const shown = list.length > 0 ? `crons: ${list.map((c) => `"${c}"`).join(', ')}` : 'no [triggers] crons';
  if (list.includes(HOURLY)) return { name: 'cron', ok: true, detail: shown };
  return {
    name: 'cron',
    ok: false,
    detail: `${shown}; the hourly "${HOURLY}" (cleanup, webhook redelivery, backup continuation) is missing`,
    fix: `add "${HOURLY}" to [triggers] crons in ${file}`,
  };
}

function queuesCheck(config: TomlTable, file: string): Check {
  const queues = isTable(config.queues) ? config.queues : {};
  const producer = tablesOf(queues.producers).find((p) => p.binding === 'WEBHOOK_DELIVERIES');
  const fix = `add the missing [[queues.*]] entries to ${file} (as in the repository's wrangler.toml); production: npx wrangler queues create <name>`;
  if (typeof producer?.queue !== 'string') {
    return { name: 'queues', ok: false, detail: 'no [[queues.producers]] binding WEBHOOK_DELIVERIES', fix };
  }
  const consumers = tablesOf(queues.consumers);
  const main = consumers.find((c) => c.queue === producer.queue);
  const dlq = typeof main?.dead_letter_queue === 'string' ? main.dead_letter_queue : undefined;
  const missing = [
    ...(main ? [] : [`no consumer for ${producer.queue}`]),
    ...(main && !dlq ? [`${producer.queue} has no dead_letter_queue`] : []),
    ...(dlq && !consumers.some((c) => c.queue === dlq) ? [`no consumer for the dead-letter queue ${dlq}`] : []),
  ];
  if (missing.length > 0) {
    return {
      name: 'queues',
      ok: false,
      detail: `WEBHOOK_DELIVERIES → ${producer.queue}, but ${missing.join('; ')}`,
      fix,
    };
  }
  return {
    name: 'queues',
    ok: true,
    detail: `WEBHOOK_DELIVERIES → ${producer.queue} (consumer), dead letters → ${dlq} (consumer)`,
  };
}

function backupBucketCheck(config: TomlTable, file: string): Check {
  const bucket = tablesOf(config.r2_buckets).find((b) => b.binding === 'BACKUPS');
  if (bucket && typeof bucket.bucket_name === 'string' && bucket.bucket_name) {
    return { name: 'backup bucket', ok: true, detail: `R2 binding BACKUPS → ${bucket.bucket_name}` };
  }
  return {
    name: 'backup bucket',
    ok: false,
    detail: bucket ? 'the BACKUPS binding has no bucket_name' : 'no [[r2_buckets]] binding named BACKUPS',
    fix: `add the BACKUPS bucket binding to ${file}: [[r2_buckets]] binding = "BACKUPS", bucket_name = "<bucket>"`,
  };
}

// ---- live checks --------------------------------------------------------------------------------------------

function why(err: unknown): string {
  type Cause = { code?: string; message?: string };
  const e = err as { name?: string; cause?: Cause; sourceError?: { cause?: Cause } } | undefined;
  if (e?.name === 'TimeoutError') return 'no answer in time';
  // fetch and the Neon driver keep the useful part (ECONNREFUSED, ENOTFOUND) one or two causes down.
  const cause = e?.cause ?? e?.sourceError?.cause;
  const message = err instanceof Error ? err.message : String(err);
  const extra = cause?.code ?? cause?.message;
  return extra && !message.includes(extra) ? `${message} (${extra})` : message;
}

async function within<T>(ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The same path as `mce migrate --status`: withDatabase, then the migration bookkeeping. */
async function databaseChecks(): Promise<Check[]> {
  const started = performance.now();
  try {
    const states = await within(
      DATABASE_TIMEOUT_MS,
      withDatabase((sql) => migrationStatus(sql, readMigrations())),
    );
    const ms = Math.round(performance.now() - started);
    const pending = states.filter((s) => !s.applied);
    return [
      { name: 'database', ok: true, detail: `reachable (${ms} ms)` },
      pending.length === 0
        ? { name: 'schema', ok: true, detail: `up to date (${states.length} migrations, last ${states.at(-1)?.tag})` }
        : {
            name: 'schema',
            ok: false,
            detail: `${pending.length} pending migration(s): ${pending.map((s) => s.tag).join(', ')}`,
            fix: MIGRATE,
          },
    ];
  } catch (err) {
    const unset = err instanceof CliError && /DATABASE_URL is not set/.test(err.message);
    return [
      {
        name: 'database',
        ok: false,
        detail: unset ? 'DATABASE_URL is not set' : `unreachable: ${why(err)}`,
        fix: unset
          ? ONBOARD
          : 'check DATABASE_URL / DATABASE_HTTP_ENDPOINT (locally `npm start`; production: the Neon console and status page)',
      },
      {
        name: 'schema',
        ok: false,
        detail: 'not checked: no database',
        fix: `fix the database first, then \`${MIGRATE} --status\``,
      },
    ];
  }
}

function isLoopback(url: URL): boolean {
  return url.hostname === 'localhost' || url.hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(url.hostname);
}

function workerBase(options: DoctorOptions): URL {
  const port = options.port ?? (Number(process.env.PORT) || DEFAULT_WORKER_PORT);
  const raw = options.url || process.env.MCE_URL || `http://127.0.0.1:${port}`;
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {}
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new CliError(`--url / MCE_URL must be an http(s) URL, not "${raw}"`);
  }
  if (url.username || url.password) throw new CliError('--url / MCE_URL must not hold credentials');
  return url;
}

interface ReadyCheck {
  ok?: unknown;
  latency_ms?: unknown;
  error?: unknown;
  migration?: unknown;
  expected_migration?: unknown;
  fix?: unknown;
}

/** What another server says is shown, but short and without control characters. */
const plain = (value: unknown) =>
  typeof value === 'string' ? value.replaceAll(/[\p{Cc}]/gu, ' ').slice(0, 200) : undefined;

function describeReady(name: string, check: ReadyCheck): string {
  const facts = [
    typeof check.latency_ms === 'number' ? `${check.latency_ms} ms` : undefined,
    plain(check.migration),
    plain(check.error),
    check.expected_migration ? `expects ${plain(check.expected_migration)}` : undefined,
  ].filter(Boolean);
  return `${plain(name)} ${check.ok === true ? 'ok' : 'FAILED'}${facts.length ? ` (${facts.join(', ')})` : ''}`;
}

function readyFix(failed: string[], checks: Record<string, ReadyCheck>): string {
  const fixes = failed.map((name) => {
    if (name === 'schema') return plain(checks.schema?.fix) ?? MIGRATE;
    if (name === 'config') return 'fix the settings it names (locally: the ✗ lines above), then restart or redeploy';
    if (name === 'db') return 'the Worker cannot reach its database: check DATABASE_URL and the Neon status page';
    return `see ${name} in /readyz`;
  });
  return fixes.join('; ') || 'see /readyz';
}

async function workerCheck(base: URL): Promise<Check> {
  const root = base.href.replace(/\/+$/, '');
  const local = isLoopback(base);
  let res: Response;
  try {
    res = await fetch(`${root}/readyz`, {
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
    });
  } catch (err) {
    return {
      name: 'worker',
      ok: false,
      detail: `not answering at ${base.origin} (${why(err)})`,
      fix: local
        ? '`npm start` (or point --url / MCE_URL at the Worker)'
        : 'check --url / MCE_URL and the deployment: `npx wrangler deployments list`, `npx wrangler tail`',
    };
  }
  const body = (await res.json().catch(() => undefined)) as
    | { ok?: unknown; failed?: unknown; checks?: Record<string, ReadyCheck> }
    | undefined;
  if (!body || typeof body.checks !== 'object' || body.checks === null) {
    return {
      name: 'worker',
      ok: false,
      detail: `${base.origin}/readyz answered HTTP ${res.status} without a readiness report`,
      fix: 'check that --url / MCE_URL points at Mission Control Edge',
    };
  }
  const summary = Object.entries(body.checks)
    .map(([name, check]) => describeReady(name, check ?? {}))
    .join(', ');
  if (res.ok && body.ok === true) return { name: 'worker', ok: true, detail: `ready at ${base.origin}: ${summary}` };
  const failed = Array.isArray(body.failed) ? body.failed.filter((f): f is string => typeof f === 'string') : [];
  return {
    name: 'worker',
    ok: false,
    detail: `not ready at ${base.origin} (HTTP ${res.status}): ${summary}`,
    fix: readyFix(failed, body.checks),
  };
}

async function rateLimitCheck(env: Record<string, string>): Promise<Check> {
  const name = 'rate limit';
  const backend = env.RATE_LIMIT_BACKEND?.trim() || 'durable-object';
  if (backend === 'durable-object') return { name, ok: true, detail: 'durable-object backend: built in' };
  if (backend !== 'upstash') {
    return { name, ok: false, detail: 'RATE_LIMIT_BACKEND is neither durable-object nor upstash', fix: 'set one' };
  }
  const url = env.UPSTASH_REDIS_REST_URL?.trim();
  const token = env.UPSTASH_REDIS_REST_TOKEN?.trim();
  const fix = 'check UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN (locally: `npm run mce -- serve-upstash`)';
  if (!url || !token) {
    return {
      name,
      ok: false,
      detail: 'upstash backend without UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN',
      fix,
    };
  }
  let origin = url;
  const started = performance.now();
  try {
    origin = new URL(url).origin;
    const res = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: '["PING"]',
      signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
    });
    const body = (await res.json().catch(() => ({}))) as { result?: unknown; error?: unknown };
    if (res.ok && body.result === 'PONG') {
      return {
        name,
        ok: true,
        detail: `upstash at ${origin} answers PING (${Math.round(performance.now() - started)} ms)`,
      };
    }
    const error = plain(body.error);
    return {
      name,
      ok: false,
      // The Worker fails open when Upstash errors: worth knowing while this lasts.
      detail: `upstash at ${origin} refused PING: HTTP ${res.status}${error ? ` ${error}` : ''}; the Worker fails open (no limits)`,
      fix,
    };
  } catch (err) {
    return {
      name,
      ok: false,
      detail: `upstash at ${origin} unreachable (${why(err)}); the Worker fails open (no limits)`,
      fix,
    };
  }
}

// ---- the command --------------------------------------------------------------------------------------------

/** Removes every credential the doctor knows of from a line, whatever printed it (a driver error, a peer). */
function scrubber(sources: Record<string, string | undefined>[]): (text: string) => string {
  const secrets = new Set<string>();
  for (const source of sources) {
    for (const name of [...SECRET_SETTINGS, 'MCE_TOKEN']) {
      const value = source[name]?.trim();
      if (!value) continue;
      secrets.add(value);
      try {
        const password = decodeURIComponent(new URL(value).password);
        if (password) secrets.add(password);
      } catch {}
    }
  }
  const ordered = [...secrets].filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
  return (text) => ordered.reduce((t, secret) => t.replaceAll(secret, '[redacted]'), text);
}

function render(checks: Check[], notes: string[], header: string): string {
  const width = Math.max(...checks.map((c) => c.name.length));
  const lines = [header];
  for (const check of checks) {
    lines.push(`  ${check.ok ? '✓' : '✗'} ${check.name.padEnd(width)}  ${check.detail}`);
    if (!check.ok && check.fix) lines.push(`    ${' '.repeat(width)}  fix: ${check.fix}`);
  }
  for (const note of notes) lines.push(`  i ${note}`);
  const failed = checks.filter((c) => !c.ok).length;
  lines.push(failed === 0 ? `All ${checks.length} checks passed.` : `${failed} of ${checks.length} checks failed.`);
  return lines.join('\n');
}

export async function doctorCommand(out: Output, options: DoctorOptions): Promise<void> {
  const base = workerBase(options);
  const devVarsFile = devVarsPath();
  const devVars = readDevVars(devVarsFile);
  const wranglerFile = wranglerConfigPath();

  const checks: Check[] = [];
  let config: TomlTable | undefined;
  try {
    config = parseToml(readFileSync(wranglerFile, 'utf8'));
  } catch (err) {
    checks.push({
      name: 'wrangler config',
      ok: false,
      detail: `cannot read ${wranglerFile}: ${why(err)}`,
      fix: 'restore it from the repository, or point MCE_WRANGLER_CONFIG at it',
    });
  }
  const vars = isTable(config?.vars) ? config.vars : {};
  // What wrangler dev hands the Worker: [vars], with .dev.vars on top.
  const env: Record<string, string> = {
    ...Object.fromEntries(
      Object.entries(vars).flatMap(([k, v]) => (typeof v === 'object' ? [] : [[k, String(v)] as const])),
    ),
    ...devVars,
  };

  const settings = await loadWorkerSettings();
  const dedicated = [encryptionKeyCheck(settings, env), localTokenCheck(settings, env)];
  checks.push(...dedicated, ...settingsChecks(settings, env, dedicated));

  const [database, worker, rateLimit] = await Promise.all([databaseChecks(), workerCheck(base), rateLimitCheck(env)]);
  checks.push(...database, worker, rateLimit);
  if (config)
    checks.push(
      cronCheck(config, wranglerFile),
      queuesCheck(config, wranglerFile),
      backupBucketCheck(config, wranglerFile),
    );

  const scrub = scrubber([env, process.env]);
  const clean = checks.map((c) => ({
    name: c.name,
    ok: c.ok,
    detail: scrub(c.detail),
    ...(c.fix === undefined ? {} : { fix: scrub(c.fix) }),
  }));
  const notes = [`backups: ${BACKUP_KEY_WARNING}`];
  const ok = clean.every((c) => c.ok);
  // The verdict is the output; the exit code says it to scripts without a second message.
  if (!ok) process.exitCode = 1;
  out.result(render(clean, notes, `mce doctor (${devVarsFile}, ${wranglerFile})`), { ok, checks: clean, notes });
}
