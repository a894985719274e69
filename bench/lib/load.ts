/** Load generation and the arithmetic every benchmark shares. */
import autocannon from 'autocannon';
import { cpuSeconds, type RunningWorker } from './workerd.ts';

export interface Measurement {
  rps: number;
  cpuMsPerRequest: number;
  p50: number;
  p99: number;
}

export interface LoadOptions {
  seconds: number;
  connections: number;
  headers?: Record<string, string>;
  method?: 'GET' | 'POST';
  body?: string | Buffer;
}

/** Drives `path` for `seconds`; fails on any non-2xx so a broken case never reports a speed. */
export async function measure(worker: RunningWorker, path: string, options: LoadOptions): Promise<Measurement> {
  const url = `${worker.url}${path}`;
  const cpuBefore = cpuSeconds(worker.pid);
  const result = await autocannon({
    url,
    connections: options.connections,
    duration: options.seconds,
    headers: options.headers,
    method: options.method ?? 'GET',
    body: options.body,
  });
  const cpu = cpuSeconds(worker.pid) - cpuBefore;
  const ok = result['2xx'];
  if (ok === 0 || result.non2xx > 0 || result.errors > 0) {
    throw new Error(`${url}: ${result.non2xx} non-2xx responses and ${result.errors} errors`);
  }
  return {
    rps: ok / options.seconds,
    cpuMsPerRequest: (cpu * 1000) / ok,
    p50: result.latency.p50,
    p99: result.latency.p99,
  };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

export function summarize(runs: Measurement[]): Measurement {
  return {
    rps: median(runs.map((r) => r.rps)),
    cpuMsPerRequest: median(runs.map((r) => r.cpuMsPerRequest)),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
  };
}
