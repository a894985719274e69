/**
 * Reading the audit log: filtered, newest first, keyset-paginated on (created_at, id) so deep pages
 * cost the same as the first and rows written meanwhile never shift a page. The CSV export walks
 * the same keyset in fixed pages inside a stream, so memory stays bounded whatever the log's size.
 */
import { and, desc, eq, gte, lt, type SQL, sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import { auditLogs } from '../db/schema';
import { AppError } from '../lib/errors';
import { isUuid } from '../lib/ids';
import { log } from '../lib/log';
import { type ActorType, type AuditContext, auditInsert } from './audit';

export const ACTOR_TYPES = [
  'user',
  'api_key',
  'agent',
  'webhook',
  'system',
  'anonymous',
] as const satisfies readonly ActorType[];

export interface AuditLogFilters {
  actorType?: ActorType;
  actorId?: string;
  /** Prefix: `api_key.` matches `api_key.create` and `api_key.revoke`. */
  action?: string;
  targetType?: string;
  targetId?: string;
  success?: boolean;
  /** Inclusive lower bound on created_at. */
  since?: Date;
  /** Exclusive upper bound on created_at, so consecutive windows never overlap. */
  until?: Date;
}

export interface AuditLogItem {
  id: string;
  createdAt: Date;
  organizationId: string | null;
  actorType: string;
  actorId: string | null;
  action: string;
  success: boolean;
  targetType: string | null;
  targetId: string | null;
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
  details: unknown;
}

/** Position after a row: its created_at at full (microsecond) precision, and its id. */
interface Position {
  at: string;
  id: string;
}

const EXACT_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

const invalidCursor = () =>
  new AppError(422, 'validation_failed', 'The cursor is not valid; start again without one.', {
    details: { location: 'query', issues: [{ path: 'cursor', message: 'is not a cursor this API returned' }] },
  });

export function encodeCursor(position: Position): string {
  const bytes = new TextEncoder().encode(`${position.at}|${position.id}`);
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
}

/** Opaque to clients, but checked here: anything we did not issue is a 422, never a 500. */
export function decodeCursor(cursor: string): Position {
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(cursor)) throw invalidCursor();
  let text: string;
  try {
    text = atob(cursor.replaceAll('-', '+').replaceAll('_', '/'));
  } catch {
    throw invalidCursor();
  }
  const [at, id, ...rest] = text.split('|');
  if (rest.length > 0 || !at || !id || !EXACT_TIME.test(at) || !isUuid(id)) throw invalidCursor();
  // A real instant only: 2024-02-30 would otherwise roll over here and fail in Postgres.
  const parsed = new Date(at);
  if (Number.isNaN(parsed.getTime()) || parsed.toISOString().slice(0, 23) !== at.slice(0, 23)) throw invalidCursor();
  return { at, id };
}

/** LIKE treats `%`, `_` and the escape character itself as special; a prefix filter means them literally. */
export function likePrefix(prefix: string): string {
  return `${prefix.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;
}

function conditions(organizationId: string, filters: AuditLogFilters): SQL[] {
  const where: (SQL | undefined)[] = [
    eq(auditLogs.organizationId, organizationId),
    filters.actorType === undefined ? undefined : eq(auditLogs.actorType, filters.actorType),
    filters.actorId === undefined ? undefined : eq(auditLogs.actorId, filters.actorId),
    filters.action === undefined ? undefined : sql`${auditLogs.action} LIKE ${likePrefix(filters.action)} ESCAPE '\\'`,
    filters.targetType === undefined ? undefined : eq(auditLogs.targetType, filters.targetType),
    filters.targetId === undefined ? undefined : eq(auditLogs.targetId, filters.targetId),
    filters.success === undefined ? undefined : eq(auditLogs.success, filters.success),
    filters.since === undefined ? undefined : gte(auditLogs.createdAt, filters.since),
    filters.until === undefined ? undefined : lt(auditLogs.createdAt, filters.until),
  ];
  return where.filter((c): c is SQL => c !== undefined);
}

/** One page after `after` (or from the newest row), plus the position of its last row. */
async function page(
  db: Database,
  organizationId: string,
  filters: AuditLogFilters,
  limit: number,
  after: Position | null,
): Promise<{ items: AuditLogItem[]; last: Position | null; more: boolean }> {
  const where = conditions(organizationId, filters);
  if (after) {
    where.push(sql`(${auditLogs.createdAt}, ${auditLogs.id}) < (${after.at}::timestamptz, ${after.id}::uuid)`);
  }
  const rows = await db
    .select({
      id: auditLogs.id,
      createdAt: auditLogs.createdAt,
      organizationId: auditLogs.organizationId,
      actorType: auditLogs.actorType,
      actorId: auditLogs.actorId,
      action: auditLogs.action,
      success: auditLogs.success,
      targetType: auditLogs.targetType,
      targetId: auditLogs.targetId,
      ip: auditLogs.ip,
      userAgent: auditLogs.userAgent,
      requestId: auditLogs.requestId,
      details: auditLogs.details,
      // A JS Date keeps milliseconds only; the cursor needs Postgres's microseconds to be exact.
      exactAt: sql<string>`to_char(${auditLogs.createdAt} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`,
    })
    .from(auditLogs)
    .where(and(...where))
    .orderBy(desc(auditLogs.createdAt), desc(auditLogs.id))
    .limit(limit + 1);
  const more = rows.length > limit;
  const kept = more ? rows.slice(0, limit) : rows;
  const tail = kept.at(-1);
  return {
    items: kept.map(({ exactAt: _, ...item }) => item),
    last: tail ? { at: tail.exactAt, id: tail.id } : null,
    more,
  };
}

export async function listAuditLogs(
  db: Database,
  organizationId: string,
  filters: AuditLogFilters,
  options: { limit: number; cursor?: string },
): Promise<{ items: AuditLogItem[]; nextCursor: string | null }> {
  const after = options.cursor ? decodeCursor(options.cursor) : null;
  const { items, last, more } = await page(db, organizationId, filters, options.limit, after);
  return { items, nextCursor: more && last ? encodeCursor(last) : null };
}

// ---- CSV -------------------------------------------------------------------------------------

export const CSV_COLUMNS = [
  'id',
  'created_at',
  'organization_id',
  'actor_type',
  'actor_id',
  'action',
  'success',
  'target_type',
  'target_id',
  'ip',
  'user_agent',
  'request_id',
  'details',
] as const;

/** Rows per database round trip while exporting. */
export const EXPORT_PAGE_SIZE = 1000;

/**
 * One CSV cell (RFC 4180). A cell a spreadsheet would run as a formula (leading = + - @, or a
 * tab/carriage return that some programs strip first) is prefixed with a single quote.
 */
export function csvCell(value: string | null): string {
  if (value === null) return '';
  const text = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function csvLine(item: AuditLogItem): string {
  const cells = [
    item.id,
    item.createdAt.toISOString(),
    item.organizationId,
    item.actorType,
    item.actorId,
    item.action,
    String(item.success),
    item.targetType,
    item.targetId,
    item.ip,
    item.userAgent,
    item.requestId,
    JSON.stringify(item.details ?? {}),
  ];
  return `${cells.map(csvCell).join(',')}\r\n`;
}

/**
 * Starts an export: reading the log changes nothing, but carrying it out of the system is a
 * security event, so the `audit_log.export` row (with the filters) is written before any byte leaves.
 */
export async function startAuditLogExport(
  db: Database,
  ctx: AuditContext,
  organizationId: string,
  filters: AuditLogFilters,
): Promise<ReadableStream<Uint8Array>> {
  await auditInsert(db, ctx, {
    action: 'audit_log.export',
    targetType: 'audit_log',
    organizationId,
    details: { format: 'csv', filters: describeFilters(filters) },
  });
  return exportAuditLogsCsv(db, organizationId, filters, EXPORT_PAGE_SIZE, ctx.requestId);
}

/** The filters as the API names them (`actor_type`, `since`...), for the audit row. */
function describeFilters(filters: AuditLogFilters): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(filters)) {
    const name = key.replace(/[A-Z]/g, (ch) => `_${ch.toLowerCase()}`);
    if (value !== undefined) out[name] = value instanceof Date ? value.toISOString() : value;
  }
  return out;
}

/** The filtered log as CSV, newest first: a header row, then one database page per pull. */
export function exportAuditLogsCsv(
  db: Database,
  organizationId: string,
  filters: AuditLogFilters,
  pageSize = EXPORT_PAGE_SIZE,
  requestId: string | null = null,
): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let after: Position | null = null;
  let headerSent = false;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (!headerSent) {
          headerSent = true;
          controller.enqueue(encoder.encode(`${CSV_COLUMNS.join(',')}\r\n`));
          return;
        }
        let result: Awaited<ReturnType<typeof page>>;
        try {
          result = await page(db, organizationId, filters, pageSize, after);
        } catch (err) {
          // The status line is long gone: the client sees a cut-off download, the log says why.
          log('error', 'audit_log.export_failed', { request_id: requestId, error: (err as Error).message });
          throw err;
        }
        if (result.items.length > 0) controller.enqueue(encoder.encode(result.items.map(csvLine).join('')));
        if (!result.more) {
          controller.close();
          return;
        }
        after = result.last;
      },
    },
    // Pull the next page only once the previous one has been read.
    { highWaterMark: 0 },
  );
}
