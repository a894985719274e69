import { beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../workers/app';
import { settingsSchema } from '../../workers/config';
import { openDatabase } from '../../workers/db/client';
import { sha256Hex } from '../../workers/lib/crypto';
import { isPublicRoute } from '../../workers/routes/registry';
import { FAKE_GATEWAY_TOKEN } from '../support/fake-gateway-shared';
import { api, json, operatorHeaders, testEnv } from './helpers';

const post = async (path: string, body: unknown) =>
  json(
    await api(path, {
      method: 'POST',
      headers: operatorHeaders({ 'Content-Type': 'application/json' }),
      body: JSON.stringify(body),
    }),
  );

interface Route {
  method: string;
  path: string;
}

const routes: Route[] = createApp()
  .routes.filter((r) => r.method !== 'ALL')
  .map((r) => ({ method: r.method, path: r.path }))
  .filter((r, i, all) => all.findIndex((o) => o.method === r.method && o.path === r.path) === i);
const isPublic = (r: Route) => isPublicRoute(r.method, r.path);

/** Ids of organization A's objects, by the path segment that names their collection. */
const fixtures: Record<string, string> = {};
let foreignKey = '';
let readOnlyKey = '';

beforeAll(async () => {
  // Organization A: the local operator's own, with one object of every kind.
  const board = await post('/api/v1/boards', { name: 'matrix board' });
  const agent = await post('/api/v1/agents', { board_id: board.id, name: 'matrix agent' });
  const key = await post('/api/v1/api-keys', { name: 'matrix key', scopes: ['read'] });
  readOnlyKey = key.secret;
  const db = await openDatabase(settingsSchema.parse(testEnv));
  const [user] = (
    await db.execute<{ id: string; org: string; member: string }>(
      `SELECT u.id, u.active_organization_id AS org, m.id AS member FROM users u
       JOIN organization_members m ON m.user_id = u.id AND m.organization_id = u.active_organization_id
       WHERE u.subject = 'local'`,
    )
  ).rows;
  if (!user) throw new Error('local operator not provisioned');
  const invite = await post('/api/v1/organizations/me/invites', { role: 'member' });
  const group = await post('/api/v1/board-groups', { name: 'matrix group' });
  const task = await post(`/api/v1/boards/${board.id}/tasks`, { title: 'matrix task' });
  const approval = await post(`/api/v1/boards/${board.id}/approvals`, {
    task_ids: [task.id],
    action_type: 'matrix',
    payload: { reason: 'matrix' },
    confidence: 50,
  });
  const webhook = await post(`/api/v1/boards/${board.id}/webhooks`, { description: 'matrix webhook' });
  const delivery = await json(await api(webhook.endpoint_path, { method: 'POST', body: '{"matrix":true}' }));
  const backup = await post('/api/v1/ops/backups', {});
  const gateway = await post('/api/v1/gateways', {
    name: 'matrix gateway',
    url: `${testEnv.TEST_FAKE_GATEWAY_URL}/ok/matrix`,
    token: FAKE_GATEWAY_TOKEN,
  });
  const field = await post('/api/v1/custom-fields', {
    key: `matrix_${Date.now()}`,
    label: 'Matrix',
    field_type: 'text',
  });
  Object.assign(fixtures, {
    boards: board.id,
    agents: agent.id,
    'api-keys': key.id,
    users: user.id,
    organizations: user.org,
    members: user.member,
    invites: invite.id,
    'board-groups': group.id,
    tasks: task.id,
    approvals: approval.id,
    'custom-fields': field.id,
    webhooks: webhook.id,
    payloads: delivery.payload_id,
    backups: backup.id,
    gateways: gateway.id,
    sessions: 'agent:dev:main',
    'exec-approvals': 'matrix-approval',
    objects: 'manifest.json',
  });
  for (const [name, id] of Object.entries(fixtures))
    if (typeof id !== 'string') throw new Error(`fixture ${name} failed`);

  // Organization B, with an admin API key: the credential that must not reach A's objects.
  const orgB = crypto.randomUUID();
  foreignKey = `mce_matrix${crypto.randomUUID().replaceAll('-', '')}`;
  await db.execute(`INSERT INTO organizations (id, name) VALUES ('${orgB}', 'matrix B')`);
  await db.execute(
    `INSERT INTO api_keys (organization_id, name, prefix, key_hash, scopes)
     VALUES ('${orgB}', 'matrix B admin', 'mce_matrix', '${await sha256Hex(foreignKey)}', array['admin'])`,
  );
});

/** Replaces each `{param}` with the fixture named by the segment before it. */
function concrete(path: string): string | undefined {
  const segments = path.split('/');
  let missing = false;
  const filled = segments.map((segment, i) => {
    if (!segment.startsWith(':') && !segment.startsWith('{')) return segment;
    const id = fixtures[segments[i - 1] ?? ''];
    if (!id) missing = true;
    return id ?? segment;
  });
  return missing ? undefined : filled.join('/');
}

/** Fits most request schemas (unknown fields are ignored); every id field is filled with A's board id. */
const universalBody = JSON.stringify({
  name: 'matrix',
  title: 'matrix',
  content: 'matrix',
  body: 'matrix',
  email: 'matrix@example.com',
  role: 'member',
  scopes: ['read'],
  board_id: '',
  organization_id: '',
  task_ids: [''],
  action_type: 'matrix',
  payload: { reason: 'matrix' },
  confidence: 50,
  key: 'matrix_field',
  label: 'Matrix',
  field_type: 'text',
  version: 1,
  token: 'mci_matrix',
  description: 'matrix',
  enabled: false,
  confirm: 'matrix',
  url: 'ws://127.0.0.1:9/matrix',
  method: 'health',
  decision: 'deny',
  message: 'matrix',
});

/** Writes a read-only key may make, each with the reason. */
const READ_SCOPE_WRITES = [
  // A WebSocket ticket only lets its holder read the live event stream.
  'POST /api/v1/events/ticket',
  // The relay checks each method's own permission: the matrix body calls `health`, a read.
  'POST /api/v1/gateways/:id/rpc',
];

describe('authorization matrix', () => {
  it('lists the public routes it exempts', () => {
    const exempt = routes.filter(isPublic).map((r) => `${r.method} ${r.path}`);
    console.log(`public routes (exempt):\n  ${exempt.join('\n  ')}`);
    expect(exempt).toContain('GET /healthz');
  });

  // Collections first: the by-id probes below leave the caller's own audit rows naming A's ids.
  it("never lists another organization's objects in a collection", async () => {
    const collections = routes.filter((r) => !isPublic(r) && r.method === 'GET' && !/[:{]/.test(r.path));
    expect(collections.length).toBeGreaterThan(3);
    const secretIds = Object.values(fixtures);
    for (const route of collections) {
      const res = await api(route.path, { headers: { Authorization: `Bearer ${foreignKey}` } });
      expect(res.status, `${route.method} ${route.path}`).toBeLessThan(500);
      const text = await res.text();
      for (const id of secretIds) expect(text, `${route.path} leaked ${id}`).not.toContain(id);
    }
  });
  it('refuses every route that addresses an object by id to another organization', async () => {
    const byId = routes.filter((r) => !isPublic(r) && /[:{]/.test(r.path));
    expect(byId.length).toBeGreaterThan(5);
    const body = universalBody.replaceAll('""', `"${fixtures.boards}"`);
    const outcomes: string[] = [];
    for (const route of byId) {
      const path = concrete(route.path.replace(/\{(\w+)\}/g, ':$1'));
      expect(path, `no fixture for ${route.method} ${route.path}`).toBeDefined();
      const res = await api(path ?? '', {
        method: route.method,
        headers: { Authorization: `Bearer ${foreignKey}`, 'Content-Type': 'application/json' },
        body: route.method === 'GET' || route.method === 'HEAD' ? undefined : body,
      });
      outcomes.push(`${res.status} ${route.method} ${route.path}`);
      expect([401, 403, 404], `${route.method} ${route.path} answered ${res.status}`).toContain(res.status);
    }
    console.log(`by-id routes with another organization's credential:\n  ${outcomes.join('\n  ')}`);
  });

  it('gives an API key with only the read scope 403 on every write route of its own organization', async () => {
    const writes = routes.filter(
      (r) =>
        !isPublic(r) &&
        ['POST', 'PUT', 'PATCH', 'DELETE'].includes(r.method) &&
        !READ_SCOPE_WRITES.includes(`${r.method} ${r.path}`),
    );
    expect(writes.length).toBeGreaterThan(5);
    const body = universalBody.replaceAll('""', `"${fixtures.boards}"`);
    const outcomes: string[] = [];
    for (const route of writes) {
      const path = concrete(route.path.replace(/\{(\w+)\}/g, ':$1'));
      expect(path, `no fixture for ${route.method} ${route.path}`).toBeDefined();
      const res = await api(path ?? '', {
        method: route.method,
        headers: { Authorization: `Bearer ${readOnlyKey}`, 'Content-Type': 'application/json' },
        body,
      });
      outcomes.push(`${res.status} ${route.method} ${route.path}`);
      // Agent routes refuse every API key at authentication (401); all others must say 403.
      const expected = route.path.startsWith('/api/v1/agent/') ? 401 : 403;
      expect(res.status, `${route.method} ${route.path}`).toBe(expected);
    }
    console.log(`write routes with a read-only API key:\n  ${outcomes.join('\n  ')}`);
  });
});
