/** `mce serve-upstash`: the local Upstash Redis REST stand-in over a real Redis, until Ctrl-C. */
import { randomBytes } from 'node:crypto';
import { readDevVars } from '../lib/dev-vars.ts';
import { CliError, type Output } from '../lib/output.ts';
import { DEFAULT_REDIS_URL, startUpstashRest } from '../upstash-rest/server.ts';
import { untilSignal } from './signals.ts';

export const DEFAULT_UPSTASH_REST_PORT = 8079;

export const serveUpstashHelp = `mce serve-upstash [--port N]
  Runs a local Upstash Redis REST endpoint over REDIS_URL (default ${DEFAULT_REDIS_URL}) until Ctrl-C.
  Port: --port, else the port of UPSTASH_REDIS_REST_URL in .dev.vars, else ${DEFAULT_UPSTASH_REST_PORT}.
  Uses UPSTASH_REDIS_REST_TOKEN from .dev.vars, or prints a fresh token.`;

export async function serveUpstashCommand(out: Output, options: { port?: number }): Promise<void> {
  const vars = readDevVars();
  const fresh = !vars.UPSTASH_REDIS_REST_TOKEN;
  const token = vars.UPSTASH_REDIS_REST_TOKEN || randomBytes(32).toString('base64url');
  const configured = vars.UPSTASH_REDIS_REST_URL ? Number(new URL(vars.UPSTASH_REDIS_REST_URL).port) : 0;
  const port = options.port ?? (configured || DEFAULT_UPSTASH_REST_PORT);
  const redisUrl = process.env.REDIS_URL || DEFAULT_REDIS_URL;

  const endpoint = await startUpstashRest({ redisUrl, token, port }).catch((err: Error) => {
    throw new CliError(`cannot start the Upstash REST endpoint on port ${port}: ${err.message}`);
  });
  // Redis is only dialled on the first request; try one now so a stopped Redis shows up here.
  const ping = await fetch(endpoint.url, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
    body: '["PING"]',
  });
  if (!ping.ok) out.info(`Warning: ${((await ping.json()) as { error?: string }).error ?? ping.statusText}`);

  out.result(
    `Upstash REST endpoint on ${endpoint.url} over ${redisUrl}${fresh ? `\nToken: ${token}` : ''}\nCtrl-C stops it.`,
    { url: endpoint.url, redisUrl, ...(fresh ? { token } : {}) },
  );
  await untilSignal();
  await endpoint.close();
}
