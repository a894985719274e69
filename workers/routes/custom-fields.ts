/** Organization-level custom field definitions: `/api/v1/custom-fields[/{id}]`. */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { authorize } from '../auth/policy';
import { validationHook } from '../middleware/errors';
import {
  CUSTOM_FIELD_KEY,
  CUSTOM_FIELD_TYPES,
  type CustomFieldDefinition,
  type CustomFieldType,
  createCustomField,
  deleteCustomField,
  listCustomFields,
} from '../services/custom-fields';
import type { AppEnv } from '../types';
import { publishActivity } from './publish';
import { authErrors, errorContent, IdParam, jsonBody, jsonResponse, listOf, Pagination, timestamp } from './schemas';

const CustomFieldRead = z
  .object({
    id: z.uuid(),
    organization_id: z.uuid(),
    key: z.string(),
    label: z.string(),
    field_type: z.enum(CUSTOM_FIELD_TYPES),
    required: z.boolean(),
    created_at: timestamp,
  })
  .openapi('CustomField');

const CustomFieldCreate = z
  .object({
    key: z
      .string()
      .regex(CUSTOM_FIELD_KEY, { error: 'must start with a lowercase letter; lowercase letters, digits, _ (max 63)' }),
    label: z.string().trim().min(1).max(200).optional().openapi({ description: 'Defaults to the key' }),
    field_type: z.enum(CUSTOM_FIELD_TYPES),
    required: z.boolean().optional().default(false).openapi({ description: 'New tasks must carry a value' }),
  })
  .openapi('CustomFieldCreate');

const toRead = (f: CustomFieldDefinition): z.infer<typeof CustomFieldRead> => ({
  id: f.id,
  organization_id: f.organizationId,
  key: f.key,
  label: f.label,
  field_type: f.fieldType as CustomFieldType,
  required: f.required,
  created_at: f.createdAt.toISOString(),
});

const tags = ['custom-fields'];
const readers = { user: 'member', apiKey: 'read' } as const;
const admins = { user: 'admin', apiKey: 'admin' } as const;

export const customFieldRoutes = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  .openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/custom-fields',
      tags,
      summary: "List the organization's custom task fields",
      request: { query: Pagination },
      responses: { 200: jsonResponse('Custom fields', listOf(CustomFieldRead)), ...authErrors },
    }),
    async (c) => {
      const { organizationId } = authorize(c.var.principal, readers);
      const page = c.req.valid('query');
      const { items, total } = await listCustomFields(c.var.db, organizationId, page);
      return c.json({ items: items.map(toRead), total, ...page }, 200);
    },
  )
  .openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/custom-fields',
      tags,
      summary: 'Define a custom task field',
      request: { body: jsonBody(CustomFieldCreate) },
      responses: {
        201: jsonResponse('Created', CustomFieldRead),
        ...authErrors,
        409: errorContent('A field with this key exists (`custom_field_exists`)'),
        422: errorContent('Invalid'),
      },
    }),
    async (c) => {
      const { organizationId } = authorize(c.var.principal, admins);
      const body = c.req.valid('json');
      const { field, events } = await createCustomField(c.var.db, c.var.audit, organizationId, {
        key: body.key,
        label: body.label ?? body.key,
        fieldType: body.field_type,
        required: body.required,
      });
      c.set('audited', true);
      publishActivity(c, events);
      return c.json(toRead(field), 201);
    },
  )
  .openapi(
    createRoute({
      method: 'delete',
      path: '/api/v1/custom-fields/{id}',
      tags,
      summary: "Delete a custom field (and its values on the organization's tasks)",
      request: { params: IdParam },
      responses: { 204: { description: 'Deleted' }, ...authErrors, 404: errorContent('No such custom field') },
    }),
    async (c) => {
      const { organizationId } = authorize(c.var.principal, admins);
      const { events } = await deleteCustomField(c.var.db, c.var.audit, organizationId, c.req.valid('param').id);
      c.set('audited', true);
      publishActivity(c, events);
      return c.body(null, 204);
    },
  );
