/** Runs a Worker on the bare workerd binary (no wrangler dev, no Miniflare proxy) and reads its CPU time. */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ROOT = join(import.meta.dirname, '..', '..');
const WORKER_DIR = join(ROOT, 'dist', 'worker');
const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
const COMPATIBILITY_DATE = /compatibility_date = "([^"]+)"/.exec(
  readFileSync(join(ROOT, 'wrangler.toml'), 'utf8'),
)?.[1];

/** Bundles the Worker exactly as `wrangler deploy` would; returns the bundle's path. */
export function bundleWorker(): string {
  execFileSync('wrangler', ['deploy', '--dry-run', '--outdir', WORKER_DIR], { cwd: ROOT, stdio: 'ignore' });
  return join(WORKER_DIR, 'index.js');
}

/** A trivial Worker (one fixed JSON answer), the baseline measured beside the app; returns its path. */
export function baselineWorker(): string {
  const path = join(WORKER_DIR, 'baseline.js');
  writeFileSync(
    path,
    `export default { fetch() { return new Response('{"ok":true}', { headers: { 'content-type': 'application/json' } }); } };\n`,
  );
  return path;
}

/** CPU seconds (user + system) the process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface RunningWorker {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

export interface WorkerOptions {
  /** Durable Object namespaces the module exports, binding name → class name (SQLite storage on disk). */
  durableObjects?: Record<string, string>;
  /** Queue producer bindings; their messages go to a sink that accepts and drops them. */
  queues?: string[];
}

/** Starts workerd serving one ES-module Worker with text bindings (and Durable Objects, if asked). */
export async function startWorker(
  modulePath: string,
  bindings: Record<string, string> = {},
  options: WorkerOptions = {},
): Promise<RunningWorker> {
  const dir = mkdtempSync(join(tmpdir(), 'mce-bench-'));
  mkdirSync(join(dir, 'do'));
  const port = await freePort();
  const objects = Object.entries(options.durableObjects ?? {});
  // capnp embeds files relative to the config, so the module sits beside it.
  copyFileSync(modulePath, join(dir, 'worker.js'));
  const bindingList = [
    ...Object.entries(bindings).map(
      ([name, value]) => `(name = ${JSON.stringify(name)}, text = ${JSON.stringify(value)})`,
    ),
    ...objects.map(
      ([name, className]) => `(name = ${JSON.stringify(name)}, durableObjectNamespace = ${JSON.stringify(className)})`,
    ),
    ...(options.queues ?? []).map((name) => `(name = ${JSON.stringify(name)}, queue = "queue-sink")`),
  ].join(', ');
  writeFileSync(
    join(dir, 'sink.js'),
    'export default { async fetch(request) { await request.arrayBuffer(); return Response.json({ metadata: { metrics: { backlogCount: 0, backlogBytes: 0 } } }); } };\n',
  );
  const objectConfig = objects.length
    ? `durableObjectNamespaces = [${objects
        .map(
          ([, className]) =>
            `(className = ${JSON.stringify(className)}, uniqueKey = "mce-bench-${className}", enableSql = true)`,
        )
        .join(', ')}],
  durableObjectStorage = (localDisk = "do-disk"),`
    : '';
  writeFileSync(
    join(dir, 'config.capnp'),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .worker),
    # The Worker may reach the local SQL endpoint on loopback, as wrangler dev allows.
    (name = "loopback", network = (allow = ["public", "private", "local"])),
    (name = "do-disk", disk = (path = ${JSON.stringify(join(dir, 'do'))}, writable = true)),
    (name = "queue-sink", worker = (modules = [(name = "sink.js", esModule = embed "sink.js")], compatibilityDate = "${COMPATIBILITY_DATE}")),
  ],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
);
const worker :Workerd.Worker = (
  modules = [(name = "worker.js", esModule = embed "worker.js")],
  compatibilityDate = "${COMPATIBILITY_DATE}",
  bindings = [${bindingList}],
  ${objectConfig}
  globalOutbound = "loopback",
);
`,
  );
  const child: ChildProcess = spawn('workerd', ['serve', join(dir, 'config.capnp')], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await fetch(url, { signal: AbortSignal.timeout(1_000) });
      break;
    } catch {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error('workerd did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    url,
    pid: child.pid ?? 0,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
