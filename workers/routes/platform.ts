/** Deployment-wide controls for platform admins: emergency shutdown and encryption-key rotation. */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { requirePlatformAdmin } from '../auth/policy';
import { encryptionKeys } from '../config';
import { log } from '../lib/log';
import { validationHook } from '../middleware/errors';
import { readShutdown, type ShutdownState, setShutdown } from '../services/emergency-shutdown';
import { refreshSessions } from '../services/gateway-sessions';
import { gatewayIds } from '../services/gateways';
import { keyStatus, rotateBatch } from '../services/key-rotation';
import type { AppEnv } from '../types';
import { authErrors, errorContent, jsonBody, jsonResponse, timestamp } from './schemas';

const Shutdown = z
  .object({
    enabled: z.boolean(),
    reason: z.string().nullable(),
    updated_by: z.string().nullable(),
    updated_at: timestamp.nullable(),
  })
  .openapi('EmergencyShutdown');

const ShutdownChange = z
  .object({ enabled: z.boolean(), reason: z.string().trim().max(500).nullable().optional() })

  .openapi('EmergencyShutdownChange');

const KeyStatus = z
  .object({
    current_version: z.string().openapi({ description: 'Version id of ENCRYPTION_KEY (not the key)' }),
    versions: z.record(z.string(), z.number().int()).openapi({ description: 'Sealed secrets per key version' }),
    remaining: z.number().int().openapi({ description: 'Secrets not yet under ENCRYPTION_KEY' }),
  })
  .openapi('EncryptionKeyStatus');

const RotationBatch = z
  .object({ resealed: z.number().int(), unreadable: z.number().int(), remaining: z.number().int() })
  .openapi('EncryptionRotationBatch');

const RotationRequest = z
  .object({ batch_size: z.number().int().min(1).max(500).default(100) })

  .openapi('EncryptionRotationRequest');

const shutdownToRead = (s: ShutdownState): z.infer<typeof Shutdown> => ({
  enabled: s.enabled,
  reason: s.reason,
  updated_by: s.updatedBy,
  updated_at: s.updatedAt,
});

const tags = ['platform'];
const platformErrors = { 401: authErrors[401], 403: errorContent('Platform admins only') };

export const platformRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/admin/emergency-shutdown',
      tags,
      summary: 'Whether emergency shutdown is on',
      responses: { 200: jsonResponse('State', Shutdown), ...platformErrors },
    }),
    async (c) => {
      requirePlatformAdmin(c.var.principal);
      return c.json(shutdownToRead(await readShutdown(c.var.db)), 200);
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/admin/emergency-shutdown',
      tags,
      summary:
        'Turn emergency shutdown on or off: while on, every request but health checks and platform admins gets 503 (every isolate within 5 s)',
      request: { body: jsonBody(ShutdownChange) },
      responses: { 200: jsonResponse('New state', Shutdown), ...platformErrors, 422: errorContent('Invalid') },
    }),
    async (c) => {
      const user = requirePlatformAdmin(c.var.principal);
      const { enabled, reason } = c.req.valid('json');
      const state = await setShutdown(c.var.db, c.var.audit, c.var.settings, {
        enabled,
        reason: reason || null,
        updatedBy: user.subject,
      });
      c.set('audited', true);
      log('warn', enabled ? 'security.emergency_shutdown.on' : 'security.emergency_shutdown.off', {
        by: user.subject,
        request_id: c.var.requestId,
      });
      // Gateway sessions disconnect and stay down (or come back) now, not at their next heartbeat.
      await refreshSessions(c.env, await gatewayIds(c.var.db, null));
      return c.json(shutdownToRead(state), 200);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/admin/encryption',
      tags,
      summary: 'Which key versions the stored secrets are sealed under',
      responses: { 200: jsonResponse('Status', KeyStatus), ...platformErrors },
    }),
    async (c) => {
      requirePlatformAdmin(c.var.principal);
      return c.json(await keyStatus(c.var.db, encryptionKeys(c.var.settings)), 200);
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/admin/encryption/rotate',
      tags,
      summary: 'Re-seal a batch of secrets under ENCRYPTION_KEY (repeat until remaining is 0)',
      request: { body: jsonBody(RotationRequest) },
      responses: { 200: jsonResponse('Batch done', RotationBatch), ...platformErrors, 422: errorContent('Invalid') },
    }),
    async (c) => {
      requirePlatformAdmin(c.var.principal);
      const batch = await rotateBatch(
        c.var.db,
        c.var.audit,
        encryptionKeys(c.var.settings),
        c.req.valid('json').batch_size,
      );
      c.set('audited', true);
      return c.json(batch, 200);
    },
  );
