/**
 * `npm run bench`: CPU time per request on workerd, driven by autocannon on loopback, against a
 * trivial Worker measured in the same run as the baseline. Results go to docs/PERFORMANCE.md.
 *
 * BENCH_SECONDS (default 10) per measurement, BENCH_RUNS (default 3) repetitions, BENCH_CONNECTIONS (default 32).
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { cpus, freemem, totalmem } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { bundleWorker, cpuSeconds, ROOT, type RunningWorker, startWorker } from './lib/workerd.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);

/** Valid settings, so the app runs its full middleware stack; /healthz itself never uses the database. */
const BENCH_SETTINGS = {
  ENVIRONMENT: 'test',
  DATABASE_URL: 'postgresql://bench@localhost/bench',
  LOCAL_AUTH_TOKEN: randomBytes(48).toString('base64url'),
  ENCRYPTION_KEY: randomBytes(32).toString('base64'),
};

interface Measurement {
  rps: number;
  cpuMsPerRequest: number;
  p50: number;
  p99: number;
}

async function measure(worker: RunningWorker, path: string, seconds: number): Promise<Measurement> {
  const url = `${worker.url}${path}`;
  const cpuBefore = cpuSeconds(worker.pid);
  const result = await autocannon({ url, connections: CONNECTIONS, duration: seconds });
  const cpu = cpuSeconds(worker.pid) - cpuBefore;
  const ok = result['2xx'];
  if (ok === 0 || result.non2xx > 0 || result.errors > 0) {
    throw new Error(`${url}: ${result.non2xx} non-2xx responses and ${result.errors} errors`);
  }
  return { rps: ok / seconds, cpuMsPerRequest: (cpu * 1000) / ok, p50: result.latency.p50, p99: result.latency.p99 };
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
};

function summarize(runs: Measurement[]): Measurement {
  return {
    rps: median(runs.map((r) => r.rps)),
    cpuMsPerRequest: median(runs.map((r) => r.cpuMsPerRequest)),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
  };
}

async function main() {
  const bundle = bundleWorker();
  // The floor: a Worker that answers the same JSON with no framework at all.
  const baselinePath = join(ROOT, 'dist', 'worker', 'baseline.js');
  writeFileSync(
    baselinePath,
    `export default { fetch() { return new Response('{"ok":true}', { headers: { 'content-type': 'application/json' } }); } };\n`,
  );
  const baseline = await startWorker(baselinePath);
  const app = await startWorker(bundle, BENCH_SETTINGS);

  const cases: [string, RunningWorker, string][] = [
    ['baseline: trivial Worker', baseline, '/'],
    ['GET /healthz', app, '/healthz'],
  ];
  const results = new Map<string, Measurement[]>();
  try {
    for (const [, worker, path] of cases) await measure(worker, path, 2); // warm-up
    for (let run = 1; run <= RUNS; run++) {
      // Interleave the cases so drift on a noisy machine hits them alike.
      for (const [name, worker, path] of cases) {
        const m = await measure(worker, path, SECONDS);
        results.set(name, [...(results.get(name) ?? []), m]);
        process.stderr.write(
          `run ${run}/${RUNS} ${name}: ${m.rps.toFixed(0)} req/s, ${m.cpuMsPerRequest.toFixed(3)} CPU ms/req\n`,
        );
      }
    }
  } finally {
    await baseline.stop();
    await app.stop();
  }

  const base = summarize(results.get(cases[0]?.[0] ?? '') ?? []);
  const rows = cases.map(([name]) => {
    const m = summarize(results.get(name) ?? []);
    return `| ${name} | ${m.rps.toFixed(0)} | ${m.cpuMsPerRequest.toFixed(3)} | ${(m.cpuMsPerRequest / base.cpuMsPerRequest).toFixed(2)}× | ${m.p50} | ${m.p99} |`;
  });
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const report = `## Edge CPU per request (workerd)

Command: \`npm run bench\` (BENCH_SECONDS=${SECONDS}, BENCH_RUNS=${RUNS}, BENCH_CONNECTIONS=${CONNECTIONS}).
Machine: ${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM (${(freemem() / 2 ** 30).toFixed(0)} GiB free), Node ${process.version}, ${new Date().toISOString().slice(0, 10)}.
The Worker bundle from \`wrangler deploy --dry-run\` runs on the bare workerd binary (no wrangler dev proxy, no Miniflare);
autocannon drives it over loopback from the same 2-core machine, so absolute figures include contention.
CPU ms/request is workerd's user+system CPU time over the run divided by the requests it answered.
Medians of ${RUNS} runs; the ratio compares with the trivial Worker measured in the same run.

| case | requests/s | CPU ms/request | CPU vs baseline | p50 ms | p99 ms |
|---|---|---|---|---|---|
${rows.join('\n')}
`;
  writeFileSync(
    join(ROOT, 'docs', 'PERFORMANCE.md'),
    `# Performance\n\nGenerated by \`npm run bench\`; rerun it to refresh.\n\n${report}`,
  );
  process.stdout.write(report);
}

await main();
