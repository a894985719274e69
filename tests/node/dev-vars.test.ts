/** `.dev.vars`: generated once with fresh secrets, never overwritten, parsed like wrangler reads it. */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDevVars, parseDevVars, readDevVars } from '../../cli/lib/dev-vars.ts';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mce-dev-vars-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ensureDevVars', () => {
  it('creates a private file with strong secrets and the endpoint port', () => {
    const path = join(dir, 'fresh.dev.vars');
    const { vars, added } = ensureDevVars(9123, path);

    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readDevVars(path)).toEqual(vars);
    expect(added.sort()).toEqual(Object.keys(vars).sort());
    expect(vars.LOCAL_AUTH_TOKEN?.length).toBeGreaterThanOrEqual(50);
    expect(Buffer.from(vars.ENCRYPTION_KEY ?? '', 'base64')).toHaveLength(32);
    expect(vars.DATABASE_HTTP_ENDPOINT).toBe('http://127.0.0.1:9123/sql');
    expect(vars.DATABASE_HTTP_TOKEN?.length).toBeGreaterThanOrEqual(32);
  });

  it('keeps every value on a second call and adds nothing', () => {
    const path = join(dir, 'again.dev.vars');
    const first = ensureDevVars(9123, path);
    const text = readFileSync(path, 'utf8');

    const second = ensureDevVars(9999, path);
    expect(second.added).toEqual([]);
    expect(second.vars).toEqual(first.vars);
    expect(readFileSync(path, 'utf8')).toBe(text);
  });

  it('keeps a value the user set and fills in only what is missing', () => {
    const path = join(dir, 'user.dev.vars');
    writeFileSync(path, '# mine\nLOCAL_AUTH_TOKEN=my-own-token\nEXTRA_SETTING="kept"\n');

    const { vars, added } = ensureDevVars(9123, path);
    expect(vars.LOCAL_AUTH_TOKEN).toBe('my-own-token');
    expect(vars.EXTRA_SETTING).toBe('kept');
    expect(added).not.toContain('LOCAL_AUTH_TOKEN');
    expect(added).toContain('ENCRYPTION_KEY');
    expect(readDevVars(path)).toMatchObject({ LOCAL_AUTH_TOKEN: 'my-own-token', EXTRA_SETTING: 'kept' });
    expect(Buffer.from(readDevVars(path).ENCRYPTION_KEY ?? '', 'base64')).toHaveLength(32);
  });
});

describe('parseDevVars', () => {
  it('ignores comments and blank lines and strips surrounding quotes', () => {
    const text = [
      '# a comment',
      '  # an indented comment = not a var',
      '',
      'PLAIN=value',
      'QUOTED="with spaces"',
      '  SPACED  =  padded  ',
      'EMPTY=',
      'HAS_EQUALS=a=b',
      'CRLF=windows\r',
    ].join('\n');
    expect(parseDevVars(text)).toEqual({
      PLAIN: 'value',
      QUOTED: 'with spaces',
      SPACED: 'padded',
      EMPTY: '',
      HAS_EQUALS: 'a=b',
      CRLF: 'windows',
    });
  });
});
