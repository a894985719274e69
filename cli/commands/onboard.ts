/**
 * `mce onboard`: first-time setup. Generates ENCRYPTION_KEY and LOCAL_AUTH_TOKEN into .dev.vars (with the rest
 * of what a local run needs) and prints the production steps. Values are never printed unless asked for, and
 * existing ones are never replaced without --force: a replaced ENCRYPTION_KEY strands every secret and backup
 * sealed under the old one.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, statSync } from 'node:fs';
import { DEFAULT_SQL_ENDPOINT_PORT, defaultDevVars, devVarsPath, readDevVars, updateDevVars } from '../lib/dev-vars.ts';
import { CliError, type Output } from '../lib/output.ts';

/** The parts of the Worker's settings module (workers/config.ts) the CLI uses. */
export interface WorkerSettings {
  LOCAL_TOKEN_MIN_LENGTH: number;
  loadSettings(env: object): { ok: true } | { ok: false; problems: { setting: string; problem: string }[] };
  settingsSchema: {
    shape: Record<
      string,
      { safeParse(value: unknown): { success: boolean; error?: { issues: { message: string }[] } } }
    >;
  };
}

let settingsModule: Promise<WorkerSettings> | undefined;

/**
 * The Worker's own settings schema, so the CLI judges a value exactly as the Worker will. Loaded by URL and
 * only by the commands that need it: it runs under Node as it is, but its extension-less imports are not
 * what the Node typecheck accepts, and a Worker-only import added there later must not break every command.
 */
export function loadWorkerSettings(): Promise<WorkerSettings> {
  settingsModule ??= import(new URL('../../workers/config.ts', import.meta.url).href).then(
    (module) => module as WorkerSettings,
    (err: Error) => {
      throw new CliError(`cannot load the Worker's settings schema (workers/config.ts) in Node: ${err.message}`);
    },
  );
  return settingsModule;
}

/** The two secrets onboard owns; --force replaces exactly these. */
const SECRETS = ['ENCRYPTION_KEY', 'LOCAL_AUTH_TOKEN'] as const;
type SecretName = (typeof SECRETS)[number];

export const onboardHelp = `mce onboard [--force] [--show-secrets]
  First-time setup: writes a new ENCRYPTION_KEY and LOCAL_AUTH_TOKEN, plus the local database settings
  \`npm start\` uses, to .dev.vars (mode 0600; MCE_DEV_VARS names another file), then prints the production steps.
  Existing values are kept.
  --force         replaces ENCRYPTION_KEY and LOCAL_AUTH_TOKEN even when set: secrets sealed under the old key,
                  and backups made with it, become unreadable (use \`mce rotate-key\` to change a key in use)
  --show-secrets  prints the two values on stdout as NAME=value lines and everything else on stderr, e.g.
                  \`npm run -s mce -- onboard --show-secrets | npx wrangler secret bulk\``;

export const PRODUCTION_STEPS = [
  'npx wrangler secret put DATABASE_URL       # Neon pooled connection string',
  'npx wrangler secret put ENCRYPTION_KEY     # 32 random bytes, base64 (or the value --show-secrets prints)',
  'npx wrangler secret put LOCAL_AUTH_TOKEN   # at least 50 random characters',
  'npx wrangler queues create mce-webhook-deliveries',
  'npx wrangler queues create mce-webhook-deliveries-dlq',
  'npx wrangler r2 bucket create mce-backups   # the BACKUPS bucket in wrangler.toml',
  'DATABASE_URL=... npm run mce -- migrate && npm run build:assets && npx wrangler deploy',
  'npm run mce -- doctor --url https://<worker>',
];

export const BACKUP_KEY_WARNING =
  'A backup is unusable without the ENCRYPTION_KEY it was made under: keep a copy of the production ' +
  'ENCRYPTION_KEY outside Cloudflare and apart from the backups (password manager or vault).';

export interface OnboardOptions {
  force: boolean;
  showSecrets: boolean;
}

/** Why a value fails the Worker's own schema for that setting; never the value itself. */
export function settingProblem(
  settings: WorkerSettings,
  name: SecretName,
  value: string | undefined,
): string | undefined {
  const parsed = settings.settingsSchema.shape[name]?.safeParse(value);
  if (!parsed) throw new Error(`workers/config.ts has no setting ${name}`);
  return parsed.success ? undefined : (parsed.error?.issues.map((i) => i.message).join('; ') ?? 'is not valid');
}

/** Random values, re-drawn in the (astronomically rare) case the placeholder check objects to one. */
function generate(settings: WorkerSettings, name: SecretName): string {
  for (;;) {
    const value =
      name === 'ENCRYPTION_KEY' ? randomBytes(32).toString('base64') : randomBytes(48).toString('base64url');
    if (settingProblem(settings, name, value) === undefined) return value;
  }
}

export async function onboardCommand(out: Output, options: OnboardOptions): Promise<void> {
  const settings = await loadWorkerSettings();
  const path = devVarsPath();
  const existing = readDevVars(path);
  const present = (name: string) => (existing[name] ?? '') !== '';
  const sqlPort = Number(process.env.SQL_ENDPOINT_PORT ?? DEFAULT_SQL_ENDPOINT_PORT);

  // The same local defaults `npm start` would add, so either command can come first.
  const changes: Record<string, string> = {};
  for (const [name, value] of Object.entries(defaultDevVars(sqlPort))) {
    if (!present(name) && !(SECRETS as readonly string[]).includes(name)) changes[name] = value;
  }
  const replaced: SecretName[] = [];
  const kept: SecretName[] = [];
  for (const name of SECRETS) {
    if (!present(name) || options.force) {
      changes[name] = generate(settings, name);
      if (present(name)) replaced.push(name);
    } else kept.push(name);
  }
  const written = Object.keys(changes);
  if (written.length > 0) updateDevVars(changes, path);
  // updateDevVars writes a fresh 0600 file; one left untouched gets the same privacy.
  else if (existsSync(path) && (statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
  const mode = existsSync(path) ? (statSync(path).mode & 0o777).toString(8).padStart(4, '0') : undefined;

  const warnings: string[] = [];
  if (replaced.includes('ENCRYPTION_KEY')) {
    warnings.push(
      `ENCRYPTION_KEY in ${path} was REPLACED. Secrets sealed under the old key and backups made with it are now ` +
        'unreadable unless the old key is kept as ENCRYPTION_KEY_PREVIOUS. To change a key that is in use, ' +
        'run `npm run mce -- rotate-key generate --write-dev-vars` instead.',
    );
  }
  if (replaced.includes('LOCAL_AUTH_TOKEN')) {
    warnings.push('LOCAL_AUTH_TOKEN was replaced: the old token stops working once the Worker restarts.');
  }
  const invalid = kept.flatMap((name) => {
    const problem = settingProblem(settings, name, existing[name]);
    return problem ? [{ setting: name, problem }] : [];
  });
  for (const { setting, problem } of invalid) {
    warnings.push(`${setting} in ${path} was kept but ${problem}; --force replaces it.`);
  }
  // stderr, so they stand out and never end up in piped or --json output.
  for (const warning of warnings) process.stderr.write(`mce: WARNING: ${warning}\n`);

  const final = readDevVars(path);
  const secrets = Object.fromEntries(SECRETS.map((name) => [name, final[name] ?? '']));
  const lines = [
    written.length > 0
      ? `Wrote ${written.join(', ')} to ${path} (mode ${mode}).`
      : `Nothing to write: ${path} already has every local setting.`,
    ...(kept.length > 0 ? [`Kept the existing ${kept.join(' and ')} (--force replaces them).`] : []),
    'Values are not shown; they are in that file (--show-secrets prints them once).',
    '',
    'Locally: `npm start`, then `npm run mce -- doctor`.',
    '',
    'Production (Cloudflare), once:',
    ...PRODUCTION_STEPS.map((step, i) => `  ${i + 1}. ${step}`),
    '',
    `Backups: ${BACKUP_KEY_WARNING}`,
  ];
  const result = {
    path,
    mode,
    written,
    kept,
    replaced,
    invalid,
    warnings,
    production_steps: PRODUCTION_STEPS,
    backup_key_warning: BACKUP_KEY_WARNING,
    ...(options.showSecrets ? { secrets } : {}),
  };
  if (options.showSecrets && !out.json) {
    // stdout carries only NAME=value lines, the form `wrangler secret bulk` reads from a pipe.
    process.stderr.write(`${lines.join('\n')}\n`);
    process.stdout.write(`${SECRETS.map((name) => `${name}=${secrets[name]}`).join('\n')}\n`);
    return;
  }
  out.result(lines.join('\n'), result);
}
