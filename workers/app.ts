/** Builds the Hono app: the middleware order below is deliberate, then the routes. */
import { OpenAPIHono } from '@hono/zod-openapi';
import { auditFailedMutations, authenticate } from './middleware/auth';
import { jsonBodyLimit } from './middleware/body-limit';
import { cors } from './middleware/cors';
import { emergencyShutdownAdminsOnly, emergencyShutdownGate } from './middleware/emergency-shutdown';
import { notFound, onError, validationHook } from './middleware/errors';
import { logger } from './middleware/logger';
import { requestId } from './middleware/request-id';
import { securityHeaders } from './middleware/security-headers';
import { requireValidSettings, settings } from './middleware/settings';
import { activityRoutes } from './routes/activity';
import { adminRoutes } from './routes/admin';
import { agentApiRoutes } from './routes/agent-api';
import { agentTaskRoutes } from './routes/agent-tasks';
import { agentRoutes } from './routes/agents';
import { apiKeyRoutes } from './routes/api-keys';
import { approvalRoutes } from './routes/approvals';
import { auditLogRoutes } from './routes/audit-logs';
import { boardGroupRoutes } from './routes/board-groups';
import { boardMemoryRoutes } from './routes/board-memory';
import { boardRoutes } from './routes/boards';
import { customFieldRoutes } from './routes/custom-fields';
import { mountDocs } from './routes/docs';
import { eventRoutes } from './routes/events';
import { gatewayRelayRoutes } from './routes/gateway-relay';
import { gatewayRoutes } from './routes/gateways';
import { healthRoutes } from './routes/health';
import { opsRoutes } from './routes/ops';
import { organizationRoutes } from './routes/organizations';
import { platformRoutes } from './routes/platform';
import { taskRoutes } from './routes/tasks';
import { userRoutes } from './routes/users';
import { webhookRoutes } from './routes/webhooks';
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
  app.use('/api/*', emergencyShutdownGate());
  app.use('/api/v1/*', authenticate());
  app.use('/api/*', emergencyShutdownAdminsOnly());
  app.use('/api/v1/*', auditFailedMutations());

  app.route('/', healthRoutes);
  app.route('/', apiKeyRoutes);
  app.route('/', boardGroupRoutes);
  app.route('/', approvalRoutes);
  app.route('/', boardMemoryRoutes);
  app.route('/', activityRoutes);
  app.route('/', taskRoutes);
  app.route('/', customFieldRoutes);
  app.route('/', agentTaskRoutes);
  app.route('/', eventRoutes);
  app.route('/', userRoutes);
  app.route('/', organizationRoutes);
  app.route('/', boardRoutes);
  app.route('/', webhookRoutes);
  app.route('/', agentRoutes);
  app.route('/', gatewayRoutes);
  app.route('/', gatewayRelayRoutes);
  app.route('/', agentApiRoutes);
  app.route('/', adminRoutes);
  app.route('/', platformRoutes);
  app.route('/', opsRoutes);
  app.route('/', auditLogRoutes);
  mountDocs(app);

  app.onError(onError);
  app.notFound(notFound);
  return app;
}
