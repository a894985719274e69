/**
 * `mce rotate-key`: replacing ENCRYPTION_KEY without losing a secret. `generate` makes the new key (and can
 * install it in .dev.vars), `run` has the Worker re-seal every secret under it, `status` shows where things stand.
 * The old key stays as ENCRYPTION_KEY_PREVIOUS until `run` confirms nothing is sealed under it any more.
 */
import { createHash, randomBytes } from 'node:crypto';
import { apiTargetHelp, createApiClient } from '../lib/api-client.ts';
import { devVarsPath, readDevVars, updateDevVars } from '../lib/dev-vars.ts';
import { CliError, type Output } from '../lib/output.ts';

const USAGE = 'mce rotate-key generate [--write-dev-vars] | run [--batch-size N] [--url URL] | status [--url URL]';
const STATUS_PATH = '/api/v1/admin/encryption';
const ROTATE_PATH = '/api/v1/admin/encryption/rotate';
const RUN = 'npm run mce -- rotate-key run';

export const rotateKeyHelp = `mce rotate-key generate|run|status [--write-dev-vars] [--batch-size N] [--url URL]
  Rotates ENCRYPTION_KEY, the key secrets at rest are sealed under.
  generate          prints a new key, its version and the steps to install it
    --write-dev-vars  installs it locally instead: ENCRYPTION_KEY moves to ENCRYPTION_KEY_PREVIOUS in .dev.vars
                      (MCE_DEV_VARS names another .dev.vars)
  run               re-seals every secret under ENCRYPTION_KEY, --batch-size (1-500, default 100) at a time,
                    then confirms none is left under another key
  status            how many secrets each key version seals
  ${apiTargetHelp.replaceAll('\n', '\n  ')}`;

interface KeyStatus {
  current_version: string;
  versions: Record<string, number>;
  remaining: number;
}

interface RotationBatch {
  resealed: number;
  unreadable: number;
  remaining: number;
}

export interface RotateKeyOptions {
  args: string[];
  batchSize?: string;
  writeDevVars: boolean;
  url?: string;
  port?: number;
}

/** The Worker's key version (workers/lib/secret-box.ts): first 16 hex chars of SHA-256 over the raw key. */
function keyVersion(key: string): string | undefined {
  let raw: Buffer;
  try {
    // atob, like the Worker: it rejects what Buffer.from would silently skip.
    raw = Buffer.from(atob(key.trim().replaceAll('-', '+').replaceAll('_', '/')), 'latin1');
  } catch {
    return undefined;
  }
  return raw.length === 32 ? createHash('sha256').update(raw).digest('hex').slice(0, 16) : undefined;
}

function versionLines(status: KeyStatus): string[] {
  const entries = Object.entries(status.versions).sort(([, a], [, b]) => b - a);
  if (entries.length === 0) return ['  (no sealed secrets)'];
  return entries.map(([v, n]) => `  ${v}${v === status.current_version ? ' (current)' : ''}: ${n}`);
}

function generate(out: Output, writeDevVars: boolean): void {
  const key = randomBytes(32).toString('base64');
  const version = keyVersion(key) as string;
  if (!writeDevVars) {
    const steps = [
      'npx wrangler secret put ENCRYPTION_KEY_PREVIOUS   # paste the CURRENT ENCRYPTION_KEY',
      'npx wrangler secret put ENCRYPTION_KEY            # paste the new key above',
      `${RUN}   # with MCE_URL and MCE_TOKEN (a platform admin's) set`,
    ];
    out.result(
      [
        `New ENCRYPTION_KEY (version ${version}):`,
        `  ${key}`,
        '',
        'Production, in this order (the old key must be PREVIOUS before the new one takes over):',
        ...steps.map((s, i) => `  ${i + 1}. ${s}`),
        'Locally: `npm run mce -- rotate-key generate --write-dev-vars`, restart `npm start`, then run.',
        'If ENCRYPTION_KEY_PREVIOUS is still set from an earlier rotation, finish that one (run) before replacing it.',
      ].join('\n'),
      { key, version, next_steps: steps },
    );
    return;
  }

  const path = devVarsPath();
  const vars = readDevVars(path);
  const current = vars.ENCRYPTION_KEY;
  if (!current) throw new CliError(`${path} has no ENCRYPTION_KEY to rotate (run \`npm start\` once to create it)`);
  const currentVersion = keyVersion(current);
  if (!currentVersion)
    throw new CliError(`ENCRYPTION_KEY in ${path} is not base64 of 32 bytes; fix it before rotating`);
  // Overwriting a different PREVIOUS would strand every secret still sealed under it.
  if (vars.ENCRYPTION_KEY_PREVIOUS && vars.ENCRYPTION_KEY_PREVIOUS !== current) {
    throw new CliError(
      `${path} already has an ENCRYPTION_KEY_PREVIOUS from an earlier rotation: finish it with \`${RUN}\` and delete that line first`,
    );
  }
  updateDevVars({ ENCRYPTION_KEY_PREVIOUS: current, ENCRYPTION_KEY: key }, path);
  out.result(
    [
      `Wrote a new ENCRYPTION_KEY (version ${version}) to ${path};`,
      `the old one (version ${currentVersion}) is now ENCRYPTION_KEY_PREVIOUS.`,
      `Next: restart \`npm start\` so the Worker loads both keys, then \`${RUN}\`.`,
    ].join('\n'),
    { written: path, version, previous_version: currentVersion },
  );
}

function parseBatchSize(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const size = Number(value);
  if (!/^\d+$/.test(value) || size < 1 || size > 500) {
    throw new CliError(`--batch-size must be a whole number from 1 to 500, not ${value}`);
  }
  return size;
}

async function run(out: Output, options: RotateKeyOptions, batchSize: number | undefined): Promise<void> {
  const api = createApiClient(options);
  const before = await api.get<KeyStatus>(STATUS_PATH);
  out.info(`${before.remaining} secret(s) to re-seal under key version ${before.current_version} (${api.url})`);

  let remaining = before.remaining;
  let resealed = 0;
  let batches = 0;
  while (remaining > 0) {
    const batch = await api.post<RotationBatch>(ROTATE_PATH, batchSize === undefined ? {} : { batch_size: batchSize });
    batches += 1;
    resealed += batch.resealed;
    out.info(`  batch ${batches}: re-sealed ${batch.resealed}, ${batch.remaining} remaining`);
    // Without progress the next batch would pick the same rows again: stop rather than spin.
    if (batch.remaining > 0 && batch.resealed === 0 && batch.remaining >= remaining) {
      const status = await api.get<KeyStatus>(STATUS_PATH);
      const others = Object.entries(status.versions).filter(([v]) => v !== status.current_version);
      const beyond = batch.remaining - batch.unreadable;
      throw new CliError(
        [
          `rotation stopped: a batch re-sealed nothing and ${batch.remaining} secret(s) remain;`,
          `${batch.unreadable} could not be opened with ENCRYPTION_KEY or ENCRYPTION_KEY_PREVIOUS`,
          `(still under ${others.map(([v, n]) => `${v}: ${n}`).join(', ') || 'no other version'}).`,
          'Set ENCRYPTION_KEY_PREVIOUS to the key they were sealed under, or re-enter those secrets;',
          `keep ENCRYPTION_KEY_PREVIOUS until \`${RUN}\` succeeds.`,
          ...(batch.unreadable > 0 && beyond > 0
            ? [`${beyond} more lie past them: a larger --batch-size gets to those.`]
            : []),
        ].join('\n'),
      );
    }
    remaining = batch.remaining;
  }

  // The batches' own count is not the last word: an instance still on the old key could have sealed since.
  const after = await api.get<KeyStatus>(STATUS_PATH);
  const others = Object.entries(after.versions).filter(([v, n]) => v !== after.current_version && n > 0);
  if (others.length > 0) {
    throw new CliError(
      `${others.reduce((sum, [, n]) => sum + n, 0)} secret(s) are still under other key versions ` +
        `(${others.map(([v, n]) => `${v}: ${n}`).join(', ')}); run again once every Worker instance uses the new key. ` +
        'Keep ENCRYPTION_KEY_PREVIOUS until then.',
    );
  }
  out.result(
    [
      `Re-sealed ${resealed} secret(s) in ${batches} batch(es); every secret is under key version ${after.current_version}.`,
      'Secrets per key version:',
      ...versionLines(after),
      'ENCRYPTION_KEY_PREVIOUS is no longer needed; remove it:',
      '  production: npx wrangler secret delete ENCRYPTION_KEY_PREVIOUS',
      '  locally:    delete the ENCRYPTION_KEY_PREVIOUS line from .dev.vars and restart `npm start`',
    ].join('\n'),
    { resealed, batches, ...after },
  );
}

async function status(out: Output, options: RotateKeyOptions): Promise<void> {
  const result = await createApiClient(options).get<KeyStatus>(STATUS_PATH);
  out.result(
    [
      `Current key version: ${result.current_version}`,
      'Secrets per key version:',
      ...versionLines(result),
      result.remaining === 0
        ? 'Every secret is under the current key.'
        : `${result.remaining} secret(s) not yet under the current key: run \`${RUN}\`.`,
    ].join('\n'),
    result,
  );
}

export async function rotateKeyCommand(out: Output, options: RotateKeyOptions): Promise<void> {
  const [action, ...extra] = options.args;
  if ((action !== 'generate' && action !== 'run' && action !== 'status') || extra.length > 0) {
    throw new CliError(`usage: ${USAGE}`);
  }
  // Options that would be silently ignored are refused, so nobody believes they took effect.
  if (options.writeDevVars && action !== 'generate') throw new CliError('--write-dev-vars goes with generate');
  if (options.batchSize !== undefined && action !== 'run') throw new CliError('--batch-size goes with run');
  if (action === 'generate') return generate(out, options.writeDevVars);
  if (action === 'run') return run(out, options, parseBatchSize(options.batchSize));
  return status(out, options);
}
