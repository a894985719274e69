/**
 * The real Worker from wrangler.toml, run in-process through wrangler's `unstable_startWorker`
 * (workerd with its local Durable Objects, queues, R2 and cron), listening on a loopback port so
 * child processes (the `mce` CLI) can reach it. Node tests use it when they need the Worker and
 * something outside workerd together; tests/integration covers the Worker alone.
 *
 * Hermetic: the developer's `.dev.vars` is not read (an empty env file stands in), local storage
 * (R2 objects, DO state, queues) lives in a temporary directory removed by `close()`, and the
 * settings the Worker needs come from `bindings`, which override wrangler.toml's [vars].
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unstable_startWorker } from 'wrangler';
import { unusedPort } from './redis.ts';

const ROOT = join(import.meta.dirname, '..', '..');

export interface LocalWorkerOptions {
  /** Settings and secrets by name (DATABASE_URL, ENCRYPTION_KEY, LOCAL_AUTH_TOKEN, BACKUP_CHUNK_ROWS, ...). */
  bindings: Record<string, string>;
  /** Defaults to the repository's wrangler.toml. */
  configPath?: string;
}

export interface LocalWorker {
  /** Base URL, e.g. http://127.0.0.1:40123 (no trailing slash). */
  url: string;
  /** Structured runtime logs seen so far (the Worker's console output), newest last. */
  logs(): string[];
  close(): Promise<void>;
}

export async function startLocalWorker(options: LocalWorkerOptions): Promise<LocalWorker> {
  const dir = mkdtempSync(join(tmpdir(), 'mce-worker-'));
  const envFile = join(dir, 'empty.env');
  writeFileSync(envFile, '');
  const logs: string[] = [];
  const port = await unusedPort();
  // As secrets: wrangler then counts the required ones as given (no "missing secrets" warning).
  const bindings = Object.fromEntries(
    Object.entries(options.bindings).map(([name, value]) => [name, { type: 'secret_text', value }]),
  );
  let worker: Awaited<ReturnType<typeof unstable_startWorker>> | undefined;
  try {
    worker = await unstable_startWorker({
      config: options.configPath ?? join(ROOT, 'wrangler.toml'),
      envFiles: [envFile],
      bindings,
      dev: {
        server: { hostname: '127.0.0.1', port },
        inspector: false,
        watch: false,
        persist: join(dir, 'state'),
        logLevel: 'warn',
        structuredLogsHandler: (log: { level: string; message: string }) => {
          logs.push(`${log.level}: ${log.message}`);
          if (logs.length > 2_000) logs.splice(0, logs.length - 2_000);
        },
      },
    } as Parameters<typeof unstable_startWorker>[0]);
    await worker.ready;
    const url = (await worker.url).origin;
    const started = worker;
    return {
      url,
      logs: () => [...logs],
      async close() {
        await started.dispose();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await worker?.dispose().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
