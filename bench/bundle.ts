/**
 * The Worker bundle against the Workers limits: its size as `wrangler deploy --dry-run` writes it,
 * gzipped (what the limit counts: 3 MiB on the free plan, 10 MiB on paid), and startup: how long
 * workerd takes from spawn to the first answer, against a trivial Worker started the same way.
 */
import { readFileSync, statSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { median } from './lib/load.ts';
import { baselineWorker, startWorker } from './lib/workerd.ts';
import type { BenchConfig } from './run.ts';

const MIB = 1024 * 1024;
const FREE_LIMIT = 3 * MIB;
const PAID_LIMIT = 10 * MIB;

async function startupMs(path: string, settings: Record<string, string>): Promise<number> {
  const started = performance.now();
  const worker = await startWorker(path, settings);
  const elapsed = performance.now() - started;
  await worker.stop();
  return elapsed;
}

export async function benchBundle(
  config: BenchConfig,
  bundle: string,
  settings: Record<string, string>,
): Promise<string> {
  const raw = statSync(bundle).size;
  const gzipped = gzipSync(readFileSync(bundle), { level: 9 }).length;
  const baseline = baselineWorker();
  const appTimes: number[] = [];
  const baseTimes: number[] = [];
  for (let run = 0; run < Math.max(3, config.runs); run++) {
    baseTimes.push(await startupMs(baseline, {}));
    appTimes.push(await startupMs(bundle, settings));
  }
  const [app, base] = [median(appTimes), median(baseTimes)];
  config.progress(`bundle: ${(gzipped / 1024).toFixed(0)} KiB gzipped, startup ${app.toFixed(0)} ms`);
  const pct = (limit: number) => `${((gzipped / limit) * 100).toFixed(1)}%`;
  return `
## Worker bundle and startup

\`wrangler deploy --dry-run\` output (\`dist/worker/index.js\`): ${(raw / 1024).toFixed(0)} KiB, ${(gzipped / 1024).toFixed(0)} KiB
gzipped: ${pct(FREE_LIMIT)} of the free plan's 3 MiB limit, ${pct(PAID_LIMIT)} of the paid plan's 10 MiB.
Startup (spawn of workerd to the first answer, median of ${appTimes.length}): ${app.toFixed(0)} ms, against ${base.toFixed(0)} ms
for a trivial Worker (${(app / base).toFixed(2)}×); workerd's own start is in both, so the difference is the bundle's parse and top-level
evaluation; the Workers limit is 1 s to parse and run the global scope.
The dashboard's initial JS size is reported once the dashboard exists (issue 8).
`;
}
