/**
 * `GET /api/v1/openapi.json` is a valid OpenAPI 3.1 document, checked with a real validator
 * (@seriousme/openapi-schema-validator: the official OAS 3.1 JSON Schema, through ajv).
 *
 * This runs in Node, not workerd: the validator reads its schema files with node:fs, which the
 * Workers runtime does not have. The Worker code uses only web APIs, so the app is built here with
 * `createApp()` and asked for the document like any request; the route needs no database (it is
 * public), only settings that pass validation. What the document lists (every route, auth, errors)
 * is checked against the real Worker in tests/integration/openapi.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { Validator } from '@seriousme/openapi-schema-validator';
import { beforeAll, describe, expect, it, vi } from 'vitest';

// The Durable Object classes the Worker exports extend this runtime module; none of them runs here.
vi.mock('cloudflare:workers', () => ({ DurableObject: class {} }));

/**
 * The Worker's own module, loaded through vitest (which resolves its extensionless imports). The
 * specifier is a variable so that tsconfig.node.json does not type-check Worker code under Node's
 * module rules; tsconfig.json checks it.
 */
const WORKER_APP = '../../workers/app';
interface WorkerApp {
  request(path: string, init: RequestInit, env: Record<string, string>): Response | Promise<Response>;
}
const { createApp } = (await import(WORKER_APP)) as { createApp(): WorkerApp };

const env = {
  ENVIRONMENT: 'test',
  AUTH_MODE: 'local',
  LOCAL_AUTH_TOKEN: randomBytes(48).toString('base64url'),
  ENCRYPTION_KEY: randomBytes(32).toString('base64'),
  DATABASE_URL: 'postgresql://test@localhost/test',
};

// biome-ignore lint/suspicious/noExplicitAny: the document is arbitrary JSON.
let doc: Record<string, any>;

beforeAll(async () => {
  const res = await createApp().request('/api/v1/openapi.json', {}, env);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/application\/json/);
  doc = (await res.json()) as typeof doc;
});

describe('OpenAPI document validity', () => {
  it('validates as OpenAPI 3.1', async () => {
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('the validator is not a rubber stamp: it rejects a response without a description', async () => {
    const broken = structuredClone(doc);
    const path = Object.keys(broken.paths).find((p) => broken.paths[p].get?.responses['200']);
    expect(path).toBeDefined();
    broken.paths[path as string].get.responses['200'] = { content: {} };
    const result = await new Validator().validate(broken);
    expect(result.valid).toBe(false);
  });

  it('is deterministic: the same app serves the same document twice', async () => {
    const app = createApp();
    const first = await (await app.request('/api/v1/openapi.json', {}, env)).text();
    const second = await (await app.request('/api/v1/openapi.json', {}, env)).text();
    expect(second).toBe(first);
    expect(JSON.parse(first)).toEqual(doc);
  });
});
