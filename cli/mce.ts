#!/usr/bin/env node
/** mce: the operator CLI. Subcommands print for humans by default, JSON with --json, and exit 1 on failure. */
import { parseArgs } from 'node:util';
import { buildAssetsCommand, buildAssetsHelp } from './commands/build-assets.ts';
import { emergencyShutdownCommand, emergencyShutdownHelp } from './commands/emergency-shutdown.ts';
import { migrateCommand, migrateHelp } from './commands/migrate.ts';
import { rotateKeyCommand, rotateKeyHelp } from './commands/rotate-key.ts';
import { serveSqlCommand, serveSqlHelp } from './commands/serve-sql.ts';
import { serveUpstashCommand, serveUpstashHelp } from './commands/serve-upstash.ts';
import { startCommand, startHelp } from './commands/start.ts';
import { CliError, createOutput } from './lib/output.ts';

const HELP = `Usage: mce <command> [options]

Commands:
${[startHelp, migrateHelp, serveSqlHelp, serveUpstashHelp, buildAssetsHelp, emergencyShutdownHelp, rotateKeyHelp]
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
    default:
      throw new CliError(`unknown command "${command}" (see mce --help)`);
  }
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
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
