/**
 * RPC relay overhead: the same gateway method called by a direct WebSocket client (one socket,
 * sequential calls) and through Mission Control (`POST /api/v1/gateways/{id}/rpc`: HTTP to the
 * Worker, authentication, the session object, its held socket). Both hit the same real OpenClaw
 * gateway in the same run; the difference is what the relay adds. BENCH_RELAY_CALLS per run
 * (default 300), BENCH_RELAY_METHOD (default `agents.list`, a cheap read).
 * Needs the `openclaw` package: installed into tests/interop on first use.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { connectDirect } from '../tests/interop/direct-client.ts';
import { openclawInstalled, startOpenclaw } from '../tests/interop/openclaw.ts';
import { unusedPort } from '../tests/support/redis.ts';
import { startBenchDatabase } from './lib/database.ts';
import { median } from './lib/load.ts';
import { ROOT, startWorker } from './lib/workerd.ts';
import type { BenchConfig } from './run.ts';

const CALLS = Number(process.env.BENCH_RELAY_CALLS ?? 300);
const METHOD = process.env.BENCH_RELAY_METHOD ?? 'agents.list';
const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

async function timed(calls: number, one: () => Promise<void>): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < calls; i++) {
    const started = performance.now();
    await one();
    latencies.push(performance.now() - started);
  }
  return latencies.sort((a, b) => a - b);
}

export async function benchGatewayRelay(
  config: BenchConfig,
  bundle: string,
  settings: Record<string, string>,
): Promise<string> {
  if (!openclawInstalled()) {
    config.progress('gateway-relay: installing openclaw into tests/interop');
    execFileSync('npm', ['install', '--prefix', join(ROOT, 'tests', 'interop'), '--no-audit', '--no-fund'], {
      stdio: 'inherit',
    });
  }
  const token = `gw-${randomBytes(24).toString('hex')}`;
  const gateway = await startOpenclaw({ port: await unusedPort(), token });
  const database = await startBenchDatabase();
  const orgId = crypto.randomUUID();
  const apiKey = `mce_${randomBytes(32).toString('base64url')}`;
  await database.sql.transaction([
    database.sql.query('INSERT INTO organizations (id, name) VALUES ($1, $2)', [orgId, 'bench relay']),
    database.sql.query(
      `INSERT INTO api_keys (organization_id, name, prefix, key_hash, scopes) VALUES ($1, 'relay', 'mce_bench', $2, array['admin'])`,
      [orgId, sha256(apiKey)],
    ),
  ]);
  const worker = await startWorker(
    bundle,
    { ...settings, ...database.bindings, ENVIRONMENT: 'development' },
    { durableObjects: { GATEWAY_SESSION: 'GatewaySession', EVENT_HUB: 'EventHub', RATE_LIMITER: 'RateLimiter' } },
  );
  const headers = { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json' };
  const direct = await connectDirect(gateway.url, token);
  const runs: Record<'direct' | 'relay' | 'fresh', number[]>[] = [];
  try {
    const created = await fetch(`${worker.url}/api/v1/gateways`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ name: 'bench', url: gateway.url, token }),
    });
    if (created.status !== 201) throw new Error(`create gateway: ${created.status} ${await created.text()}`);
    const { id } = (await created.json()) as { id: string };
    const body = JSON.stringify({ method: METHOD, params: {} });
    const viaDirect = async () => {
      const res = await direct.request(METHOD);
      if (!res.ok) throw new Error(`direct ${METHOD}: ${JSON.stringify(res.error)}`);
    };
    const viaRelay = async () => {
      const res = await fetch(`${worker.url}/api/v1/gateways/${id}/rpc`, { method: 'POST', headers, body });
      if (res.status !== 200) throw new Error(`relay ${METHOD}: ${res.status} ${await res.text()}`);
      await res.arrayBuffer();
    };
    // What upstream Mission Control does: a new socket (challenge, connect, hello) for every call.
    const viaFreshSocket = async () => {
      const client = await connectDirect(gateway.url, token);
      try {
        await client.request(METHOD);
      } finally {
        client.close();
      }
    };
    // Warm-up: JIT, the session's first statements, the gateway's caches.
    await timed(30, viaDirect);
    await timed(30, viaRelay);
    await timed(10, viaFreshSocket);
    for (let run = 0; run < config.runs; run++) {
      // Interleaved, so drift on the noisy machine hits every side alike.
      runs.push({
        direct: await timed(CALLS, viaDirect),
        relay: await timed(CALLS, viaRelay),
        fresh: await timed(Math.ceil(CALLS / 5), viaFreshSocket),
      });
      config.progress(`gateway-relay: run ${run + 1}/${config.runs} done`);
    }
  } finally {
    direct.close();
    await worker.stop().catch(() => {});
    await database.close();
    await gateway.close();
  }

  const p = (side: 'direct' | 'relay' | 'fresh', q: number) => median(runs.map((r) => percentile(r[side], q)));
  const row = (q: number) => {
    const [d, r, f] = [p('direct', q), p('relay', q), p('fresh', q)];
    return `| p${q} | ${d.toFixed(2)} ms | ${r.toFixed(2)} ms | +${(r - d).toFixed(2)} ms (${(r / d).toFixed(2)}×) | ${f.toFixed(2)} ms (${(f / r).toFixed(2)}× the relay) |`;
  };
  return `
## Gateway RPC relay overhead

\`${METHOD}\` on a real OpenClaw gateway (\`openclaw\` in tests/interop), ${CALLS} sequential calls per run:
a direct WebSocket client on its own socket, versus \`POST /api/v1/gateways/{id}/rpc\` (HTTP to workerd, API-key
authentication against ${database.label}, the GatewaySession object, its held socket). Medians of ${config.runs} runs.

| latency | direct, held socket | relay | relay adds | new socket per call (upstream) |
|---|---|---|---|---|
${row(50)}
${row(95)}
${row(99)}

The relay's extra work per call is one authenticated HTTP request (the API-key lookup is its one database read; the
session itself checks the organization), one Durable Object call and one frame each way on the held socket; the
gateway's own time is in every column. The last column is what upstream Mission Control pays per call: a new
WebSocket with the challenge/connect/hello handshake (${Math.ceil(CALLS / 5)} calls per run).
`;
}
