/** Operations: cron job runs and database backups (exported to R2, verified, resumable). */
import { bigint, bigserial, index, integer, jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/** One row per cron job run: what ran, how it ended, what it counted. */
export const jobRuns = pgTable(
  'job_runs',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    job: text('job').notNull(),
    status: text('status').notNull().default('running'),
    startedAt: timestamp('started_at', { withTimezone: true }).notNull().defaultNow(),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
    counts: jsonb('counts').notNull().default({}),
    error: text('error'),
  },
  (t) => [index('job_runs_job_idx').on(t.job, t.startedAt)],
);

/**
 * A backup: its objects are in R2 under `backups/<id>/`, and `manifest.json` is written last.
 * `cursor` says where an unfinished export resumes (table, last primary key, next object number).
 */
export const backups = pgTable(
  'backups',
  {
    id: text('id').primaryKey(),
    status: text('status').notNull().default('running'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    completedAt: timestamp('completed_at', { withTimezone: true }),
    schemaVersion: text('schema_version').notNull(),
    keyVersion: text('key_version').notNull(),
    cursor: jsonb('cursor').notNull().default({}),
    objects: jsonb('objects').notNull().default([]),
    totalRows: bigint('total_rows', { mode: 'number' }).notNull().default(0),
    totalBytes: bigint('total_bytes', { mode: 'number' }).notNull().default(0),
    verifiedAt: timestamp('verified_at', { withTimezone: true }),
    verification: text('verification'),
    verificationDetail: jsonb('verification_detail'),
    error: text('error'),
    slices: integer('slices').notNull().default(0),
  },
  (t) => [index('backups_created_idx').on(t.createdAt)],
);
