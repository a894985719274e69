/**
 * Edge CPU per request on the hot paths, against a trivial Worker measured in the same run: bare
 * `/healthz`, an agent listing its tasks, signed webhook ingest with 1 KiB and 1 MiB bodies, and an
 * operator's board snapshot with 500 tasks. Many clients are simulated by `CF-Connecting-IP`; the
 * rate limits are raised so the measurement is of the work, not of 429s.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { startBenchDatabase } from './lib/database.ts';
import { type LoadOptions, type Measurement, measure, summarize } from './lib/load.ts';
import { baselineWorker, type RunningWorker, startWorker } from './lib/workerd.ts';
import type { BenchConfig } from './run.ts';

const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

interface Case {
  name: string;
  worker: RunningWorker;
  path: string;
  options: Omit<LoadOptions, 'seconds' | 'connections'>;
}

/** A JSON body of about `bytes` bytes. */
const payload = (bytes: number) => JSON.stringify({ event: 'build', log: 'x'.repeat(Math.max(0, bytes - 30)) });

export async function benchEdgeCpu(
  config: BenchConfig,
  bundle: string,
  settings: Record<string, string>,
): Promise<string> {
  const database = await startBenchDatabase();
  const { sql } = database;
  const baseline = await startWorker(baselineWorker());
  const app = await startWorker(
    bundle,
    {
      ...settings,
      ...database.bindings,
      AGENT_RATE_LIMIT: '1000000000/60',
      WEBHOOK_RATE_LIMIT: '1000000000/60',
      JSON_BODY_LIMIT_BYTES: String(2 * 1024 * 1024),
    },
    { durableObjects: { RATE_LIMITER: 'RateLimiter', EVENT_HUB: 'EventHub' }, queues: ['WEBHOOK_DELIVERIES'] },
  );
  const operator = { Authorization: `Bearer ${settings.LOCAL_AUTH_TOKEN}`, 'Content-Type': 'application/json' };
  const results = new Map<string, Measurement[]>();
  const roundTrips = new Map<string, number>();
  try {
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${app.url}${path}`, { method: 'POST', headers: operator, body: JSON.stringify(body) });
      if (res.status !== 201) throw new Error(`${path}: ${res.status} ${await res.text()}`);
      return (await res.json()) as { id: string; organization_id: string; endpoint_path: string };
    };
    const board = await post('/api/v1/boards', { name: 'bench hot paths' });
    const agentToken = `mca_${randomBytes(32).toString('base64url')}`;
    await sql.query(
      `INSERT INTO agents (organization_id, board_id, name, token_hash, token_prefix, is_lead)
       VALUES ($1, $2, 'lead', $3, 'mca_bench', true)`,
      [board.organization_id, board.id, sha256(agentToken)],
    );
    await sql.query(
      `INSERT INTO tasks (organization_id, board_id, title, tags) SELECT $1, $2, 'task ' || i, array['bench']
       FROM generate_series(1, 500) AS i`,
      [board.organization_id, board.id],
    );
    const secret = randomBytes(32).toString('hex');
    const hook = await post(`/api/v1/boards/${board.id}/webhooks`, { description: 'bench', secret });
    const signed = (body: string) => ({
      method: 'POST' as const,
      body,
      headers: {
        'Content-Type': 'application/json',
        'X-Hub-Signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
        'CF-Connecting-IP': '198.51.100.7',
      },
    });
    const cases: Case[] = [
      { name: 'baseline: trivial Worker', worker: baseline, path: '/', options: {} },
      { name: 'GET /healthz', worker: app, path: '/healthz', options: {} },
      {
        name: 'agent: GET /api/v1/agent/tasks',
        worker: app,
        path: '/api/v1/agent/tasks?limit=20',
        options: { headers: { 'X-Agent-Token': agentToken } },
      },
      { name: 'webhook ingest, 1 KiB signed', worker: app, path: hook.endpoint_path, options: signed(payload(1024)) },
      {
        name: 'webhook ingest, 1 MiB signed',
        worker: app,
        path: hook.endpoint_path,
        options: signed(payload(1024 * 1024 - 64)),
      },
      {
        name: 'operator: board snapshot, 500 tasks',
        worker: app,
        path: `/api/v1/boards/${board.id}/snapshot`,
        options: { headers: { Authorization: operator.Authorization } },
      },
    ];
    // The 1 MiB case moves a mebibyte per request: fewer connections keep it from measuring the loopback.
    const connectionsFor = (c: Case) =>
      c.name.includes('1 MiB') ? Math.min(4, config.connections) : config.connections;
    for (const c of cases)
      await measure(c.worker, c.path, { ...c.options, seconds: 2, connections: connectionsFor(c) });
    // Database round trips per request: a few requests one at a time, the endpoint's count before and after
    // (after a pause, so writes still settling from the warm-up are not counted).
    await new Promise((r) => setTimeout(r, 2_000));
    for (const c of cases) {
      const before = database.roundTrips();
      for (let i = 0; i < 10; i++) {
        const res = await fetch(`${c.worker.url}${c.path}`, c.options);
        if (res.status >= 300) throw new Error(`${c.name}: ${res.status} ${await res.text()}`);
        await res.arrayBuffer();
      }
      roundTrips.set(c.name, (database.roundTrips() - before) / 10);
    }
    for (let run = 1; run <= config.runs; run++) {
      // Interleave the cases so drift on a noisy machine hits them alike.
      for (const c of cases) {
        const m = await measure(c.worker, c.path, {
          ...c.options,
          seconds: config.seconds,
          connections: connectionsFor(c),
        });
        results.set(c.name, [...(results.get(c.name) ?? []), m]);
        config.progress(
          `edge-cpu run ${run}/${config.runs} ${c.name}: ${m.rps.toFixed(0)} req/s, ${m.cpuMsPerRequest.toFixed(3)} CPU ms/req`,
        );
      }
    }
  } finally {
    await baseline.stop();
    await app.stop();
    await database.close();
  }
  const names = [...results.keys()];
  const base = summarize(results.get(names[0] ?? '') ?? []);
  const health = summarize(results.get('GET /healthz') ?? []);
  const rows = names.map((name) => {
    const m = summarize(results.get(name) ?? []);
    return `| ${name} | ${m.rps.toFixed(0)} | ${m.cpuMsPerRequest.toFixed(3)} | ${(m.cpuMsPerRequest / base.cpuMsPerRequest).toFixed(2)}× | ${(m.cpuMsPerRequest / health.cpuMsPerRequest).toFixed(2)}× | ${(roundTrips.get(name) ?? 0).toFixed(1)} | ${m.p50} | ${m.p99} |`;
  });
  return `## Edge CPU per request (workerd)

CPU ms/request is workerd's user+system CPU time over the run divided by the requests it answered (the Worker,
its Durable Objects and workerd's HTTP handling; the database endpoint runs in the benchmark's Node process and is
not counted). Ratios compare with a trivial Worker and with \`/healthz\`, measured in the same run. Goals: every hot
path within the free plan's 10 ms CPU per request, small-payload paths under 2 ms, at most two database round trips
(counted at the SQL endpoint over ten sequential requests).

| case | requests/s | CPU ms/request | vs trivial Worker | vs /healthz | DB round trips/request | p50 ms | p99 ms |
|---|---|---|---|---|---|---|---|
${rows.join('\n')}
`;
}
