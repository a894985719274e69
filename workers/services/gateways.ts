/**
 * OpenClaw gateways: their configuration (the token sealed, never returned), the URL rules, the
 * connectivity check, and what a gateway session needs to connect.
 */
import { type SQL, sql } from 'drizzle-orm';
import { encryptionKeys, type Settings } from '../config';
import type { Database } from '../db/client';
import { pgErrorCode, UNIQUE_VIOLATION } from '../db/errors';
import { fromRow } from '../db/rows';
import { gateways } from '../db/schema-gateways';
import { AppError } from '../lib/errors';
import {
  GatewayConnection,
  GatewayError,
  type GatewayHello,
  OPERATOR_SCOPES,
  versionAtLeast,
} from '../lib/gateway-client';
import { decryptSecret, type EncryptionKeys, encryptSecret } from '../lib/secret-box';
import { type AuditContext, mutateWithAudit } from './audit';
import { deviceIdentity, signedDevice } from './device-identity';
import { readShutdown } from './emergency-shutdown';

export type Gateway = typeof gateways.$inferSelect;

export interface GatewayFields {
  name?: string;
  url?: string;
  /** A new token; null removes it. */
  token?: string | null;
  /** Null: the gateway's default workspace location. */
  workspace_root?: string | null;
  allow_insecure_tls?: boolean;
}

export const gatewayTokenContext = (id: string) => `gateways.token:${id}`;
export const deviceTokenContext = (id: string) => `gateways.device_token:${id}`;
export const gatewayNotFound = () => new AppError(404, 'not_found', 'No such gateway.');

const invalid = (path: string, message: string) =>
  new AppError(422, 'validation_failed', `${path}: ${message}`, { details: { issues: [{ path, message }] } });

/** Loopback and private (RFC 1918, unique-local IPv6) hosts: a clear-text `ws://` never leaves the network. */
export function isPrivateHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost') || host === '::1') return true;
  if (/^(fc|fd)[0-9a-f]{2}:/.test(host) || host.startsWith('fe80:')) return true;
  const octets = host.split('.').map(Number);
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) return false;
  const [a = 0, b = 0] = octets;
  return a === 127 || a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168);
}

/**
 * The URL rules, with the reason for each: the token travels in the connect frame, so clear text
 * only on a private network; published Workers send `wss://` with a custom port to 443; Workers
 * cannot skip certificate checks.
 */
export function checkGatewayUrl(settings: Settings, url: string, allowInsecureTls: boolean): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalid('url', 'must be a ws:// or wss:// URL');
  }
  if (parsed.protocol !== 'wss:' && parsed.protocol !== 'ws:') throw invalid('url', 'must be a ws:// or wss:// URL');
  if (parsed.username || parsed.password) {
    throw invalid('url', 'must not carry credentials: put the gateway token in `token`');
  }
  if (parsed.hash || url.includes('#')) throw invalid('url', 'must not have a fragment');
  if (parsed.protocol === 'ws:' && !settings.ALLOW_INSECURE_GATEWAY_URLS && !isPrivateHost(parsed.hostname)) {
    throw invalid(
      'url',
      'ws:// would send the gateway token in clear text over the internet: use wss://, or a loopback/private address (ALLOW_INSECURE_GATEWAY_URLS overrides this)',
    );
  }
  if (parsed.protocol === 'wss:' && parsed.port !== '' && settings.ENVIRONMENT === 'production') {
    throw invalid(
      'url',
      `deployed Workers connect wss:// URLs on port 443 only (a custom port such as ${parsed.port} is silently replaced): serve the gateway on 443, e.g. behind Cloudflare or a Cloudflare Tunnel`,
    );
  }
  if (allowInsecureTls && parsed.protocol === 'wss:') {
    throw invalid(
      'allow_insecure_tls',
      'Cloudflare Workers cannot skip TLS certificate verification: give the gateway a publicly trusted certificate, proxy it through Cloudflare, or reach it through a Cloudflare Tunnel',
    );
  }
}

export interface ConnectivityResult {
  ok: true;
  protocol: number;
  server_version: string;
  methods: number;
}

/** A completed hello that Mission Control cannot work with (too old, too few scopes). */
export function checkHello(settings: Settings, hello: GatewayHello): void {
  const version = String(hello.server.version ?? '0');
  if (!versionAtLeast(version, settings.GATEWAY_MIN_VERSION)) {
    throw new GatewayError(
      'version_too_old',
      `The gateway runs OpenClaw ${version}; Mission Control needs ${settings.GATEWAY_MIN_VERSION} or newer.`,
      { server_version: version, minimum: settings.GATEWAY_MIN_VERSION },
    );
  }
  const granted = hello.auth?.scopes;
  const missing = Array.isArray(granted) ? OPERATOR_SCOPES.filter((s) => !granted.includes(s)) : [];
  if (missing.length > 0) {
    throw new GatewayError('scope_missing', `The gateway granted this connection no ${missing.join(', ')} scope.`, {
      missing,
    });
  }
}

/**
 * The connectivity check: connects once with the deployment's device identity, checks the hello,
 * and disconnects. A failure is the API's 422 `gateway_check_failed` with the reason.
 */
export async function testConnectivity(
  db: Database,
  settings: Settings,
  url: string,
  token: string | null,
): Promise<ConnectivityResult> {
  const identity = await deviceIdentity(db, encryptionKeys(settings));
  let connection: GatewayConnection;
  try {
    connection = await GatewayConnection.open({
      url,
      token,
      device: signedDevice(identity),
      timeoutMs: settings.GATEWAY_CONNECT_TIMEOUT_MS,
    });
  } catch (err) {
    throw err instanceof GatewayError ? connectivityError(err, identity.deviceId) : err;
  }
  try {
    checkHello(settings, connection.hello);
    return {
      ok: true,
      protocol: connection.hello.protocol,
      server_version: String(connection.hello.server.version),
      methods: connection.hello.features.methods.length,
    };
  } catch (err) {
    throw err instanceof GatewayError ? connectivityError(err, identity.deviceId) : err;
  } finally {
    connection.close(1000, 'connectivity check done');
  }
}

/**
 * Before storing: the check must pass, except that a gateway waiting to approve this device is let
 * through (the attempt is what asks for the approval; the session then shows the command).
 */
export async function checkBeforeSaving(db: Database, settings: Settings, url: string, token: string | null) {
  try {
    await testConnectivity(db, settings, url, token);
  } catch (err) {
    if (err instanceof AppError && err.details?.reason === 'pairing_required') return;
    throw err;
  }
}

/** A failed check as the API's error: 422 with the reason an operator can act on. */
function connectivityError(err: GatewayError, deviceId: string): AppError {
  return new AppError(422, 'gateway_check_failed', err.message, {
    details: { reason: err.kind, ...(err.kind === 'pairing_required' ? { device_id: deviceId } : {}) },
  });
}

function nameTaken(err: unknown): never {
  if (pgErrorCode(err) === UNIQUE_VIOLATION) {
    throw new AppError(409, 'name_taken', 'This organization already has a gateway with that name.');
  }
  throw err;
}

export async function createGateway(
  db: Database,
  ctx: AuditContext,
  keys: EncryptionKeys,
  organizationId: string,
  input: Required<Pick<GatewayFields, 'name' | 'url'>> & GatewayFields,
): Promise<Gateway> {
  const id = crypto.randomUUID();
  const sealed = input.token ? await encryptSecret(input.token, keys, gatewayTokenContext(id)) : null;
  try {
    const [row] = await mutateWithAudit<Record<string, unknown>>(
      db,
      ctx,
      {
        action: 'gateway.create',
        targetType: 'gateway',
        details: { name: input.name, url: input.url, has_token: sealed !== null },
      },
      sql`INSERT INTO gateways (id, organization_id, name, url, token_ciphertext, workspace_root, allow_insecure_tls)
        VALUES (${id}::uuid, ${organizationId}::uuid, ${input.name}, ${input.url}, ${sealed},
          ${input.workspace_root ?? null}, ${input.allow_insecure_tls ?? false})
        RETURNING *`,
    );
    if (!row) throw new Error('gateway insert returned nothing');
    return fromRow(gateways, row);
  } catch (err) {
    nameTaken(err);
  }
}

export async function updateGateway(
  db: Database,
  ctx: AuditContext,
  keys: EncryptionKeys,
  organizationId: string,
  id: string,
  input: GatewayFields,
): Promise<Gateway> {
  const sets: SQL[] = [sql`updated_at = now()`];
  if (input.name !== undefined) sets.push(sql`name = ${input.name}`);
  if (input.url !== undefined) sets.push(sql`url = ${input.url}`);
  if (input.workspace_root !== undefined) sets.push(sql`workspace_root = ${input.workspace_root}`);
  if (input.allow_insecure_tls !== undefined) sets.push(sql`allow_insecure_tls = ${input.allow_insecure_tls}`);
  if (input.token !== undefined) {
    const sealed = input.token === null ? null : await encryptSecret(input.token, keys, gatewayTokenContext(id));
    sets.push(sql`token_ciphertext = ${sealed}`);
  }
  // Names of the changed settings only: the token's value never reaches an audit row.
  const changes = Object.keys(input).filter((k) => input[k as keyof GatewayFields] !== undefined);
  try {
    const [row] = await mutateWithAudit<Record<string, unknown>>(
      db,
      ctx,
      { action: 'gateway.update', targetType: 'gateway', details: { changes } },
      sql`UPDATE gateways SET ${sql.join(sets, sql`, `)}
        WHERE id = ${id}::uuid AND organization_id = ${organizationId}::uuid RETURNING *`,
    );
    if (!row) throw gatewayNotFound();
    return fromRow(gateways, row);
  } catch (err) {
    nameTaken(err);
  }
}

/** Deletes the gateway; its boards are detached (their agents stay, unprovisioned). */
export async function deleteGateway(db: Database, ctx: AuditContext, organizationId: string, id: string) {
  const rows = await mutateWithAudit(
    db,
    ctx,
    { action: 'gateway.delete', targetType: 'gateway' },
    sql`DELETE FROM gateways WHERE id = ${id}::uuid AND organization_id = ${organizationId}::uuid
      RETURNING id, name`,
  );
  if (rows.length === 0) throw gatewayNotFound();
}

export async function listGateways(
  db: Database,
  organizationId: string,
  page: { limit: number; offset: number },
): Promise<{ items: Gateway[]; total: number }> {
  const { rows } = await db.execute<Record<string, unknown>>(sql`
    SELECT *, count(*) OVER ()::int AS total FROM gateways WHERE organization_id = ${organizationId}::uuid
    ORDER BY created_at, id LIMIT ${page.limit}::int OFFSET ${page.offset}::int`);
  return { items: rows.map((r) => fromRow(gateways, r)), total: Number(rows[0]?.total ?? 0) };
}

export async function getGateway(db: Database, organizationId: string, id: string): Promise<Gateway> {
  const { rows } = await db.execute<Record<string, unknown>>(
    sql`SELECT * FROM gateways WHERE id = ${id}::uuid AND organization_id = ${organizationId}::uuid`,
  );
  if (!rows[0]) throw gatewayNotFound();
  return fromRow(gateways, rows[0]);
}

/** The token of a stored gateway, for a connectivity check of changed settings. */
export async function gatewayToken(keys: EncryptionKeys, gateway: Gateway): Promise<string | null> {
  return gateway.tokenCiphertext ? decryptSecret(gateway.tokenCiphertext, keys, gatewayTokenContext(gateway.id)) : null;
}

/** What a session needs to connect, or why it must stay down. */
export type SessionPlan =
  | { connect: false; reason: 'deleted' | 'organization_locked' | 'emergency_shutdown' }
  | {
      connect: true;
      organizationId: string;
      url: string;
      token: string | null;
      deviceToken: string | null;
      workspaceRoot: string | null;
    };

export async function sessionPlan(db: Database, settings: Settings, gatewayId: string): Promise<SessionPlan> {
  const { rows } = await db.execute<{
    organization_id: string;
    url: string;
    token_ciphertext: string | null;
    device_token_ciphertext: string | null;
    workspace_root: string | null;
    locked: boolean;
  }>(sql`SELECT g.organization_id, g.url, g.token_ciphertext, g.device_token_ciphertext, g.workspace_root,
      o.locked_at IS NOT NULL AS locked
    FROM gateways g JOIN organizations o ON o.id = g.organization_id WHERE g.id = ${gatewayId}::uuid`);
  const row = rows[0];
  if (!row) return { connect: false, reason: 'deleted' };
  if (row.locked) return { connect: false, reason: 'organization_locked' };
  // Read uncached: a session told to refresh right after the switch must see it.
  if ((await readShutdown(db)).enabled) return { connect: false, reason: 'emergency_shutdown' };
  const keys = encryptionKeys(settings);
  return {
    connect: true,
    organizationId: row.organization_id,
    url: row.url,
    token: row.token_ciphertext
      ? await decryptSecret(row.token_ciphertext, keys, gatewayTokenContext(gatewayId))
      : null,
    deviceToken: row.device_token_ciphertext
      ? await decryptSecret(row.device_token_ciphertext, keys, deviceTokenContext(gatewayId))
      : null,
    workspaceRoot: row.workspace_root,
  };
}

/** Keeps the device token a gateway issued after pairing (sealed). */
export async function storeDeviceToken(db: Database, keys: EncryptionKeys, gatewayId: string, token: string) {
  const sealed = await encryptSecret(token, keys, deviceTokenContext(gatewayId));
  await db.execute(sql`UPDATE gateways SET device_token_ciphertext = ${sealed} WHERE id = ${gatewayId}::uuid`);
}

/** Gateway ids of an organization (all of them when null), for lock and shutdown fan-out. */
export async function gatewayIds(db: Database, organizationId: string | null): Promise<string[]> {
  const { rows } = await db.execute<{ id: string }>(
    organizationId
      ? sql`SELECT id FROM gateways WHERE organization_id = ${organizationId}::uuid`
      : sql`SELECT id FROM gateways`,
  );
  return rows.map((r) => r.id);
}
