/** Edge CPU per request: the app's /healthz against a trivial Worker measured in the same run. */
import { type Measurement, measure, summarize } from './lib/load.ts';
import { baselineWorker, type RunningWorker, startWorker } from './lib/workerd.ts';
import type { BenchConfig } from './run.ts';

export async function benchEdgeCpu(
  config: BenchConfig,
  bundle: string,
  settings: Record<string, string>,
): Promise<string> {
  const baseline = await startWorker(baselineWorker());
  const app = await startWorker(bundle, settings);
  const cases: [string, RunningWorker, string][] = [
    ['baseline: trivial Worker', baseline, '/'],
    ['GET /healthz', app, '/healthz'],
  ];
  const results = new Map<string, Measurement[]>();
  const load = { seconds: config.seconds, connections: config.connections };
  try {
    for (const [, worker, path] of cases) await measure(worker, path, { ...load, seconds: 2 }); // warm-up
    for (let run = 1; run <= config.runs; run++) {
      // Interleave the cases so drift on a noisy machine hits them alike.
      for (const [name, worker, path] of cases) {
        const m = await measure(worker, path, load);
        results.set(name, [...(results.get(name) ?? []), m]);
        config.progress(
          `edge-cpu run ${run}/${config.runs} ${name}: ${m.rps.toFixed(0)} req/s, ${m.cpuMsPerRequest.toFixed(3)} CPU ms/req`,
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
  return `## Edge CPU per request (workerd)

CPU ms/request is workerd's user+system CPU time over the run divided by the requests it answered;
the ratio compares with a trivial Worker measured in the same run.

| case | requests/s | CPU ms/request | CPU vs baseline | p50 ms | p99 ms |
|---|---|---|---|---|---|
${rows.join('\n')}
`;
}
