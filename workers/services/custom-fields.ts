/**
 * Organization-defined typed task fields. Definitions are org-level; tasks carry their values in
 * `custom_fields`, validated here against the definitions (422 naming `custom_fields.<key>`).
 */
import { asc, eq, sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import { pgErrorCode, UNIQUE_VIOLATION } from '../db/errors';
import { pageOf } from '../db/paging';
import { fromRow } from '../db/rows';
import { customFieldDefinitions } from '../db/schema-domain';
import { AppError } from '../lib/errors';
import { type ActivityEvent, activityRowsFrom, toActivityEvent } from './activity';
import { type AuditContext, auditRowsFrom } from './audit';

export const CUSTOM_FIELD_TYPES = [
  'text',
  'integer',
  'decimal',
  'boolean',
  'date',
  'date_time',
  'url',
  'json',
] as const;
export type CustomFieldType = (typeof CUSTOM_FIELD_TYPES)[number];
export const CUSTOM_FIELD_KEY = /^[a-z][a-z0-9_]{0,62}$/;
/** Longest text value, and largest JSON value (serialized), a field may hold. */
export const MAX_TEXT_VALUE = 10_000;
const MAX_JSON_VALUE = 20_000;

export type CustomFieldDefinition = typeof customFieldDefinitions.$inferSelect;
export interface FieldSpec {
  key: string;
  fieldType: string;
  required: boolean;
}

export async function listCustomFields(db: Database, organizationId: string, page: { limit: number; offset: number }) {
  const where = eq(customFieldDefinitions.organizationId, organizationId);
  return pageOf(
    db,
    customFieldDefinitions,
    where,
    [asc(customFieldDefinitions.createdAt), asc(customFieldDefinitions.id)],
    page,
  );
}

type Changed = {
  row: Record<string, unknown> | null;
  events: Record<string, unknown>[] | null;
};

export async function createCustomField(
  db: Database,
  ctx: AuditContext,
  organizationId: string,
  input: { key: string; label: string; fieldType: CustomFieldType; required: boolean },
): Promise<{ field: CustomFieldDefinition; events: ActivityEvent[] }> {
  const statement = sql`
    WITH ins AS (
      INSERT INTO custom_field_definitions (organization_id, key, label, field_type, required)
      VALUES (${organizationId}, ${input.key}, ${input.label}, ${input.fieldType}, ${input.required})
      RETURNING *
    ),
    audit AS (${auditRowsFrom(ctx, {
      action: 'custom_field.create',
      targetType: 'custom_field',
      organizationId: sql`ins.organization_id`,
      targetId: sql`ins.id::text`,
      details: sql`${JSON.stringify({ key: input.key, field_type: input.fieldType, required: input.required })}::jsonb`,
      from: sql`ins`,
    })}),
    act AS (${activityRowsFrom(ctx, {
      type: 'custom_field.created',
      message: sql`'Custom field created: ' || ins.key`,
      boardId: sql`NULL::uuid`,
      payload: sql`jsonb_build_object('custom_field_id', ins.id, 'key', ins.key, 'field_type', ins.field_type)`,
      from: sql`ins`,
    })})
    SELECT (SELECT row_to_json(ins) FROM ins) AS row, (SELECT json_agg(act) FROM act) AS events`;
  let result: Changed | undefined;
  try {
    [result] = (await db.execute<Changed>(statement)).rows;
  } catch (err) {
    if (pgErrorCode(err) === UNIQUE_VIOLATION) {
      throw new AppError(409, 'custom_field_exists', `A custom field with key "${input.key}" already exists.`);
    }
    throw err;
  }
  if (!result?.row) throw new Error('custom field insert returned nothing');
  return {
    field: fromRow(customFieldDefinitions, result.row),
    events: (result.events ?? []).map(toActivityEvent),
  };
}

/** Deletes a definition and, in the same statement, removes its values from the organization's tasks. */
export async function deleteCustomField(
  db: Database,
  ctx: AuditContext,
  organizationId: string,
  id: string,
): Promise<{ field: CustomFieldDefinition; events: ActivityEvent[] }> {
  const statement = sql`
    WITH del AS (
      DELETE FROM custom_field_definitions WHERE id = ${id} AND organization_id = ${organizationId} RETURNING *
    ),
    strip AS (
      UPDATE tasks SET custom_fields = tasks.custom_fields - del.key, version = tasks.version + 1, updated_at = now()
      FROM del WHERE tasks.organization_id = del.organization_id AND tasks.custom_fields ? del.key
      RETURNING tasks.id
    ),
    audit AS (${auditRowsFrom(ctx, {
      action: 'custom_field.delete',
      targetType: 'custom_field',
      organizationId: sql`del.organization_id`,
      targetId: sql`del.id::text`,
      details: sql`jsonb_build_object('key', del.key)`,
      from: sql`del`,
    })}),
    act AS (${activityRowsFrom(ctx, {
      type: 'custom_field.deleted',
      message: sql`'Custom field deleted: ' || del.key`,
      boardId: sql`NULL::uuid`,
      payload: sql`jsonb_build_object('custom_field_id', del.id, 'key', del.key, 'tasks_updated', (SELECT count(*) FROM strip))`,
      from: sql`del`,
    })})
    SELECT (SELECT row_to_json(del) FROM del) AS row, (SELECT json_agg(act) FROM act) AS events`;
  const [result] = (await db.execute<Changed>(statement)).rows;
  if (!result?.row) throw new AppError(404, 'not_found', 'No such custom field.');
  return {
    field: fromRow(customFieldDefinitions, result.row),
    events: (result.events ?? []).map(toActivityEvent),
  };
}

export interface FieldIssue {
  path: string;
  message: string;
}

/**
 * Checks values against the organization's definitions. `null` clears a value (refused for a
 * required field). On creation (`creating`), every required field must be given.
 * Returns the values to set and the keys to clear, or throws 422 listing every bad field.
 */
export function validateCustomFields(
  defs: readonly FieldSpec[],
  values: Record<string, unknown>,
  creating: boolean,
): { set: Record<string, unknown>; clear: string[] } {
  const byKey = new Map(defs.map((d) => [d.key, d]));
  const issues: FieldIssue[] = [];
  const set: Record<string, unknown> = {};
  const clear: string[] = [];
  for (const [key, value] of Object.entries(values)) {
    const path = `custom_fields.${key}`;
    const def = byKey.get(key);
    if (!def) {
      issues.push({ path, message: 'is not a custom field of this organization' });
    } else if (value === null) {
      if (def.required) issues.push({ path, message: 'is required' });
      else clear.push(key);
    } else {
      const problem = checkValue(def.fieldType as CustomFieldType, value);
      if (problem) issues.push({ path, message: problem });
      else set[key] = value;
    }
  }
  if (creating) {
    for (const def of defs) {
      const path = `custom_fields.${def.key}`;
      if (def.required && (values[def.key] ?? null) === null && !issues.some((i) => i.path === path)) {
        issues.push({ path, message: 'is required' });
      }
    }
  }
  if (issues.length > 0) {
    throw new AppError(422, 'validation_failed', 'Some custom fields are not valid.', {
      details: { location: 'json', issues },
    });
  }
  return { set, clear };
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

/** Why `value` does not fit `type`, or null when it does. */
export function checkValue(type: CustomFieldType, value: unknown): string | null {
  switch (type) {
    case 'text':
      if (typeof value !== 'string') return 'must be a string';
      return value.length > MAX_TEXT_VALUE ? `must be at most ${MAX_TEXT_VALUE} characters` : null;
    case 'integer':
      return typeof value === 'number' && Number.isSafeInteger(value) ? null : 'must be an integer';
    case 'decimal':
      return typeof value === 'number' && Number.isFinite(value) ? null : 'must be a number';
    case 'boolean':
      return typeof value === 'boolean' ? null : 'must be true or false';
    case 'date': {
      const m = typeof value === 'string' ? DATE.exec(value) : null;
      if (!m) return 'must be a date (YYYY-MM-DD)';
      const d = new Date(`${value}T00:00:00Z`);
      return !Number.isNaN(d.getTime()) && d.toISOString().startsWith(value as string)
        ? null
        : 'must be a real calendar date';
    }
    case 'date_time':
      return typeof value === 'string' && DATE_TIME.test(value) && !Number.isNaN(Date.parse(value))
        ? null
        : 'must be an ISO 8601 date-time with a time zone';
    case 'url': {
      if (typeof value !== 'string' || value.length > 2048) return 'must be an http(s) URL';
      try {
        const url = new URL(value);
        return url.protocol === 'http:' || url.protocol === 'https:' ? null : 'must be an http(s) URL';
      } catch {
        return 'must be an http(s) URL';
      }
    }
    case 'json':
      return JSON.stringify(value).length > MAX_JSON_VALUE
        ? `must serialize to at most ${MAX_JSON_VALUE} characters`
        : null;
  }
  return 'has an unknown field type';
}
