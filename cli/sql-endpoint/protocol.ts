/**
 * The wire format of Neon's SQL-over-HTTP API, as `@neondatabase/serverless` speaks it:
 * one query `{query, params}` or a batch `{queries: [...]}` run in one transaction.
 */
import { z } from 'zod';

const param = z.union([z.string(), z.null()]);

export const queryRequest = z.object({
  query: z.string().min(1),
  params: z.array(param).default([]),
});

export const sqlRequest = z.union([z.object({ queries: z.array(queryRequest).min(1) }), queryRequest]);

export type QueryRequest = z.infer<typeof queryRequest>;
export type SqlRequest = z.infer<typeof sqlRequest>;

export const isolationLevels = {
  ReadUncommitted: 'READ UNCOMMITTED',
  ReadCommitted: 'READ COMMITTED',
  RepeatableRead: 'REPEATABLE READ',
  Serializable: 'SERIALIZABLE',
} as const;

export type IsolationLevel = keyof typeof isolationLevels;

export interface BatchOptions {
  isolationLevel?: IsolationLevel;
  readOnly: boolean;
  deferrable: boolean;
}

export interface Field {
  name: string;
  dataTypeID: number;
  tableID: number;
  columnID: number;
  dataTypeSize: number;
  dataTypeModifier: number;
  format: 'text';
}

/** One statement's result with every value as Postgres text (or null), the way Neon sends it. */
export interface QueryResult {
  command: string;
  rowCount: number | null;
  fields: Field[];
  rows: (string | null)[][];
}

export function toWire(result: QueryResult, arrayMode: boolean) {
  const rows = arrayMode
    ? result.rows
    : result.rows.map((row) => Object.fromEntries(result.fields.map((f, i) => [f.name, row[i]])));
  return { ...result, rows, rowAsArray: arrayMode };
}

/** The Postgres error fields the driver copies onto its NeonDbError. */
export const errorFields = [
  'severity',
  'code',
  'detail',
  'hint',
  'position',
  'internalPosition',
  'internalQuery',
  'where',
  'schema',
  'table',
  'column',
  'dataType',
  'constraint',
  'file',
  'line',
  'routine',
] as const;

/** A Postgres error as Neon returns it (HTTP 400), or undefined if `err` did not come from Postgres. */
export function postgresErrorBody(err: unknown): Record<string, string> | undefined {
  if (!(err instanceof Error)) return undefined;
  const fields = err as unknown as Record<string, unknown>;
  if (typeof fields.code !== 'string' || typeof fields.severity !== 'string') return undefined;
  const body: Record<string, string> = { message: err.message };
  for (const key of errorFields) {
    const value = fields[key];
    if (typeof value === 'string') body[key] = value;
  }
  return body;
}
