/** Organization offboarding: the owner's streamed export (credentials left out) and confirmed deletion. */
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { settingsSchema } from '../../workers/config';
import { openDatabase } from '../../workers/db/client';
import { jwtOperators, send, testEnv } from './helpers';

const { clerk, newOperator } = jwtOperators('offboarding');
const db = await openDatabase(settingsSchema.parse(testEnv));
const as = (headers: Record<string, string>) => (method: string, path: string, body?: unknown) =>
  send(method, path, body, headers, clerk);

describe('organization offboarding', () => {
  it('exports everything of the organization as NDJSON without credentials, and nothing of others', async () => {
    const owner = await newOperator();
    const other = await newOperator();
    const call = as(owner.headers);
    const board = (await call('POST', '/api/v1/boards', { name: 'export board' })).body;
    const task = (await call('POST', `/api/v1/boards/${board.id}/tasks`, { title: 'export task', tags: ['a'] })).body;
    await call('POST', `/api/v1/boards/${board.id}/webhooks`, { description: 'hook', secret: 'export-secret-123456' });
    const key = (await call('POST', '/api/v1/api-keys', { name: 'export key', scopes: ['read'] })).body;
    const foreign = (await as(other.headers)('POST', '/api/v1/boards', { name: 'not theirs' })).body;

    const res = await clerk('/api/v1/organizations/me/export', { headers: owner.headers });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('application/x-ndjson');
    const text = await res.text();
    const [head, ...lines] = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(head).toMatchObject({ format: 'mce-org-export/1', organization_id: owner.organizationId });
    const byTable = (name: string) => lines.filter((l) => l.table === name).map((l) => l.row);
    expect(byTable('organizations').map((r) => r.id)).toEqual([owner.organizationId]);
    expect(byTable('boards').map((r) => r.id)).toEqual([board.id]);
    expect(byTable('tasks').map((r) => r.id)).toEqual([task.id]);
    expect(byTable('users').map((r) => r.id)).toEqual([owner.userId]);
    expect(byTable('api_keys').map((r) => r.id)).toEqual([key.id]);
    expect(text).not.toContain(foreign.id);
    expect(text).not.toContain(key.secret);
    for (const column of ['key_hash', 'token_hash', 'secret_ciphertext']) expect(text).not.toContain(`"${column}"`);
    expect(text).not.toContain('export-secret-123456');

    // Only the owner: an admin API key of the organization is refused.
    const refused = await clerk('/api/v1/organizations/me/export', {
      headers: { Authorization: `Bearer ${key.secret}` },
    });
    expect(refused.status).toBe(403);
  });

  it('deletes the organization and everything under it only with its exact name, keeping a platform audit row', async () => {
    const owner = await newOperator();
    const call = as(owner.headers);
    const board = (await call('POST', '/api/v1/boards', { name: 'doomed board' })).body;
    await call('POST', `/api/v1/boards/${board.id}/tasks`, { title: 'doomed task' });
    const name = (await call('GET', '/api/v1/organizations/me')).body.name;

    const wrong = await call('DELETE', '/api/v1/organizations/me', { confirm: `${name} ` });
    expect(wrong.status).toBe(422);
    expect(wrong.body.error.code).toBe('confirmation_mismatch');
    expect((await call('GET', `/api/v1/boards/${board.id}`)).status).toBe(200);

    expect((await call('DELETE', '/api/v1/organizations/me', { confirm: name })).status).toBe(204);
    const left = await db.execute(
      sql`SELECT (SELECT count(*)::int FROM organizations WHERE id = ${owner.organizationId}) AS orgs,
        (SELECT count(*)::int FROM boards WHERE organization_id = ${owner.organizationId}) AS boards,
        (SELECT count(*)::int FROM tasks WHERE organization_id = ${owner.organizationId}) AS tasks`,
    );
    expect(left.rows[0]).toEqual({ orgs: 0, boards: 0, tasks: 0 });
    const audit = await db.execute<{ organization_id: string | null }>(
      sql`SELECT organization_id FROM audit_logs WHERE action = 'organization.delete' AND target_id = ${owner.organizationId}`,
    );
    expect(audit.rows).toEqual([{ organization_id: null }]);
  });
});
