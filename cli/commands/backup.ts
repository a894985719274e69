/**
 * `mce backup`: runs a backup through the Worker's admin API (POST /api/v1/ops/backups, repeated
 * while the export is running; the Worker verifies it once complete), re-verifies one (--verify),
 * or saves one into a folder for an offline restore (--download ID --out DIR).
 */
import { resolve } from 'node:path';
import { apiTargetHelp, createApiClient } from '../lib/api-client.ts';
import { CliError, type Output } from '../lib/output.ts';
import { downloadBackup } from '../lib/restore.ts';

const USAGE = 'mce backup [--verify ID | --download ID --out DIR] [--url WORKER_URL]';

export const backupHelp = `${USAGE}
  Without options: runs a backup to the Worker's R2 bucket (continuing a running one) until it is
  complete and verified; exits 1 unless verification passed.
  --verify ID              re-reads every object of backup ID (hashes, gzip, rows); exits 1 on failure
  --download ID --out DIR  saves backup ID's manifest and objects into DIR, each checked as it
                           arrives, for \`mce restore DIR\`
  ${apiTargetHelp.replaceAll('\n', '\n  ')}`;

export interface BackupCommandOptions {
  args: string[];
  verify?: string;
  download?: string;
  out?: string;
  url?: string;
  port?: number;
}

/** The API's Backup (workers/routes/ops.ts). */
interface Backup {
  id: string;
  status: 'running' | 'complete' | 'failed';
  created_at: string;
  completed_at: string | null;
  schema_version: string;
  key_version: string;
  total_rows: number;
  total_bytes: number;
  objects: number;
  slices: number;
  verification: 'passed' | 'failed' | null;
  verified_at: string | null;
  verification_detail: { objects_checked?: number; failures?: string[] } | null;
  error: string | null;
}

const BACKUPS = '/api/v1/ops/backups';

function describe(b: Backup): string[] {
  const lines = [
    `Backup ${b.id}: ${b.status}${b.verification ? `, verification ${b.verification}` : ''}`,
    `  ${b.total_rows} rows, ${b.objects} objects, ${b.total_bytes} bytes gzipped, ${b.slices} slices`,
    `  schema ${b.schema_version}, secrets sealed under key version ${b.key_version}`,
  ];
  if (b.error) lines.push(`  last error: ${b.error}`);
  for (const failure of b.verification_detail?.failures ?? []) lines.push(`  ! ${failure}`);
  return lines;
}

async function runBackup(out: Output, options: BackupCommandOptions): Promise<void> {
  const api = createApiClient(options);
  let backup = await api.post<Backup>(BACKUPS, {});
  out.info(`Exporting ${backup.id} through ${api.url}`);
  while (backup.status === 'running') {
    out.info(`  ${backup.total_rows} rows in ${backup.objects} objects so far (slice ${backup.slices})`);
    backup = await api.post<Backup>(BACKUPS, {});
  }
  const ok = backup.status === 'complete' && backup.verification === 'passed';
  const lines = describe(backup);
  if (ok) lines.push(`Download for an offline restore: mce backup --download ${backup.id} --out DIR`);
  out.result(lines.join('\n'), backup);
  if (!ok) process.exitCode = 1;
}

async function verify(out: Output, options: BackupCommandOptions, id: string): Promise<void> {
  const api = createApiClient(options);
  const backup = await api.post<Backup>(`${BACKUPS}/${encodeURIComponent(id)}/verify`, {});
  const checked = backup.verification_detail?.objects_checked ?? 0;
  const lines = describe(backup);
  lines.push(
    backup.verification === 'passed'
      ? `Verification passed: ${checked} objects re-read.`
      : `Verification FAILED (${checked} objects checked).`,
  );
  out.result(lines.join('\n'), backup);
  if (backup.verification !== 'passed') process.exitCode = 1;
}

export async function backupCommand(out: Output, options: BackupCommandOptions): Promise<void> {
  if (options.args.length > 0) throw new CliError(`usage: ${USAGE}`);
  if (options.verify !== undefined && options.download !== undefined)
    throw new CliError('--verify and --download go separately');
  if (options.out !== undefined && options.download === undefined) throw new CliError('--out goes with --download');
  if (options.verify !== undefined) return verify(out, options, options.verify);
  if (options.download !== undefined) {
    if (!options.out) throw new CliError('--download needs --out DIR');
    const dir = resolve(options.out);
    const { manifest, bytes } = await downloadBackup(options, options.download, dir, out);
    const rows = manifest.tables.reduce((n, t) => n + t.rows, 0);
    out.result(
      [
        `Saved backup ${manifest.id} to ${dir}: ${manifest.objects.length} objects, ${rows} rows, ${bytes} bytes; every object checked.`,
        `Restore it with: mce restore ${dir} --database-url URL`,
      ].join('\n'),
      { backup_id: manifest.id, dir, objects: manifest.objects.length, rows, bytes },
    );
    return;
  }
  return runBackup(out, options);
}
