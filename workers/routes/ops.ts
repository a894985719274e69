/** Operations for platform admins: ops health and backups (list, trigger, verify, download). */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { requirePlatformAdmin } from '../auth/policy';
import { validationHook } from '../middleware/errors';
import { auditInsert } from '../services/audit';
import { backupObject, getBackup, listBackups, runBackup, verifyBackup } from '../services/backups';
import { runJob } from '../services/job-runs';
import { opsHealth } from '../services/ops-health';
import type { AppEnv } from '../types';
import { authErrors, errorContent, jsonResponse, listOf, Pagination, timestamp } from './schemas';

const Backup = z
  .object({
    id: z.string(),
    status: z.enum(['running', 'complete', 'failed']),
    created_at: timestamp,
    completed_at: timestamp.nullable(),
    schema_version: z.string(),
    key_version: z.string().openapi({ description: 'ENCRYPTION_KEY version the secrets inside are sealed under' }),
    total_rows: z.number().int(),
    total_bytes: z.number().int(),
    objects: z.number().int(),
    slices: z.number().int(),
    verification: z.enum(['passed', 'failed']).nullable(),
    verified_at: timestamp.nullable(),
    verification_detail: z.unknown(),
    error: z.string().nullable(),
  })
  .openapi('Backup');

const Health = z
  .object({
    status: z.enum(['ok', 'warning', 'degraded']),
    problems: z.array(z.object({ level: z.enum(['warning', 'degraded']), message: z.string() })),
  })
  .passthrough()
  .openapi('OpsHealth');

const BackupParam = z.object({ id: z.string().max(100) });
const ObjectParam = z.object({ id: z.string().max(100), name: z.string().max(200) });
const tags = ['ops'];
const adminErrors = { 401: authErrors[401], 403: errorContent('Platform admins only') };

export const opsRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/ops/health',
      tags,
      summary: 'Operational state: database, deliveries, backups, jobs, with an overall status',
      responses: { 200: jsonResponse('Health', Health), ...adminErrors },
    }),
    async (c) => {
      requirePlatformAdmin(c.var.principal);
      return c.json(await opsHealth(c.env, c.var.db), 200);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/ops/backups',
      tags,
      summary: 'Backups, newest first',
      request: { query: Pagination },
      responses: { 200: jsonResponse('Backups', listOf(Backup)), ...adminErrors },
    }),
    async (c) => {
      requirePlatformAdmin(c.var.principal);
      const page = c.req.valid('query');
      return c.json({ ...(await listBackups(c.var.db, page)), ...page } as never, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/ops/backups',
      tags,
      summary:
        'Start a backup (or continue the running one) for up to BACKUP_SLICE_MS; call again while it is running. A completed export is verified at once.',
      responses: { 200: jsonResponse('The backup', Backup), ...adminErrors },
    }),
    async (c) => {
      requirePlatformAdmin(c.var.principal);
      const settings = c.var.settings;
      const counts = await runJob(c.var.db, 'backup', () => runBackup(c.env, c.var.db, settings, { start: true }));
      await auditInsert(c.var.db, c.var.audit, {
        action: 'backup.run',
        targetType: 'backup',
        targetId: String(counts.backup_id),
        organizationId: null,
        details: counts,
      });
      c.set('audited', true);
      return c.json((await getBackup(c.var.db, String(counts.backup_id))) as never, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/ops/backups/{id}',
      tags,
      summary: 'One backup',
      request: { params: BackupParam },
      responses: { 200: jsonResponse('The backup', Backup), ...adminErrors, 404: errorContent('No such backup') },
    }),
    async (c) => {
      requirePlatformAdmin(c.var.principal);
      return c.json((await getBackup(c.var.db, c.req.valid('param').id)) as never, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/ops/backups/{id}/verify',
      tags,
      summary: 'Re-read every object of a backup: hashes, gzip, row counts against the manifest',
      request: { params: BackupParam },
      responses: {
        200: jsonResponse('The backup with its verification', Backup),
        ...adminErrors,
        404: errorContent('No such backup'),
        409: errorContent('The backup is not complete'),
      },
    }),
    async (c) => {
      requirePlatformAdmin(c.var.principal);
      const result = await verifyBackup(c.env, c.var.db, c.req.valid('param').id);
      await auditInsert(c.var.db, c.var.audit, {
        action: 'backup.verify',
        targetType: 'backup',
        targetId: result.id,
        organizationId: null,
        details: { verification: result.verification },
      });
      c.set('audited', true);
      return c.json(result as never, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/ops/backups/{id}/objects/{name}',
      tags,
      summary: 'Download one object of a backup (streamed): `manifest.json` or a `<table>.<n>.ndjson.gz`',
      request: { params: ObjectParam },
      responses: {
        200: { description: 'The object as stored', content: { 'application/octet-stream': { schema: z.string() } } },
        ...adminErrors,
        404: errorContent('No such backup or object'),
      },
    }),
    async (c) => {
      requirePlatformAdmin(c.var.principal);
      const { id, name } = c.req.valid('param');
      const object = await backupObject(c.env, c.var.db, id, name);
      return new Response(object.body, {
        headers: {
          'Content-Type': name.endsWith('.json') ? 'application/json' : 'application/gzip',
          'Content-Length': String(object.size),
          ETag: object.httpEtag,
        },
      }) as never;
    },
  );
