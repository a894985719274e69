/** Where the local SQL endpoint runs queries: embedded PGlite or a real PostgreSQL through `pg`. */
import { mkdirSync } from 'node:fs';
import { PGlite, types as pgliteTypes } from '@electric-sql/pglite';
import pg from 'pg';
import { type BatchOptions, type Field, isolationLevels, type QueryRequest, type QueryResult } from './protocol.ts';

export interface SqlBackend {
  readonly kind: 'pglite' | 'postgres';
  query(q: QueryRequest): Promise<QueryResult>;
  /** Runs every query in one transaction; rolls back and rethrows on the first error. */
  batch(queries: QueryRequest[], options: BatchOptions): Promise<QueryResult[]>;
  close(): Promise<void>;
}

function transactionModes(options: BatchOptions): string {
  const modes: string[] = [];
  if (options.isolationLevel) modes.push(`ISOLATION LEVEL ${isolationLevels[options.isolationLevel]}`);
  if (options.readOnly) modes.push('READ ONLY');
  if (options.deferrable) modes.push('DEFERRABLE');
  return modes.join(' ');
}

const identity = (value: string) => value;

/** Embedded Postgres (WASM). `dataDir` undefined keeps everything in memory. */
export async function pgliteBackend(dataDir?: string): Promise<SqlBackend> {
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  const db = await PGlite.create(dataDir);
  // Neon answers with Postgres text for every type; PGlite parses the types it knows (built-ins
  // and the array types it found at start), so map those to the identity. Others stay text.
  const parsers = Object.fromEntries(
    [...Object.keys(pgliteTypes.parsers), ...Object.keys(db.parsers)].map((oid) => [oid, identity]),
  );
  // Parameters arrive as Postgres text too; PGlite's own serializers expect JS values (bytea's
  // throws on anything but a Uint8Array), so pass the text through unchanged.
  const serializers = Object.fromEntries(
    [...Object.keys(pgliteTypes.serializers), ...Object.keys(db.serializers)].map((oid) => [oid, identity]),
  );

  type Queryable = Pick<PGlite, 'query'>;
  const run = async (target: Queryable, q: QueryRequest): Promise<QueryResult> => {
    const r = await target.query<unknown[]>(q.query, q.params, { rowMode: 'array', parsers, serializers });
    const fields: Field[] = r.fields.map((f) => ({
      name: f.name,
      dataTypeID: f.dataTypeID,
      tableID: 0,
      columnID: 0,
      dataTypeSize: -1,
      dataTypeModifier: -1,
      format: 'text',
    }));
    const command = (r as { command?: string }).command ?? '';
    const rowCount = (r as { rowCount?: number }).rowCount ?? r.affectedRows ?? r.rows.length;
    return { command, rowCount, fields, rows: r.rows as (string | null)[][] };
  };

  return {
    kind: 'pglite',
    query: (q) => run(db, q),
    batch: (queries, options) =>
      db.transaction(async (tx) => {
        const modes = transactionModes(options);
        if (modes) await tx.exec(`SET TRANSACTION ${modes}`);
        const results: QueryResult[] = [];
        for (const q of queries) results.push(await run(tx, q));
        return results;
      }),
    close: () => db.close(),
  };
}

const rawTypes = { getTypeParser: () => identity };

/** A real PostgreSQL. Connections that die (server restart) are replaced on the next query. */
export function postgresBackend(connectionString: string): SqlBackend {
  const pool = new pg.Pool({
    connectionString,
    max: 10,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
  });
  // An idle connection the server dropped emits 'error'; without a listener that would crash
  // the endpoint. The pool discards the client and the next query opens a fresh one.
  pool.on('error', () => {});

  type Client = Pick<pg.PoolClient, 'query'>;
  const run = async (client: Client, q: QueryRequest): Promise<QueryResult> => {
    // Extended protocol always, as Neon does: one statement per query, even without params.
    const r = await client.query({
      text: q.query,
      values: q.params,
      rowMode: 'array',
      types: rawTypes,
      queryMode: 'extended',
    } as pg.QueryArrayConfig);
    const fields: Field[] = r.fields.map((f) => ({
      name: f.name,
      dataTypeID: f.dataTypeID,
      tableID: f.tableID,
      columnID: f.columnID,
      dataTypeSize: f.dataTypeSize,
      dataTypeModifier: f.dataTypeModifier,
      format: 'text',
    }));
    return { command: r.command, rowCount: r.rowCount, fields, rows: r.rows as (string | null)[][] };
  };

  return {
    kind: 'postgres',
    query: (q) => run(pool, q),
    async batch(queries, options) {
      const client = await pool.connect();
      let broken: Error | undefined;
      try {
        await client.query(`BEGIN ${transactionModes(options)}`);
        const results: QueryResult[] = [];
        for (const q of queries) results.push(await run(client, q));
        await client.query('COMMIT');
        return results;
      } catch (err) {
        try {
          await client.query('ROLLBACK');
        } catch (rollbackError) {
          broken = rollbackError as Error;
        }
        throw err;
      } finally {
        // A connection that could not roll back is unusable: destroy it instead of pooling it.
        client.release(broken);
      }
    },
    close: () => pool.end(),
  };
}
