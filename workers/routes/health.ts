import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { validationHook } from '../middleware/errors';
import { checkReadiness } from '../services/readiness';
import type { AppEnv } from '../types';

const Check = z
  .object({ ok: z.boolean(), latency_ms: z.number().optional(), error: z.string().optional() })
  .passthrough();
const Readiness = z
  .object({ ok: z.boolean(), failed: z.array(z.string()), checks: z.record(z.string(), Check) })
  .openapi('Readiness');

const liveness = createRoute({
  method: 'get',
  path: '/healthz',
  tags: ['health'],
  summary: 'Liveness: the Worker runs (no I/O)',
  security: [],
  responses: {
    200: { description: 'Alive', content: { 'application/json': { schema: z.object({ ok: z.literal(true) }) } } },
  },
});

const readiness = createRoute({
  method: 'get',
  path: '/readyz',
  tags: ['health'],
  summary: 'Readiness: settings valid, database reachable, schema current',
  security: [],
  responses: {
    200: { description: 'Ready', content: { 'application/json': { schema: Readiness } } },
    503: {
      description: 'Not ready; `failed` names the checks that failed',
      content: { 'application/json': { schema: Readiness } },
    },
  },
});

export const healthRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(liveness, (c) => c.json({ ok: true as const }, 200))
  .openapi(readiness, async (c) => {
    const result = await checkReadiness(c.var.loaded);
    c.header('Cache-Control', 'no-store');
    return result.ok ? c.json(result, 200) : c.json(result, 503);
  });
