/**
 * Agent-token authentication at 1, 1,000 and 10,000 agents: one indexed lookup by token hash, so
 * latency must stay flat as agents grow (the upstream system scans every agent with PBKDF2).
 */
import { startBenchDatabase } from './lib/database.ts';
import { type Measurement, measure, summarize } from './lib/load.ts';
import { startWorker } from './lib/workerd.ts';
import type { BenchConfig } from './run.ts';

const SIZES = [1, 1_000, 10_000];

export async function benchAgentAuth(
  config: BenchConfig,
  bundle: string,
  settings: Record<string, string>,
): Promise<string> {
  const database = await startBenchDatabase();
  const { sql } = database;
  const orgId = crypto.randomUUID();
  const boardId = crypto.randomUUID();
  await sql.transaction([
    sql.query('INSERT INTO organizations (id, name) VALUES ($1, $2)', [orgId, 'bench']),
    sql.query('INSERT INTO boards (id, organization_id, name) VALUES ($1, $2, $3)', [boardId, orgId, 'bench']),
  ]);

  const worker = await startWorker(bundle, {
    ...settings,
    ...database.bindings,
    // Measure authentication, not the per-agent rate limit.
    AGENT_RATE_LIMIT: '1000000000/60',
  });
  const results = new Map<number, Measurement[]>();
  let seeded = 0;
  try {
    for (const size of SIZES) {
      await sql.query(
        `INSERT INTO agents (organization_id, board_id, name, token_hash, token_prefix)
         SELECT $1, $2, 'agent-' || i, encode(sha256(convert_to('mca_bench_' || i, 'UTF8')), 'hex'), 'mca_bench'
         FROM generate_series($3::int, $4::int) AS i`,
        [orgId, boardId, seeded + 1, size],
      );
      seeded = size;
      await sql.query('ANALYZE agents');
      // The newest agent: no advantage from being first in the table.
      const load = {
        seconds: config.seconds,
        connections: config.connections,
        headers: { 'X-Agent-Token': `mca_bench_${size}` },
      };
      // Warm up longer before the first size, so JIT and connection warm-up do not flatter later sizes.
      await measure(worker, '/api/v1/agent/me', { ...load, seconds: size === SIZES[0] ? config.seconds : 2 });
      for (let run = 1; run <= config.runs; run++) {
        const m = await measure(worker, '/api/v1/agent/me', load);
        results.set(size, [...(results.get(size) ?? []), m]);
        config.progress(
          `agent-auth ${size} agents run ${run}/${config.runs}: ${m.rps.toFixed(0)} req/s, p50 ${m.p50} ms`,
        );
      }
    }
  } finally {
    await worker.stop();
    await database.close();
  }
  const first = summarize(results.get(SIZES[0] ?? 1) ?? []);
  const rows = SIZES.map((size) => {
    const m = summarize(results.get(size) ?? []);
    return `| ${size.toLocaleString('en')} | ${m.rps.toFixed(0)} | ${m.p50} | ${m.p99} | ${(m.p50 / Math.max(first.p50, 1)).toFixed(2)}× | ${m.cpuMsPerRequest.toFixed(3)} |`;
  });
  return `## Agent-token authentication scaling

\`GET /api/v1/agent/me\` with \`X-Agent-Token\`, through the Worker on workerd and the local SQL endpoint on
${database.label}, with 1, 1,000 and 10,000 agents in the table.
Each request hashes the token and does one indexed lookup. The endpoint runs in the benchmark's own Node
process beside the load generator, so absolute latencies are pessimistic; the ratio is what matters.

| agents | requests/s | p50 ms | p99 ms | p50 vs 1 agent | Worker CPU ms/request |
|---|---|---|---|---|---|
${rows.join('\n')}
`;
}
