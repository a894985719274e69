#!/usr/bin/env node
/** mce: the operator CLI. Subcommands print for humans by default, JSON with --json, and exit 1 on failure. */
import { parseArgs } from 'node:util';
import { backupCommand, backupHelp } from './commands/backup.ts';
import { buildAssetsCommand, buildAssetsHelp } from './commands/build-assets.ts';
import { doctorCommand, doctorHelp } from './commands/doctor.ts';
import { emergencyShutdownCommand, emergencyShutdownHelp } from './commands/emergency-shutdown.ts';
import { migrateCommand, migrateHelp } from './commands/migrate.ts';
import { onboardCommand, onboardHelp } from './commands/onboard.ts';
import { restoreCommand, restoreHelp } from './commands/restore.ts';
import { rotateKeyCommand, rotateKeyHelp } from './commands/rotate-key.ts';
import { serveSqlCommand, serveSqlHelp } from './commands/serve-sql.ts';
import { serveUpstashCommand, serveUpstashHelp } from './commands/serve-upstash.ts';
import { startCommand, startHelp } from './commands/start.ts';
import { CliError, createOutput } from './lib/output.ts';

const HELP = `Usage: mce <command> [options]

Commands:
${[
  onboardHelp,
  startHelp,
  doctorHelp,
  migrateHelp,
  serveSqlHelp,
  serveUpstashHelp,
  buildAssetsHelp,
  emergencyShutdownHelp,
  rotateKeyHelp,
  backupHelp,
  restoreHelp,
]
  .map((h) => `  ${h.replaceAll('\n', '\n  ')}`)
  .join('\n\n')}

Global options: --json (machine-readable output), --help`;

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
      status: { type: 'boolean', default: false },
      port: { type: 'string' },
      url: { type: 'string' },
      reason: { type: 'string' },
      'batch-size': { type: 'string' },
      'write-dev-vars': { type: 'boolean', default: false },
      force: { type: 'boolean', default: false },
      'show-secrets': { type: 'boolean', default: false },
      'database-url': { type: 'string' },
      verify: { type: 'string' },
      download: { type: 'string' },
      out: { type: 'string' },
    },
  });
  const out = createOutput(values.json);
  const port = values.port === undefined ? undefined : Number(values.port);
  if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65536)) {
    throw new CliError(`--port must be a port number, not ${values.port}`);
  }
  const [command, ...args] = positionals;
  if (values.help || !command) return out.result(HELP, { help: HELP });
  switch (command) {
    case 'start':
      return startCommand(out, { port });
    case 'onboard':
      return onboardCommand(out, { force: values.force, showSecrets: values['show-secrets'] });
    case 'doctor':
      return doctorCommand(out, { url: values.url, port });
    case 'migrate':
      return migrateCommand(out, { status: values.status });
    case 'serve-sql':
      return serveSqlCommand(out, { port });
    case 'serve-upstash':
      return serveUpstashCommand(out, { port });
    case 'build-assets':
      return buildAssetsCommand(out);
    case 'emergency-shutdown':
      return emergencyShutdownCommand(out, { args, reason: values.reason, url: values.url, port });
    case 'rotate-key':
      return rotateKeyCommand(out, {
        args,
        batchSize: values['batch-size'],
        writeDevVars: values['write-dev-vars'],
        url: values.url,
        port,
      });
    case 'backup':
      return backupCommand(out, {
        args,
        verify: values.verify,
        download: values.download,
        out: values.out,
        url: values.url,
        port,
      });
    case 'restore':
      return restoreCommand(out, { args, databaseUrl: values['database-url'], url: values.url, port });
    default:
      throw new CliError(`unknown command "${command}" (see mce --help)`);
  }
}

main(process.argv.slice(2)).then(
  // A command that prints its own verdict (doctor) sets process.exitCode instead of throwing.
  () => process.exit(process.exitCode ?? 0),
  (err: unknown) => {
    const known =
      err instanceof CliError ||
      (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS'));
    const message = err instanceof Error ? err.message : String(err);
    if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify({ error: message })}\n`);
    else process.stderr.write(`mce: ${known ? message : ((err as Error)?.stack ?? message)}\n`);
    process.exit(1);
  },
);
