/** Offset pagination with its total, in one round trip. */
import { count, type SQL } from 'drizzle-orm';
import type { PgColumn, PgTable } from 'drizzle-orm/pg-core';
import type { Database } from './client';

export interface Page {
  limit: number;
  offset: number;
}

/** One page of `table`'s rows matching `where`, in `order` (end with a unique column), and how many match. */
export async function pageOf<T extends PgTable>(
  db: Database,
  table: T,
  where: SQL | undefined,
  order: (SQL | PgColumn)[],
  page: Page,
): Promise<{ items: T['$inferSelect'][]; total: number }> {
  const source = table as PgTable;
  const [items, [total]] = await db.batch([
    db
      .select()
      .from(source)
      .where(where)
      .orderBy(...order)
      .limit(page.limit)
      .offset(page.offset),
    db.select({ value: count() }).from(source).where(where),
  ]);
  return { items: items as T['$inferSelect'][], total: total?.value ?? 0 };
}
