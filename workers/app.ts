/** Builds the Hono app: the middleware order below is deliberate, then the routes. */
import { OpenAPIHono } from '@hono/zod-openapi';
import { jsonBodyLimit } from './middleware/body-limit';
import { cors } from './middleware/cors';
import { notFound, onError, validationHook } from './middleware/errors';
import { logger } from './middleware/logger';
import { requestId } from './middleware/request-id';
import { securityHeaders } from './middleware/security-headers';
import { requireValidSettings, settings } from './middleware/settings';
import { mountDocs } from './routes/docs';
import { healthRoutes } from './routes/health';
import type { AppEnv } from './types';

const PROBES = ['/healthz', '/readyz'];

export function createApp(): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  // Outermost first: every later failure still gets an id, a log line and the security headers.
  app.use('*', requestId());
  app.use('*', logger({ notSlow: PROBES }));
  app.use('*', settings());
  app.use('*', securityHeaders());
  app.use('*', cors());
  // Probes report bad settings themselves (/readyz names `config`); everything else refuses to run.
  app.use('*', requireValidSettings({ except: PROBES }));
  app.use('/api/*', jsonBodyLimit());

  app.route('/', healthRoutes);
  mountDocs(app);

  app.onError(onError);
  app.notFound(notFound);
  return app;
}
