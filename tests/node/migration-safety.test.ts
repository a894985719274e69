/**
 * Rollback safety: a release's migrations must stay readable by the previous release, so a
 * `wrangler rollback` never needs a restore. A migration may add tables, columns and indexes;
 * it may not drop or rename a column or table, or change a column's type. Removing something takes
 * two releases: stop reading it, then drop it in a later migration listed in ALLOWED with the reason.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const MIGRATIONS = join(import.meta.dirname, '..', '..', 'migrations');

/** `<file>: <statement start>` → why it is safe (the previous release no longer reads it). */
const ALLOWED: Record<string, string> = {};

const BREAKING = [
  /\bDROP\s+COLUMN\b/i,
  /\bRENAME\s+COLUMN\b/i,
  /\bRENAME\s+TO\b/i,
  /\bDROP\s+TABLE\b/i,
  /\bALTER\s+COLUMN\s+\S+\s+(SET\s+DATA\s+)?TYPE\b/i,
];

function breakingStatements(file: string, text: string): string[] {
  return text
    .split('--> statement-breakpoint')
    .map((s) => s.trim())
    .filter((s) => BREAKING.some((re) => re.test(s)))
    .map((s) => `${file}: ${s.slice(0, 120)}`)
    .filter((key) => !Object.keys(ALLOWED).some((allowed) => key.startsWith(allowed)));
}

describe('migrations', () => {
  it('never drop, rename or retype what the previous release reads', () => {
    const files = readdirSync(MIGRATIONS).filter((f) => f.endsWith('.sql'));
    expect(files.length).toBeGreaterThan(3);
    const found = files.flatMap((f) => breakingStatements(f, readFileSync(join(MIGRATIONS, f), 'utf8')));
    expect(found).toEqual([]);
  });

  it('recognise the breaking statements', () => {
    const sample = [
      'ALTER TABLE "tasks" DROP COLUMN "title";',
      'ALTER TABLE "tasks" RENAME COLUMN "title" TO "name";',
      'ALTER TABLE "tasks" RENAME TO "jobs";',
      'DROP TABLE "tasks" CASCADE;',
      'ALTER TABLE "tasks" ALTER COLUMN "priority" SET DATA TYPE text;',
      'ALTER TABLE "tasks" ADD COLUMN "extra" text;',
    ].join('\n--> statement-breakpoint\n');
    expect(breakingStatements('x.sql', sample)).toHaveLength(5);
  });
});
