/**
 * Organization offboarding: an owner exports everything of the organization as a streamed NDJSON
 * archive, and deletes the organization with everything under it (foreign keys cascade; the audit
 * row is kept at the platform level, with no organization, so it outlives what it describes).
 */
import { type SQL, sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import { parseJson } from '../db/rows';
import { AppError } from '../lib/errors';
import { jsonb } from './activity-feed';
import { type AuditContext, auditRowsFrom } from './audit';
import { type BackupTable, backupTables } from './backup-tables';

/** Credentials never leave in an export, not even hashed or sealed. */
const DROPPED_COLUMNS = ['token_hash', 'key_hash', 'ticket_hash', 'secret_ciphertext'];

/** Tables without an organization_id column, reached through their parent. */
const THROUGH_PARENT: Record<string, (org: string) => SQL> = {
  users: (org) => sql`id IN (SELECT user_id FROM organization_members WHERE organization_id = ${org}::uuid)`,
  task_dependencies: (org) => sql`task_id IN (SELECT id FROM tasks WHERE organization_id = ${org}::uuid)`,
  approval_tasks: (org) => sql`approval_id IN (SELECT id FROM approvals WHERE organization_id = ${org}::uuid)`,
  member_board_access: (org) =>
    sql`member_id IN (SELECT id FROM organization_members WHERE organization_id = ${org}::uuid)`,
};

interface ExportTable extends BackupTable {
  where: SQL;
}

async function exportTables(db: Database, org: string): Promise<ExportTable[]> {
  const { rows } = await db.execute<{ table_name: string }>(sql`
    SELECT table_name FROM information_schema.columns
    WHERE table_schema = 'public' AND column_name = 'organization_id'`);
  const scoped = new Set(rows.map((r) => r.table_name));
  const out: ExportTable[] = [];
  for (const table of await backupTables(db)) {
    if (table.name === 'organizations') out.push({ ...table, where: sql`id = ${org}::uuid` });
    else if (scoped.has(table.name)) out.push({ ...table, where: sql`organization_id = ${org}::uuid` });
    else if (THROUGH_PARENT[table.name]) out.push({ ...table, where: THROUGH_PARENT[table.name]?.(org) ?? sql`false` });
  }
  return out;
}

const PAGE = 1_000;

/** `{"format",...}` then one `{"table","row"}` line per row, table by table in key order, read page by page. */
export async function exportOrganization(db: Database, org: string): Promise<ReadableStream<Uint8Array>> {
  const tables = await exportTables(db, org);
  const encoder = new TextEncoder();
  let index = 0;
  let offsetKey: string[] | null = null;
  let started = false;
  const dropped = sql.raw(DROPPED_COLUMNS.map((c) => ` - '${c}'`).join(''));
  /** The next page of `table` after `offsetKey`, and the key to continue from (null when the table is done). */
  async function page(table: ExportTable): Promise<{ text: string; last: string[] | null }> {
    const keys = table.key.map((k) => sql`t.${sql.identifier(k.column)}`);
    const after = offsetKey
      ? sql`AND ROW(${sql.join(keys, sql`, `)}) > ROW(${sql.join(
          table.key.map((k, i) => sql`${offsetKey?.[i] ?? null}::${sql.raw(k.type)}`),
          sql`, `,
        )})`
      : sql``;
    const keyText = sql.join(
      table.key.map((k) => sql`t.${sql.identifier(k.column)}::text`),
      sql`, `,
    );
    const { rows } = await db.execute<{ line: string; k: string[] | string }>(sql`
      SELECT (row_to_json(t)::jsonb${dropped})::text AS line, ARRAY[${keyText}] AS k
      FROM ${sql.identifier(table.name)} t WHERE ${table.where} ${after}
      ORDER BY ${sql.join(keys, sql`, `)} LIMIT ${PAGE}`);
    const text = rows.map((r) => `{"table":${JSON.stringify(table.name)},"row":${r.line}}\n`).join('');
    const last = rows.at(-1)?.k;
    return { text, last: rows.length === PAGE && last ? parseJson<string[]>(last) : null };
  }

  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!started) {
        started = true;
        const head = { format: 'mce-org-export/1', organization_id: org, exported_at: new Date().toISOString() };
        controller.enqueue(encoder.encode(`${JSON.stringify(head)}\n`));
        return;
      }
      // Each pull must enqueue or close: the runtime does not pull again after an empty one.
      for (;;) {
        const table = tables[index];
        if (!table) {
          controller.close();
          return;
        }
        const { text, last } = await page(table);
        offsetKey = last;
        if (!last) index += 1;
        if (text) {
          controller.enqueue(encoder.encode(text));
          return;
        }
      }
    },
  });
}

/** Deletes the organization if `confirm` is its exact name; one statement with its platform-level audit row. */
export async function deleteOrganization(db: Database, ctx: AuditContext, org: string, confirm: string): Promise<void> {
  const { rows } = await db.execute<{ deleted: boolean; found: boolean }>(sql`
    WITH changed AS (DELETE FROM organizations WHERE id = ${org}::uuid AND name = ${confirm}::text RETURNING id, name),
    audit AS (${auditRowsFrom(ctx, {
      action: 'organization.delete',
      targetType: 'organization',
      organizationId: sql`NULL::uuid`,
      targetId: sql`changed.id::text`,
      details: sql`${jsonb({ organization_id: org })} || jsonb_build_object('name', changed.name)`,
      from: sql`changed`,
    })})
    SELECT EXISTS (SELECT 1 FROM changed) AS deleted, EXISTS (SELECT 1 FROM organizations WHERE id = ${org}::uuid) AS found`);
  if (!rows[0]?.deleted) {
    throw new AppError(422, 'confirmation_mismatch', 'Type the organization name exactly to confirm its deletion.', {
      details: { issues: [{ path: 'confirm', message: 'must equal the organization name' }] },
    });
  }
}
