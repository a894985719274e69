import { createRoute, z } from '@hono/zod-openapi';
import { describe, expect, it } from 'vitest';
import { createApp } from '../../workers/app';
import { json, operatorHeaders, testEnv } from '../integration/helpers';

/** The real middleware stack with one JSON route, the way later issues add theirs. */
function appWithEcho() {
  const app = createApp();
  const route = createRoute({
    method: 'post',
    path: '/api/v1/echo',
    request: {
      body: {
        required: true,
        content: { 'application/json': { schema: z.object({ name: z.string().min(1), tags: z.array(z.string()) }) } },
      },
    },
    responses: { 200: { description: 'echo' } },
  });
  app.openapi(route, (c) => c.json(c.req.valid('json'), 200));
  const env = { ...testEnv, JSON_BODY_LIMIT_BYTES: '2048' };
  return (init: RequestInit) => app.request('/api/v1/echo', { method: 'POST', ...init }, env);
}

const post = appWithEcho();
const jsonHeaders = operatorHeaders({ 'Content-Type': 'application/json' });

describe('JSON request bodies', () => {
  it('accepts a valid body', async () => {
    const res = await post({ headers: jsonHeaders, body: JSON.stringify({ name: 'a', tags: ['x'] }) });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ name: 'a', tags: ['x'] });
  });

  it('answers 422 with field paths for a body that fails the schema', async () => {
    const res = await post({ headers: jsonHeaders, body: JSON.stringify({ name: '', tags: [1] }) });
    const body = await json(res);
    expect(res.status).toBe(422);
    expect(body.error.code).toBe('validation_failed');
    const paths = body.error.details.issues.map((i: { path: string }) => i.path).sort();
    expect(paths).toEqual(['name', 'tags.0']);
  });

  it('answers 400 for malformed JSON', async () => {
    const res = await post({ headers: jsonHeaders, body: '{"name": ' });
    const body = await json(res);
    expect(res.status).toBe(400);
    expect(body.error.message).toMatch(/malformed json/i);
  });

  it('answers 415 for a body that is not JSON', async () => {
    const res = await post({ headers: operatorHeaders({ 'Content-Type': 'text/plain' }), body: 'name=a' });
    expect(res.status).toBe(415);
    expect((await json(res)).error.code).toBe('unsupported_media_type');
  });

  it('answers 413 for a body over the limit', async () => {
    const res = await post({ headers: jsonHeaders, body: JSON.stringify({ name: 'a'.repeat(4096), tags: [] }) });
    expect(res.status).toBe(413);
    expect((await json(res)).error.details.limit_bytes).toBe(2048);
  });

  it('counts the streamed bytes of a chunked body with no Content-Length', async () => {
    const chunk = new TextEncoder().encode(`{"name":"${'a'.repeat(1000)}`);
    const stream = new ReadableStream({
      start(controller) {
        for (let i = 0; i < 5; i++) controller.enqueue(chunk);
        controller.close();
      },
    });
    const res = await post({ headers: { ...jsonHeaders, 'Transfer-Encoding': 'chunked' }, body: stream });
    expect(res.status).toBe(413);
  });
});
