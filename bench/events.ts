/**
 * Live events, commit to delivery: 500 WebSocket subscribers on one board while a lead agent
 * changes that board through the agent API. Each change commits its activity row in Postgres;
 * the Worker then publishes it to the organization's event hub, which pushes it to every socket.
 * Latency is measured per delivery from the row's `created_at` (the statement's start, so at or
 * before the commit: an upper bound) to the moment the subscriber's message event runs in Node.
 * BENCH_EVENT_SUBSCRIBERS (default 500), BENCH_EVENT_PAUSE_MS between changes (default 100); the
 * measured phase lasts BENCH_SECONDS × BENCH_RUNS.
 */
import { createHash, randomBytes } from 'node:crypto';
import { startBenchDatabase } from './lib/database.ts';
import { cpuSeconds, type RunningWorker, startWorker } from './lib/workerd.ts';
import type { BenchConfig } from './run.ts';

const SUBSCRIBERS = Number(process.env.BENCH_EVENT_SUBSCRIBERS ?? 500);
const PAUSE_MS = Number(process.env.BENCH_EVENT_PAUSE_MS ?? 100);
const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

interface Received {
  id: number;
  at: number;
}

/** Opens one subscriber: a ticket with the API key, then the WebSocket; resolves on `ready`. */
async function subscribe(worker: RunningWorker, apiKey: string, boardId: string, into: Received[]) {
  const res = await fetch(`${worker.url}/api/v1/events/ticket`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ board_id: boardId }),
  });
  if (res.status !== 201) throw new Error(`ticket: ${res.status} ${await res.text()}`);
  const { ticket } = (await res.json()) as { ticket: string };
  const ws = new WebSocket(`${worker.url.replace('http', 'ws')}/api/v1/events?ticket=${ticket}`);
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener('error', () => reject(new Error('subscriber socket failed')));
    ws.addEventListener('message', (e) => {
      const at = performance.timeOrigin + performance.now();
      const message = JSON.parse(String(e.data)) as { type: string; event?: { id: number } };
      if (message.type === 'ready') resolve();
      else if (message.type === 'event' && message.event) into.push({ id: message.event.id, at });
    });
  });
  return ws;
}

export async function benchEvents(
  config: BenchConfig,
  bundle: string,
  settings: Record<string, string>,
): Promise<string> {
  const database = await startBenchDatabase();
  const { sql } = database;
  const [orgId, boardId] = [crypto.randomUUID(), crypto.randomUUID()];
  const apiKey = `mce_${randomBytes(32).toString('base64url')}`;
  const agentToken = `mca_${randomBytes(32).toString('base64url')}`;
  await sql.transaction([
    sql.query('INSERT INTO organizations (id, name) VALUES ($1, $2)', [orgId, 'bench events']),
    sql.query('INSERT INTO boards (id, organization_id, name) VALUES ($1, $2, $3)', [boardId, orgId, 'bench']),
    sql.query(
      `INSERT INTO api_keys (organization_id, name, prefix, key_hash, scopes) VALUES ($1, 'dashboards', 'mce_bench', $2, array['read'])`,
      [orgId, sha256(apiKey)],
    ),
    sql.query(
      `INSERT INTO agents (organization_id, board_id, name, token_hash, token_prefix, is_lead)
       VALUES ($1, $2, 'lead', $3, 'mca_bench', true)`,
      [orgId, boardId, sha256(agentToken)],
    ),
  ]);

  const worker = await startWorker(
    bundle,
    {
      ...settings,
      ...database.bindings,
      AGENT_RATE_LIMIT: '1000000000/60',
    },
    { durableObjects: { EVENT_HUB: 'EventHub' } },
  );
  const received: Received[] = [];
  const sockets: WebSocket[] = [];
  const created = new Map<number, number>();
  const agent = { 'X-Agent-Token': agentToken, 'Content-Type': 'application/json' };
  let changes = 0;
  const change = async () => {
    const res = await fetch(`${worker.url}/api/v1/agent/tasks`, {
      method: 'POST',
      headers: agent,
      body: JSON.stringify({ title: `change ${changes++}` }),
    });
    if (res.status !== 201) throw new Error(`agent change: ${res.status} ${await res.text()}`);
    await res.body?.cancel();
  };
  const settle = async (expected: number) => {
    const until = Date.now() + 10_000;
    while (received.length < expected && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  };
  let cpuPerChange = { workerd: 0, node: 0 };
  try {
    for (let i = 0; i < SUBSCRIBERS; i += 25) {
      const batch = Math.min(25, SUBSCRIBERS - i);
      sockets.push(
        ...(await Promise.all(Array.from({ length: batch }, () => subscribe(worker, apiKey, boardId, received)))),
      );
    }
    config.progress(`events: ${sockets.length} subscribers ready`);
    // Warm-up (JIT, first statements), not measured.
    for (let i = 0; i < 10; i++) await change();
    await settle(changes * sockets.length);
    received.length = 0;
    changes = 0;

    const [workerdBefore, nodeBefore] = [cpuSeconds(worker.pid), process.cpuUsage()];
    const deadline = Date.now() + config.seconds * config.runs * 1000;
    // One change at a time with a pause between: latency of a fan-out, not of a queue.
    while (Date.now() < deadline) {
      await change();
      await new Promise((r) => setTimeout(r, PAUSE_MS));
    }
    await settle(changes * sockets.length);
    const node = process.cpuUsage(nodeBefore);
    cpuPerChange = {
      workerd: ((cpuSeconds(worker.pid) - workerdBefore) * 1000) / changes,
      node: (node.user + node.system) / 1000 / changes,
    };
    const rows = await sql.query(
      `SELECT id, extract(epoch FROM created_at)::float8 * 1000 AS created_ms FROM activity_events WHERE board_id = $1`,
      [boardId],
    );
    for (const row of rows as { id: string; created_ms: number }[]) created.set(Number(row.id), Number(row.created_ms));
  } finally {
    for (const ws of sockets) ws.close();
    await worker.stop().catch(() => {});
    await database.close();
  }

  const expected = changes * sockets.length;
  const latencies = received.map((r) => r.at - (created.get(r.id) ?? Number.NaN)).filter(Number.isFinite);
  latencies.sort((a, b) => a - b);
  // Where the time goes: each event's first delivery, and the spread to its last.
  const spread = new Map<number, { first: number; last: number }>();
  for (const r of received) {
    const s = spread.get(r.id) ?? { first: r.at, last: r.at };
    spread.set(r.id, { first: Math.min(s.first, r.at), last: Math.max(s.last, r.at) });
  }
  const firsts = [...spread].map(([id, s]) => s.first - (created.get(id) ?? 0)).sort((a, b) => a - b);
  const fanOut = [...spread.values()].map((s) => s.last - s.first).sort((a, b) => a - b);
  const ms = (v: number) => v.toFixed(1);
  config.progress(
    `events: ${changes} changes, ${received.length}/${expected} deliveries, p50 ${ms(percentile(latencies, 50))} ms, ` +
      `p99 ${ms(percentile(latencies, 99))} ms; CPU per change workerd ${ms(cpuPerChange.workerd)} ms, node ${ms(cpuPerChange.node)} ms`,
  );
  return `## Live events: commit to delivery

${sockets.length} WebSocket subscribers (Node's built-in WebSocket client) on one board, each through
\`POST /api/v1/events/ticket\` and \`GET /api/v1/events\`; a lead agent then creates tasks one after another through
\`POST /api/v1/agent/tasks\` (${PAUSE_MS} ms apart, after 10 unmeasured warm-up changes). Each change commits its
activity row on ${database.label}; the Worker then publishes it
to the organization's event hub (a Durable Object with SQLite storage on workerd), which sends it to every socket.
Latency is taken for every delivery, from the activity row's \`created_at\` (its statement's start, so at or before
the commit) to the message event in the subscriber. All ${sockets.length} subscribers share one Node process, on the same
2 cores as workerd and the database: the client's own CPU per change (below) is part of the figures, and the
"spread" column (first to last subscriber of one event) is mostly that client queue. Target: p99 under 100 ms.

| subscribers | changes | deliveries | p50 ms | p90 ms | p99 ms | max ms | first delivery p50 / p99 ms | spread p50 / p99 ms | CPU ms/change workerd / client |
|---|---|---|---|---|---|---|---|---|---|
| ${sockets.length} | ${changes} | ${received.length} of ${expected} | ${ms(percentile(latencies, 50))} | ${ms(percentile(latencies, 90))} | ${ms(percentile(latencies, 99))} | ${ms(latencies.at(-1) ?? 0)} | ${ms(percentile(firsts, 50))} / ${ms(percentile(firsts, 99))} | ${ms(percentile(fanOut, 50))} / ${ms(percentile(fanOut, 99))} | ${ms(cpuPerChange.workerd)} / ${ms(cpuPerChange.node)} |
`;
}
