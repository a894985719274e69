import { SELF } from 'cloudflare:test';
import { sql } from 'drizzle-orm';
import { beforeAll, describe, expect, it } from 'vitest';
import { settingsSchema } from '../../workers/config';
import { type Database, openDatabase } from '../../workers/db/client';
import { apiKeys, auditLogs, organizations } from '../../workers/db/schema';
import { randomSecret, sha256Hex } from '../../workers/lib/crypto';
import { CSV_COLUMNS, exportAuditLogsCsv } from '../../workers/services/audit-logs';
import { json, operatorHeaders, testEnv } from './helpers';

// biome-ignore lint/suspicious/noExplicitAny: rows are JSON read back from the API.
type Item = Record<string, any>;

interface Seed {
  id: string;
  at: string;
  action: string;
  actorType?: string;
  actorId?: string | null;
  targetType?: string | null;
  targetId?: string | null;
  success?: boolean;
  ip?: string | null;
  userAgent?: string | null;
  requestId?: string | null;
  details?: Record<string, unknown>;
}

let db: Database;
let orgA: string;
let orgB: string;
let adminKey: { id: string; secret: string };
let readKey: { id: string; secret: string };
let adminKeyB: { id: string; secret: string };
const seededA: Seed[] = [];
const seededB: Seed[] = [];

/** Timestamps with microseconds, several sharing one millisecond, so the cursor must be exact. */
const at = (second: number, micros = 0) =>
  `2024-03-01T00:${String(Math.floor(second / 60)).padStart(2, '0')}:${String(second % 60).padStart(2, '0')}.${String(micros).padStart(6, '0')}Z`;

async function createOrg(name: string): Promise<string> {
  const [org] = await db.insert(organizations).values({ name }).returning({ id: organizations.id });
  if (!org) throw new Error('no organization');
  return org.id;
}

async function createKey(organizationId: string, scopes: string[]) {
  const secret = randomSecret('mce_');
  const [key] = await db
    .insert(apiKeys)
    .values({
      organizationId,
      name: `audit test ${scopes.join('+')}`,
      prefix: secret.slice(0, 10),
      keyHash: await sha256Hex(secret),
      scopes,
    })
    .returning({ id: apiKeys.id });
  if (!key) throw new Error('no key');
  return { id: key.id, secret };
}

async function seed(organizationId: string, rows: Seed[]) {
  await db.insert(auditLogs).values(
    rows.map((r) => ({
      id: r.id,
      createdAt: sql`${r.at}::timestamptz`,
      organizationId,
      actorType: r.actorType ?? 'system',
      actorId: r.actorId ?? null,
      action: r.action,
      success: r.success ?? true,
      targetType: r.targetType ?? null,
      targetId: r.targetId ?? null,
      ip: r.ip ?? null,
      userAgent: r.userAgent ?? null,
      requestId: r.requestId ?? null,
      details: r.details ?? {},
    })),
  );
}

const row = (action: string, second: number, extra: Partial<Seed> = {}): Seed => ({
  id: crypto.randomUUID(),
  at: at(second),
  action,
  ...extra,
});

/** Newest first, ties broken by id descending: the API's order. */
const newestFirst = (rows: Seed[]) =>
  [...rows].sort((a, b) => (a.at === b.at ? (a.id < b.id ? 1 : -1) : a.at < b.at ? 1 : -1));

function get(path: string, secret = adminKey.secret) {
  return SELF.fetch(`https://mce.test${path}`, { headers: { Authorization: `Bearer ${secret}` } });
}

async function list(query: string, secret = adminKey.secret): Promise<{ items: Item[]; next_cursor: string | null }> {
  const res = await get(`/api/v1/audit-logs?${query}`, secret);
  expect(res.status).toBe(200);
  return json(res);
}

/** Every page of a filtered listing, following next_cursor. */
async function walk(query: string, limit: number): Promise<{ items: Item[]; pages: number }> {
  const items: Item[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const suffix: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
    const page = await list(`${query}&limit=${limit}${suffix}`);
    pages += 1;
    expect(page.items.length).toBeLessThanOrEqual(limit);
    items.push(...page.items);
    cursor = page.next_cursor;
    if (pages > 100) throw new Error('pagination does not end');
  } while (cursor);
  return { items, pages };
}

/** RFC 4180 parser: quoted cells may hold commas, doubled quotes and line breaks. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let rowCells: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      rowCells.push(cell);
      cell = '';
    } else if (ch === '\r' && text[i + 1] === '\n') {
      rowCells.push(cell);
      rows.push(rowCells);
      rowCells = [];
      cell = '';
      i++;
    } else cell += ch;
  }
  if (cell !== '' || rowCells.length > 0) {
    rowCells.push(cell);
    rows.push(rowCells);
  }
  return rows;
}

/** What one API item looks like as a CSV row. */
const asCsvCells = (item: Item) =>
  CSV_COLUMNS.map((column) => {
    const value = item[column];
    if (value === null) return '';
    if (column === 'details') return JSON.stringify(value);
    return String(value);
  });

const b64url = (text: string) => btoa(text).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');

const seedIds = (items: Item[]) => items.filter((i) => i.action !== 'audit_log.export').map((i) => i.id);

beforeAll(async () => {
  db = await openDatabase(settingsSchema.parse(testEnv));
  orgA = await createOrg('Audit log A');
  orgB = await createOrg('Audit log B');
  adminKey = await createKey(orgA, ['admin']);
  readKey = await createKey(orgA, ['read', 'write']);
  adminKeyB = await createKey(orgB, ['admin']);

  // 60 rows for pagination: three per second, two of each three within one millisecond.
  for (let i = 0; i < 60; i++) {
    const second = Math.floor(i / 3);
    seededA.push({ id: crypto.randomUUID(), at: at(second, [100, 101, 500_000][i % 3]), action: 'seed.event' });
  }
  // Two rows at exactly the same instant: only the id orders them.
  seededA.push(row('seed.tie', 100), row('seed.tie', 100));
  seededA.push(
    row('api_key.create', 200, { actorType: 'user', actorId: 'u-1', targetType: 'api_key', targetId: 'k-1' }),
    row('api_key.revoke', 201, { actorType: 'api_key', actorId: 'k-9', targetType: 'api_key', targetId: 'k-1' }),
    row('apiXkey.create', 202, { actorType: 'user', actorId: 'u-2' }),
    row('auth.failed', 203, { actorType: 'anonymous', success: false, details: { reason: 'token_expired' } }),
    row('board.update', 204, { actorType: 'user', actorId: 'u-1', targetType: 'board', targetId: 'b-1' }),
    row('100%.sure', 205),
    row('100x.sure', 206),
    row('csv.tricky', 300, {
      actorType: 'user',
      actorId: '+1 caller',
      targetType: 'cell',
      targetId: '=HYPERLINK("http://evil.test","click")',
      ip: '-2',
      userAgent: 'Mozilla/5.0, "quoted"\nsecond line',
      requestId: '@req',
      details: { note: '=1+1', comma: 'a,b', quote: 'say "hi"', line: 'x\r\ny' },
    }),
  );
  await seed(orgA, seededA);

  // Another organization's rows that match every filter used below.
  seededB.push(
    row('api_key.create', 200, { actorType: 'user', actorId: 'u-1', targetType: 'api_key', targetId: 'k-1' }),
    row('api_key.revoke', 201, { actorType: 'api_key', actorId: 'k-9', targetType: 'api_key', targetId: 'k-1' }),
    row('auth.failed', 203, { actorType: 'anonymous', success: false }),
    row('board.update', 204, { actorType: 'user', actorId: 'u-1', targetType: 'board', targetId: 'b-1' }),
    row('seed.event', 10),
    row('csv.tricky', 300),
  );
  await seed(orgB, seededB);
});

describe('GET /api/v1/audit-logs', () => {
  it("lists the caller organization's rows only, newest first, with every field", async () => {
    const { items } = await walk('', 200);
    expect(seedIds(items)).toEqual(newestFirst(seededA).map((r) => r.id));
    expect(items.every((i) => i.organization_id === orgA)).toBe(true);

    const tricky = items.find((i) => i.action === 'csv.tricky');
    expect(tricky).toEqual({
      id: seededA.at(-1)?.id,
      created_at: '2024-03-01T00:05:00.000Z',
      organization_id: orgA,
      actor_type: 'user',
      actor_id: '+1 caller',
      action: 'csv.tricky',
      success: true,
      target_type: 'cell',
      target_id: '=HYPERLINK("http://evil.test","click")',
      ip: '-2',
      user_agent: 'Mozilla/5.0, "quoted"\nsecond line',
      request_id: '@req',
      details: { note: '=1+1', comma: 'a,b', quote: 'say "hi"', line: 'x\r\ny' },
    });
  });

  it('never shows another organization its rows, whatever the filter', async () => {
    const idsB = new Set(seededB.map((r) => r.id));
    for (const query of ['', 'action=api_key.', 'target_id=k-1', 'success=false', 'actor_id=u-1', 'limit=200']) {
      const { items } = await list(query);
      expect(items.some((i) => idsB.has(i.id))).toBe(false);
    }
    // And B's admin sees B's rows, none of A's.
    const { items } = await list('limit=200', adminKeyB.secret);
    const idsA = new Set(seededA.map((r) => r.id));
    expect(items.some((i) => idsA.has(i.id))).toBe(false);
    expect(seedIds(items).sort()).toEqual([...idsB].sort());
  });

  it.each([
    ['actor_type=api_key', ['api_key.revoke']],
    ['actor_type=anonymous', ['auth.failed']],
    ['actor_id=u-1', ['board.update', 'api_key.create']],
    ['target_type=board', ['board.update']],
    ['target_id=k-1', ['api_key.revoke', 'api_key.create']],
    ['success=false', ['auth.failed']],
    // A prefix: `_` in `api_key.` is a literal underscore, not LIKE's any-character.
    ['action=api_key.', ['api_key.revoke', 'api_key.create']],
    ['action=api_key.rev', ['api_key.revoke']],
    // `%` is literal too.
    ['action=100%25', ['100%.sure']],
    ['action=board.update', ['board.update']],
    ['actor_id=u-1&target_type=api_key', ['api_key.create']],
  ])('filters by %s', async (query, actions) => {
    const { items } = await list(`${query}&limit=200`);
    expect(items.map((i) => i.action)).toEqual(actions);
  });

  it('filters by success=true', async () => {
    const { items } = await list('action=auth.&success=true');
    expect(items).toEqual([]);
    const ok = await list('action=api_key.&success=true');
    expect(ok.items).toHaveLength(2);
  });

  it('filters by a time window: since inclusive, until exclusive', async () => {
    const { items } = await list(`since=${at(201)}&until=${at(205)}&limit=200`);
    expect(items.map((i) => i.action)).toEqual(['board.update', 'auth.failed', 'apiXkey.create', 'api_key.revoke']);
    const offset = await list('since=2024-03-01T02:03:21%2B02:00&until=2024-03-01T00:03:23Z');
    expect(offset.items.map((i) => i.action)).toEqual(['apiXkey.create', 'api_key.revoke']);
  });

  it('walks every row exactly once across pages, even rows within one millisecond', async () => {
    const expected = newestFirst(seededA.filter((r) => r.action.startsWith('seed.'))).map((r) => r.id);
    for (const limit of [1, 7, 31, 62, 200]) {
      const { items, pages } = await walk('action=seed.', limit);
      expect(items.map((i) => i.id)).toEqual(expected);
      expect(pages).toBe(Math.max(1, Math.ceil(expected.length / limit)));
    }
  });

  it('pages 50 rows by default and ends with next_cursor null', async () => {
    const first = await list('action=seed.');
    expect(first.items).toHaveLength(50);
    expect(first.next_cursor).toEqual(expect.any(String));
    const second = await list(`action=seed.&cursor=${first.next_cursor}`);
    expect(second.items).toHaveLength(12);
    expect(second.next_cursor).toBeNull();
  });

  it.each([
    'limit=0',
    'limit=201',
    'limit=ten',
    'actor_type=robot',
    'success=maybe',
    'since=yesterday',
    'until=2024-13-01T00:00:00Z',
    `since=${at(10)}&until=${at(5)}`,
    'cursor=not*a*cursor',
    'cursor=Z2FyYmFnZQ',
    `cursor=${b64url('2024-03-01T00:00:00.000000Z|not-a-uuid')}`,
    `cursor=${b64url(`2024-02-30T99:00:00.000000Z|${crypto.randomUUID()}`)}`,
    `cursor=${b64url(`2024-02-30T10:00:00.000000Z|${crypto.randomUUID()}`)}`,
    `cursor=${b64url(`2024-03-01T00:00:00.000000Z|${crypto.randomUUID()}|extra`)}`,
    `cursor=${'A'.repeat(300)}`,
  ])('answers 422, not 500, for %s', async (query) => {
    const res = await get(`/api/v1/audit-logs?${query}`);
    expect(res.status).toBe(422);
    expect((await json(res)).error.code).toBe('validation_failed');
  });

  it('refuses an API key without the admin scope with 403, and no credential with 401', async () => {
    for (const path of ['/api/v1/audit-logs', '/api/v1/audit-logs/export.csv']) {
      const res = await get(path, readKey.secret);
      expect(res.status).toBe(403);
      expect((await json(res)).error.code).toBe('forbidden');
      expect((await SELF.fetch(`https://mce.test${path}`)).status).toBe(401);
    }
  });

  it('lets an operator admin read their active organization', async () => {
    // The first request provisions the local operator (owner of a Personal organization).
    const res = await SELF.fetch('https://mce.test/api/v1/audit-logs?limit=200', { headers: operatorHeaders() });
    expect(res.status).toBe(200);
    const { items } = await json(res);
    const idsA = new Set([...seededA, ...seededB].map((r) => r.id));
    expect(items.some((i: Item) => idsA.has(i.id))).toBe(false);
    expect(new Set(items.map((i: Item) => i.organization_id)).size).toBeLessThanOrEqual(1);
  });
});

describe('GET /api/v1/audit-logs/export.csv', () => {
  it('streams the filtered rows as CSV that parses back to the same rows', async () => {
    const res = await get('/api/v1/audit-logs/export.csv?action=seed.');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    expect(res.headers.get('content-disposition')).toBe('attachment; filename="audit-logs.csv"');
    const [header, ...rows] = parseCsv(await res.text());
    expect(header).toEqual([...CSV_COLUMNS]);

    const { items } = await walk('action=seed.', 200);
    expect(rows).toEqual(items.map(asCsvCells));
    expect(rows).toHaveLength(62);
  });

  it('exports the whole filtered log, every column, with no filter', async () => {
    const res = await get('/api/v1/audit-logs/export.csv');
    const [, ...rows] = parseCsv(await res.text());
    const { items } = await walk('', 200);
    // The export writes its own row first, so the export holds one more row than the listing before it.
    const exported = rows.filter((r) => r[5] !== 'audit_log.export');
    expect(exported.map((r) => r[0])).toEqual(seedIds(items));
    expect(rows.some((r) => r[2] !== orgA)).toBe(false);
  });

  it('quotes commas, quotes and line breaks, and defuses formulas', async () => {
    const res = await get('/api/v1/audit-logs/export.csv?action=csv.');
    const text = await res.text();
    const [header, cells, ...rest] = parseCsv(text);
    expect(rest).toEqual([]);
    const field = (name: (typeof CSV_COLUMNS)[number]) => cells?.[CSV_COLUMNS.indexOf(name)];
    expect(header).toHaveLength(CSV_COLUMNS.length);
    expect(cells).toHaveLength(CSV_COLUMNS.length);
    expect(field('user_agent')).toBe('Mozilla/5.0, "quoted"\nsecond line');
    expect(field('target_id')).toBe(`'=HYPERLINK("http://evil.test","click")`);
    expect(field('actor_id')).toBe("'+1 caller");
    expect(field('ip')).toBe("'-2");
    expect(field('request_id')).toBe("'@req");
    expect(JSON.parse(field('details') ?? '')).toEqual({
      note: '=1+1',
      comma: 'a,b',
      quote: 'say "hi"',
      line: 'x\r\ny',
    });
    // The raw text: the dangerous cell is quoted (it holds quotes), and starts with the guard.
    expect(text).toContain(`"'=HYPERLINK(""http://evil.test"",""click"")"`);
  });

  it('writes one audit_log.export row naming the caller and the filters', async () => {
    const requestId = `export-${crypto.randomUUID()}`;
    const res = await SELF.fetch(
      'https://mce.test/api/v1/audit-logs/export.csv?action=board.&success=true&actor_type=user',
      {
        headers: { Authorization: `Bearer ${adminKey.secret}`, 'X-Request-Id': requestId },
      },
    );
    expect(res.status).toBe(200);
    await res.text();
    const { items } = await list('action=audit_log.export&limit=200');
    const mine = items.filter((i) => i.request_id === requestId);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({
      organization_id: orgA,
      actor_type: 'api_key',
      actor_id: adminKey.id,
      success: true,
      target_type: 'audit_log',
      details: { format: 'csv', filters: { action: 'board.', success: true, actor_type: 'user' } },
    });
  });

  it('validates its filters like the listing', async () => {
    const res = await get('/api/v1/audit-logs/export.csv?since=soon');
    expect(res.status).toBe(422);
  });

  it('fetches page after page inside the stream', async () => {
    const stream = exportAuditLogsCsv(db, orgA, { action: 'seed.' }, 7);
    const [, ...rows] = parseCsv(await new Response(stream).text());
    expect(rows.map((r) => r[0])).toEqual(
      newestFirst(seededA.filter((r) => r.action.startsWith('seed.'))).map((r) => r.id),
    );
  });
});
