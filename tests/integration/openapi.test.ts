/**
 * The OpenAPI document served by the real Worker lists every registered route, with its auth and
 * error shape. New routes are covered automatically: a route added without `createRoute` (or
 * without a summary, tag or path-parameter schema) fails here until it is described. The document's
 * validity against the OpenAPI 3.1 schema is checked in tests/node/openapi.test.ts, because the
 * validator package reads its schemas from disk.
 */
import { SELF } from 'cloudflare:test';
import { beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../workers/app';
import { PUBLIC_ROUTES } from '../../workers/routes/registry';
import { json } from './helpers';

interface Route {
  method: string;
  path: string;
}

/** Registered routes that are deliberately not OpenAPI operations. Keep this short; each has a reason. */
const NOT_IN_DOCUMENT: (Route & { reason: string })[] = [
  { method: 'GET', path: '/api/v1/openapi.json', reason: 'the document itself' },
  { method: 'GET', path: '/docs', reason: 'the HTML page that renders the document' },
];

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const key = (r: Route) => `${r.method.toUpperCase()} ${r.path}`;
/** Hono's `/boards/:id` (or `:id{regex}`, `:id?`) is OpenAPI's `/boards/{id}`. */
const openApiPath = (path: string) => path.replace(/:(\w+)(\{[^}]*\})?\??/g, '{$1}');

const registered: Route[] = createApp()
  .routes.filter((r) => r.method !== 'ALL')
  .map((r) => ({ method: r.method, path: openApiPath(r.path) }))
  .filter((r, i, all) => all.findIndex((o) => key(o) === key(r)) === i);
const exempt = new Set(NOT_IN_DOCUMENT.map(key));
const isPublic = (r: Route) => PUBLIC_ROUTES.some((p) => key(p) === key(r));

// biome-ignore lint/suspicious/noExplicitAny: the document is arbitrary JSON the assertions inspect.
type Json = Record<string, any>;
let doc: Json;
let operations: (Route & { op: Json })[];

beforeAll(async () => {
  // No credential: the document is public.
  const res = await SELF.fetch('https://mce.test/api/v1/openapi.json');
  expect(res.status).toBe(200);
  doc = await json(res);
  operations = Object.entries(doc.paths as Json).flatMap(([path, item]) =>
    Object.entries(item as Json)
      .filter(([method]) => METHODS.includes(method))
      .map(([method, op]) => ({ method: method.toUpperCase(), path, op: op as Json })),
  );
});

describe('OpenAPI document: completeness', () => {
  it('lists every registered route with its method', () => {
    expect(registered.length).toBeGreaterThan(20);
    const documented = new Set(operations.map(key));
    const missing = registered.filter((r) => !exempt.has(key(r)) && !documented.has(key(r))).map(key);
    expect(missing, 'routes registered without createRoute are missing from the document').toEqual([]);
  });

  it('documents no operation that the app does not serve', () => {
    const served = new Set(registered.map(key));
    expect(operations.map(key).filter((k) => !served.has(k))).toEqual([]);
  });

  it('keeps its exemption list honest: each exempt route exists and is really absent', () => {
    const served = new Set(registered.map(key));
    const documented = new Set(operations.map(key));
    for (const r of NOT_IN_DOCUMENT) {
      expect(served.has(key(r)), `${key(r)} is no longer registered`).toBe(true);
      expect(documented.has(key(r)), `${key(r)} is documented now: drop its exemption`).toBe(false);
    }
  });

  it('declares a schema for every path parameter', () => {
    const undeclared = operations.flatMap(({ method, path, op }) =>
      [...path.matchAll(/\{(\w+)\}/g)]
        .map((m) => m[1])
        .filter(
          (name) => !(op.parameters ?? []).some((p: Json) => p.in === 'path' && p.name === name && p.required === true),
        )
        .map((name) => `${method} ${path}: {${name}}`),
    );
    expect(undeclared).toEqual([]);
  });

  it('gives every operation a summary and at least one tag, and unique operation ids', () => {
    const lacking = operations
      .filter(({ op }) => !(typeof op.summary === 'string' && op.summary.trim()) || !(op.tags?.length > 0))
      .map(key);
    expect(lacking).toEqual([]);
    const ids = operations.map(({ op }) => op.operationId).filter(Boolean);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('OpenAPI document: authentication', () => {
  it('defines the bearer and agent-token schemes, with bearer as the default', () => {
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.components.securitySchemes.agentToken).toMatchObject({
      type: 'apiKey',
      in: 'header',
      name: 'X-Agent-Token',
    });
    expect(doc.security).toEqual([{ bearerAuth: [] }]);
  });

  it('marks exactly the public routes as public, and every other operation requires a defined scheme', () => {
    const schemes = Object.keys(doc.components.securitySchemes);
    for (const { method, path, op } of operations) {
      const security = op.security ?? doc.security;
      const name = `${method} ${path}`;
      expect(Array.isArray(security), name).toBe(true);
      if (isPublic({ method, path })) {
        expect(op.security, `${name} is public: it must declare security: []`).toEqual([]);
        continue;
      }
      expect(security.length, `${name} requires a credential but declares none`).toBeGreaterThan(0);
      for (const requirement of security) {
        for (const scheme of Object.keys(requirement)) expect(schemes, name).toContain(scheme);
      }
    }
  });

  it('asks agents for their agent token and operators for a bearer credential', () => {
    for (const { method, path, op } of operations) {
      if (isPublic({ method, path })) continue;
      const schemes = (op.security ?? doc.security).flatMap((r: Json) => Object.keys(r));
      const expected = path.startsWith('/api/v1/agent/') ? 'agentToken' : 'bearerAuth';
      expect(schemes, `${method} ${path}`).toEqual([expected]);
    }
  });

  it('describes the unauthenticated answer (401) on every non-public operation', () => {
    const without401 = operations.filter((o) => !isPublic(o) && !o.op.responses['401']).map(key);
    expect(without401).toEqual([]);
  });

  it('agrees with the server: a documented non-public operation answers 401 without a credential', async () => {
    const sample = operations.find((o) => o.method === 'GET' && !isPublic(o) && !o.path.includes('{'));
    expect(sample).toBeDefined();
    const res = await SELF.fetch(`https://mce.test${sample?.path}`);
    expect(res.status).toBe(401);
    const body = await json(res);
    expect(body.error.code).toBe('unauthenticated');
  });
});

describe('OpenAPI document: error shape', () => {
  it('has the Error schema component with the documented shape', () => {
    const error = doc.components.schemas.Error;
    expect(error).toBeDefined();
    expect(error.required).toEqual(expect.arrayContaining(['error', 'request_id']));
    expect(error.properties.error.required).toEqual(expect.arrayContaining(['code', 'message']));
  });

  it('describes the standard errors with the Error schema on every operation', () => {
    const problems: string[] = [];
    for (const o of operations) {
      const expected = ['500'];
      if (!isPublic(o)) expected.push('401', '403');
      if (o.path.includes('{')) expected.push('404');
      if (o.op.requestBody || o.op.parameters?.length) expected.push('422');
      for (const status of expected) {
        const schema = o.op.responses[status]?.content?.['application/json']?.schema;
        if (schema?.$ref !== '#/components/schemas/Error') problems.push(`${key(o)} ${status}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('every $ref points at a component the document defines', () => {
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/(\w+)\/([^"]+)"/g)];
    expect(refs.length).toBeGreaterThan(0);
    const dangling = refs.filter(([, kind = '', name = '']) => !doc.components[kind]?.[name]).map((m) => m[0]);
    expect(dangling).toEqual([]);
  });
});
