/**
 * Which tables a backup holds, in dependency order (a table after every table it references),
 * with their primary-key columns for keyset paging. Read from the catalog, so new tables are
 * backed up without a list to maintain.
 */
import { sql } from 'drizzle-orm';
import type { Database } from '../db/client';

export interface BackupTable {
  name: string;
  /** Primary-key columns and their types, in key order. */
  key: { column: string; type: string }[];
}

/** The backups table describes backups; it is not part of one. */
const EXCLUDED = new Set(['backups']);

export async function backupTables(db: Database): Promise<BackupTable[]> {
  const { rows: keys } = await db.execute<{ table_name: string; column_name: string; data_type: string }>(sql`
    SELECT c.relname AS table_name, a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS data_type
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
    WHERE i.indisprimary AND n.nspname = 'public'
    ORDER BY c.relname, k.ord`);
  const { rows: refs } = await db.execute<{ child: string; parent: string }>(sql`
    SELECT DISTINCT c.relname AS child, p.relname AS parent
    FROM pg_constraint f
    JOIN pg_class c ON c.oid = f.conrelid
    JOIN pg_class p ON p.oid = f.confrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE f.contype = 'f' AND n.nspname = 'public' AND c.relname <> p.relname`);
  const tables = new Map<string, BackupTable>();
  for (const k of keys) {
    if (EXCLUDED.has(k.table_name)) continue;
    const table = tables.get(k.table_name) ?? { name: k.table_name, key: [] };
    table.key.push({ column: k.column_name, type: k.data_type });
    tables.set(k.table_name, table);
  }
  // Depth-first: parents before children; names sorted so the order is stable.
  const ordered: BackupTable[] = [];
  const seen = new Set<string>();
  const visit = (name: string) => {
    if (seen.has(name)) return;
    seen.add(name);
    for (const r of refs.filter((x) => x.child === name).sort((a, b) => a.parent.localeCompare(b.parent)))
      visit(r.parent);
    const table = tables.get(name);
    if (table) ordered.push(table);
  };
  for (const name of [...tables.keys()].sort()) visit(name);
  return ordered;
}
