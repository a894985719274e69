import type { OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../types';

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

/** Serves `/api/v1/openapi.json`, generated from the same zod schemas that validate requests, and `/docs`. */
export function mountDocs(app: OpenAPIHono<AppEnv>): void {
  app.doc31('/api/v1/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'Mission Control Edge API',
      version: '1',
      description:
        'Control plane for OpenClaw agent gateways. Errors use `{error: {code, message, details?}, request_id}`.',
    },
  });
  app.get('/docs', (c) => c.html(DOCS_HTML));
}
