import type { OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../types';
import { ErrorResponse } from './schemas';

/** The API reference page; its scripts are static assets, so the CSP needs no inline script. */
const DOCS_HTML = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Mission Control Edge API</title>
    <link rel="stylesheet" href="/api-docs/swagger-ui.css" />
  </head>
  <body>
    <div id="api-reference"></div>
    <script src="/api-docs/swagger-ui-bundle.js"></script>
    <script src="/api-docs/init.js"></script>
  </body>
</html>
`;

export const OPENAPI_PATH = '/api/v1/openapi.json';

/** Operations under this prefix are called by agents with their own token, never by operators. */
const AGENT_API_PREFIX = '/api/v1/agent/';

const DOCUMENT_CONFIG: Parameters<OpenAPIHono<AppEnv>['getOpenAPI31Document']>[0] = {
  openapi: '3.1.0',
  info: {
    title: 'Mission Control Edge API',
    version: '1',
    description: [
      'Control plane for OpenClaw agent gateways.',
      '',
      'Authentication: operators, dashboards and automation send `Authorization: Bearer <token>` (`bearerAuth`):',
      'the local operator token, a session JWT, or an API key (`mce_...`). Agents call `/api/v1/agent/*` with their',
      'agent token in `X-Agent-Token` (`agentToken`). Operations marked with an empty security list are public.',
      '',
      'Errors always have the shape `{"error": {"code", "message", "details"?}, "request_id"}` (the `Error` schema).',
    ].join('\n'),
  },
  // Every operation requires an operator credential unless it says otherwise.
  security: [{ bearerAuth: [] }],
};

type Json = Record<string, unknown>;
type Operation = Json & { security?: unknown[]; responses?: Json; parameters?: unknown[]; requestBody?: unknown };

const HTTP_METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);

const ERROR_REF = { $ref: '#/components/schemas/Error' };
const errorResponse = (description: string) => ({
  description,
  content: { 'application/json': { schema: ERROR_REF } },
});

/**
 * Completes what route declarations leave implicit, in one place instead of in every route file.
 * For each operation of the generated document:
 * - security: operations under /api/v1/agent/ require `agentToken` (they refuse operator
 *   credentials); every other operation without its own `security` falls back to the document's
 *   default, `bearerAuth`. Public operations declare `security: []` themselves and keep it.
 * - error responses the middleware and handlers give, added only where the route did not declare
 *   that status itself (a route's own description wins):
 *   every operation: 500;
 *   authenticated ones: 401 (missing/invalid credential), 403 (not allowed), 423 (organization locked);
 *   agent operations: 429 (per-agent rate limit and failed-attempt limit);
 *   a path with parameters: 404 (unknown id, or an object of another organization);
 *   operations with parameters or a body: 422 (validation);
 *   operations with a body: 413 (too large) and 415 (not JSON).
 * Returns the same document, changed in place; only objects the generator just built are touched.
 */
export function completeOperations<T extends { paths?: Json }>(doc: T): T {
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    const pathItem = item as Json;
    for (const [method, value] of Object.entries(pathItem)) {
      if (!HTTP_METHODS.has(method)) continue;
      const op = value as Operation;
      const agent = path.startsWith(AGENT_API_PREFIX);
      const isPublic = Array.isArray(op.security) && op.security.length === 0;
      const security = op.security ?? (agent ? [{ agentToken: [] }] : undefined);

      const defaults: Json = {};
      if (!isPublic) {
        defaults[401] = errorResponse(
          agent ? 'Missing, unknown or revoked agent token' : 'Missing or invalid credentials',
        );
        defaults[403] = errorResponse('Not allowed');
      }
      if (path.includes('{')) defaults[404] = errorResponse('Not found (or belongs to another organization)');
      if (op.requestBody) {
        defaults[413] = errorResponse('The request body is too large');
        defaults[415] = errorResponse('The request body is not JSON');
      }
      if (op.requestBody || (op.parameters?.length ?? 0) > 0) {
        defaults[422] = errorResponse('Invalid input; `error.details` names the fields');
      }
      if (!isPublic) defaults[423] = errorResponse('The organization is locked');
      if (agent) defaults[429] = errorResponse('Too many requests (per agent), or too many failed attempts');
      defaults[500] = errorResponse('Unexpected server error');

      pathItem[method] = {
        ...op,
        ...(security ? { security } : {}),
        responses: { ...defaults, ...op.responses },
      };
    }
  }
  return doc;
}

/** The OpenAPI 3.1 document of every route registered on `app` with `createRoute`. */
export function buildOpenApiDocument(app: OpenAPIHono<AppEnv>) {
  return completeOperations(app.getOpenAPI31Document(DOCUMENT_CONFIG));
}

/** Generated once per app (the routes do not change after start-up), then served from memory. */
const documents = new WeakMap<OpenAPIHono<AppEnv>, ReturnType<typeof buildOpenApiDocument>>();

/**
 * Serves `/api/v1/openapi.json`, generated from the same zod schemas that validate requests, and
 * `/docs`. Call it after every route is mounted. A generation failure is a bug: it surfaces as a
 * logged 500 through the app's error handler rather than a half-document.
 */
export function mountDocs(app: OpenAPIHono<AppEnv>): void {
  const registry = app.openAPIRegistry;
  registry.register('Error', ErrorResponse);
  registry.registerComponent('securitySchemes', 'bearerAuth', {
    type: 'http',
    scheme: 'bearer',
    description:
      'Operator credential in `Authorization: Bearer`: the local operator token (AUTH_MODE=local), a session ' +
      'JWT (AUTH_MODE=clerk), or an API key `mce_...`.',
  });
  registry.registerComponent('securitySchemes', 'agentToken', {
    type: 'apiKey',
    in: 'header',
    name: 'X-Agent-Token',
    description:
      'The agent token minted when the agent was created; only valid on /api/v1/agent/*. ' +
      '`Authorization: Bearer <agent token>` is accepted there too.',
  });

  app.get(OPENAPI_PATH, (c) => {
    let doc = documents.get(app);
    if (!doc) {
      doc = buildOpenApiDocument(app);
      documents.set(app, doc);
    }
    return c.json(doc);
  });
  app.get('/docs', (c) => c.html(DOCS_HTML));
}
