/**
 * One per OpenClaw gateway (`idFromName(gatewayId)`): holds the authenticated WebSocket to the
 * gateway, relays RPC over it, fans gateway events out to dashboards, and runs agent provisioning.
 *
 * Outbound sockets cannot hibernate and hold the object in memory only for a while, and deploys
 * close them without warning: an alarm at least every HEARTBEAT_MS pings the gateway and
 * reconnects (backoff 1 s doubling to 60 s, with jitter). What must survive a restart — the
 * gateway id, whether to run, status, backoff, buffered events, provisioning jobs — is in SQLite.
 *
 * Only the Worker reaches it (GATEWAY_SESSION binding), after authorization:
 *   POST /start {gateway_id, organization_id}  keep connected
 *           POST /refresh  re-read settings, reconnect or go down
 *   POST /forget               gateway deleted          GET  /status
 *   POST /rpc {method, params, timeout_ms, idempotent}  → {ok:true,payload} | {ok:false,kind,message,details}
 *   GET  /events               WebSocket upgrade (X-Session-Principal-Id, X-Session-After-Id?), hibernating
 *   POST /close-subscribers {principal_ids} | {all:true}
 *   POST /jobs {job}           queue agent provisioning work (services/agent-provisioning.ts)
 */
import { DurableObject } from 'cloudflare:workers';
import { encryptionKeys, loadSettings, type Settings } from '../workers/config';
import { openDatabase } from '../workers/db/client';
import { GatewayConnection, GatewayError } from '../workers/lib/gateway-client';
import { log } from '../workers/lib/log';
import { type JobRecord, type JobRunner, runJob } from '../workers/services/agent-provisioning';
import { deviceIdentity, signedDevice } from '../workers/services/device-identity';
import { type GatewayActivity, recordGatewayActivity } from '../workers/services/gateway-activity';
import { activityForEvent } from '../workers/services/gateway-events';
import { checkHello, sessionPlan, storeDeviceToken } from '../workers/services/gateways';

export const HEARTBEAT_MS = 30_000;
const PING_TIMEOUT_MS = 10_000;
const BACKOFF_BASE_MS = 1_000;
const BACKOFF_MAX_MS = 60_000;
/** Newest gateway events kept for reconnecting dashboards. */
export const SESSION_EVENT_BUFFER = 200;
/** Larger events are relayed live but not buffered (SQLite rows are capped at 2 MB). */
const MAX_BUFFERED_EVENT_CHARS = 256 * 1024;

/** Keep-alives, not news: neither buffered nor relayed. */
const QUIET_EVENTS = new Set(['tick', 'connect.challenge']);

export const SESSION_HEADERS = { principalId: 'X-Session-Principal-Id', afterId: 'X-Session-After-Id' } as const;
export const CLOSE_GATEWAY_GONE = 4404;

export type SessionStatus = 'idle' | 'connecting' | 'connected' | 'disconnected' | 'pairing_required' | 'stopped';

interface SessionState {
  gatewayId: string | null;
  organizationId: string | null;
  /** The operator's intent: keep this session up. False only before /start and after /forget. */
  run: boolean;
  status: SessionStatus;
  since: number | null;
  attempts: number;
  nextAttemptAt: number | null;
  lastError: { kind: string; message: string; at: number } | null;
  stopReason: string | null;
  hello: {
    protocol: number;
    server_version: string;
    conn_id: string | null;
    methods: string[];
    events: string[];
    policy: Record<string, unknown>;
  } | null;
  pairing: { device_id: string; request_id: string | null; command: string } | null;
}

const INITIAL: SessionState = {
  gatewayId: null,
  organizationId: null,
  run: false,
  status: 'idle',
  since: null,
  attempts: 0,
  nextAttemptAt: null,
  lastError: null,
  stopReason: null,
  hello: null,
  pairing: null,
};

const MIGRATIONS: readonly (readonly string[])[] = [
  [
    'CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL)',
    'CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)',
    `CREATE TABLE IF NOT EXISTS jobs (agent_id TEXT PRIMARY KEY, next_at INTEGER NOT NULL, body TEXT NOT NULL)`,
  ],
];

/** 1 s doubling to 60 s, each delay drawn from its upper half so restarts do not stampede. */
export function backoffMs(attempt: number): number {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

const json = (body: unknown, status = 200) => Response.json(body, { status });

export class GatewaySession extends DurableObject<Env> {
  #state: SessionState = { ...INITIAL };
  #conn: GatewayConnection | null = null;
  #connecting: Promise<void> | null = null;
  #waiters = new Set<() => void>();
  #jobsRunning = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.blockConcurrencyWhile(async () => {
      this.#migrate();
      const row = ctx.storage.sql.exec<{ value: string }>("SELECT value FROM state WHERE key = 'session'").toArray()[0];
      this.#state = row ? { ...INITIAL, ...(JSON.parse(row.value) as SessionState) } : { ...INITIAL };
      // A fresh instance holds no socket: whatever was open died with the last one (deploy, eviction).
      if (this.#state.run && (this.#state.status === 'connected' || this.#state.status === 'connecting')) {
        this.#save({
          status: 'disconnected',
          since: Date.now(),
          nextAttemptAt: Date.now(),
          lastError: { kind: 'closed', message: 'The session restarted (deploy or eviction).', at: Date.now() },
        });
      }
      if (this.#state.run && (await ctx.storage.getAlarm()) === null) await ctx.storage.setAlarm(Date.now());
    });
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair('ping', 'pong'));
  }

  override async fetch(request: Request): Promise<Response> {
    const { pathname } = new URL(request.url);
    const route = `${request.method} ${pathname}`;
    switch (route) {
      case 'POST /start': {
        const body = (await request.json()) as { gateway_id?: string; organization_id?: string };
        return this.#start(body.gateway_id, body.organization_id);
      }
      case 'POST /refresh':
        return this.#refresh();
      case 'POST /forget':
        return this.#forget();
      case 'GET /status':
        return json(this.#status());
      case 'POST /rpc':
        return json(await this.#rpc((await request.json()) as RpcRequest));
      case 'GET /events':
        return this.#subscribe(request);
      case 'POST /close-subscribers':
        return this.#closeSubscribers(await request.json());
      case 'POST /jobs':
        return this.#addJob((await request.json()) as JobRecord);
      default:
        return new Response('not found', { status: 404 });
    }
  }

  override async alarm(): Promise<void> {
    try {
      if (this.#state.run) {
        if (this.#conn?.isOpen) await this.#ping();
        else if (!this.#connecting && (this.#state.nextAttemptAt ?? 0) <= Date.now()) await this.#connect();
      }
      await this.#runJobs();
    } finally {
      // Whatever happened, the next heartbeat is booked.
      await this.#schedule();
    }
  }

  override webSocketMessage(_ws: WebSocket, _message: string | ArrayBuffer): void {
    // Dashboards only listen; `ping` is answered by the auto-response.
  }

  override webSocketClose(ws: WebSocket, code: number, reason: string): void {
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // Already closed.
    }
  }

  // ---- state -------------------------------------------------------------------------------

  #migrate(): void {
    const sql = this.ctx.storage.sql;
    this.ctx.storage.transactionSync(() => {
      sql.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)');
      let version =
        sql.exec<{ value: number }>("SELECT value FROM meta WHERE key = 'schema_version'").toArray()[0]?.value ?? 0;
      for (; version < MIGRATIONS.length; version++) {
        for (const statement of MIGRATIONS[version] ?? []) sql.exec(statement);
        sql.exec(
          "INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
          version + 1,
        );
      }
    });
  }

  #save(changes: Partial<SessionState>): void {
    const before = this.#state.status;
    this.#state = { ...this.#state, ...changes };
    this.ctx.storage.sql.exec(
      "INSERT INTO state (key, value) VALUES ('session', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      JSON.stringify(this.#state),
    );
    if (changes.status !== undefined && changes.status !== before)
      this.#broadcast({ type: 'status', status: this.#status() });
  }

  #settings(): Settings {
    const loaded = loadSettings(this.env);
    if (!loaded.ok) throw new Error(`invalid settings: ${loaded.problems.map((p) => p.setting).join(', ')}`);
    return loaded.settings;
  }

  #status() {
    const s = this.#state;
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
    return {
      status: s.status,
      connected: s.status === 'connected',
      since: iso(s.since),
      protocol: s.hello?.protocol ?? null,
      server_version: s.hello?.server_version ?? null,
      connection_id: s.status === 'connected' ? (s.hello?.conn_id ?? null) : null,
      methods: s.hello?.methods.length ?? 0,
      last_error: s.lastError ? { ...s.lastError, at: iso(s.lastError.at) } : null,
      reconnect_attempts: s.attempts,
      next_attempt_at: s.status === 'connected' ? null : iso(s.nextAttemptAt),
      stop_reason: s.status === 'stopped' ? s.stopReason : null,
      pairing: s.status === 'pairing_required' ? s.pairing : null,
      subscribers: this.ctx.getWebSockets().length,
      pending_jobs: this.ctx.storage.sql.exec<{ n: number }>('SELECT count(*) AS n FROM jobs').one().n,
    };
  }

  async #schedule(): Promise<void> {
    const now = Date.now();
    const times: number[] = [];
    if (this.#state.run) {
      const heartbeat = now + HEARTBEAT_MS;
      times.push(this.#conn?.isOpen ? heartbeat : Math.min(this.#state.nextAttemptAt ?? heartbeat, heartbeat));
    }
    const job = this.ctx.storage.sql.exec<{ t: number | null }>('SELECT min(next_at) AS t FROM jobs').one().t;
    if (job !== null) times.push(job);
    if (times.length === 0) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(Math.max(now + 10, Math.min(...times)));
  }

  // ---- lifecycle -----------------------------------------------------------------------------

  async #start(gatewayId: string | undefined, organizationId: string | undefined): Promise<Response> {
    if (!gatewayId || !organizationId) return new Response('gateway_id and organization_id required', { status: 400 });
    this.#save({ gatewayId, organizationId, run: true, attempts: 0, nextAttemptAt: Date.now() });
    await this.#reconnect();
    return json(this.#status());
  }

  async #refresh(): Promise<Response> {
    if (this.#state.run) await this.#reconnect();
    return json(this.#status());
  }

  /** Drops the current connection (if any) and connects with freshly read settings. */
  async #reconnect(): Promise<void> {
    await this.#connecting?.catch(() => {});
    this.#drop(1000, 'settings changed');
    this.#save({ nextAttemptAt: Date.now() });
    await this.#connect();
    await this.#schedule();
  }

  async #forget(): Promise<Response> {
    this.#drop(1000, 'gateway deleted');
    for (const ws of this.ctx.getWebSockets()) this.#closeSocket(ws, CLOSE_GATEWAY_GONE, 'gateway deleted');
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.#state = { ...INITIAL };
    this.#migrate();
    return json({ forgotten: true });
  }

  /** Closes the socket without treating it as a loss (no reconnect scheduled by the close). */
  #drop(code: number, reason: string): void {
    const conn = this.#conn;
    this.#conn = null;
    conn?.close(code, reason);
  }

  #connect(): Promise<void> {
    this.#connecting ??= this.#attempt()
      .catch((err: Error) => {
        // Settings, database or device key unavailable: a failed attempt like any other, retried with backoff.
        this.#failed(new GatewayError('internal', `Could not prepare the connection: ${err.message}`), null);
      })
      .finally(() => {
        this.#connecting = null;
      });
    return this.#connecting;
  }

  async #attempt(): Promise<void> {
    const gatewayId = this.#state.gatewayId;
    if (!gatewayId) return;
    const settings = this.#settings();
    const db = await openDatabase(settings);
    const plan = await sessionPlan(db, settings, gatewayId);
    if (!plan.connect) {
      this.#goDown(plan.reason);
      return;
    }
    this.#save({ organizationId: plan.organizationId, status: 'connecting' });
    const identity = await deviceIdentity(db, encryptionKeys(settings));
    let conn: GatewayConnection | null = null;
    try {
      conn = await GatewayConnection.open({
        url: plan.url,
        token: plan.token,
        deviceToken: plan.deviceToken,
        device: signedDevice(identity),
        timeoutMs: settings.GATEWAY_CONNECT_TIMEOUT_MS,
        onEvent: (event, payload, seq) => this.#onEvent(event, payload, seq),
        onClose: (code, reason) => this.#onClose(conn, code, reason),
      });
      checkHello(settings, conn.hello);
    } catch (err) {
      conn?.close(1000, 'rejected');
      const failure = err instanceof GatewayError ? err : new GatewayError('unreachable', (err as Error).message);
      this.#failed(failure, identity.deviceId);
      return;
    }
    this.#conn = conn;
    const hello = conn.hello;
    const issued = hello.auth?.deviceToken;
    if (typeof issued === 'string' && issued !== plan.deviceToken) {
      await storeDeviceToken(db, encryptionKeys(settings), gatewayId, issued);
    }
    this.#save({
      status: 'connected',
      since: Date.now(),
      attempts: 0,
      nextAttemptAt: null,
      lastError: null,
      stopReason: null,
      pairing: null,
      hello: {
        protocol: hello.protocol,
        server_version: String(hello.server.version),
        conn_id: typeof hello.server.connId === 'string' ? hello.server.connId : null,
        methods: hello.features.methods,
        events: hello.features.events,
        policy: hello.policy,
      },
    });
    log('info', 'gateway.connected', { gateway_id: gatewayId, server_version: hello.server.version });
    for (const wake of this.#waiters) wake();
    this.#waiters.clear();
    this.#activity({
      type: 'gateway.connected',
      message: `Gateway connected (OpenClaw ${hello.server.version})`,
      payload: { server_version: hello.server.version, protocol: hello.protocol },
    });
    this.ctx.waitUntil(this.#runJobs());
  }

  #failed(err: GatewayError, deviceId: string | null): void {
    const now = Date.now();
    const lastError = { kind: err.kind, message: err.message, at: now };
    if (err.kind === 'pairing_required') {
      const requestId = pairingRequestId(err.details);
      const command = `openclaw devices approve ${requestId ?? '<request-id from `openclaw devices list`>'}`;
      const fresh = this.#state.status !== 'pairing_required';
      // Retried on the heartbeat: nothing changes until the gateway's owner approves the device.
      this.#save({
        status: 'pairing_required',
        since: fresh ? now : this.#state.since,
        attempts: this.#state.attempts + 1,
        nextAttemptAt: now + HEARTBEAT_MS,
        lastError,
        pairing: { device_id: deviceId ?? '', request_id: requestId, command },
      });
      if (fresh) {
        this.#activity({
          type: 'gateway.pairing_required',
          message: `Gateway asks to approve this deployment's device: ${command}`,
          payload: { device_id: deviceId, request_id: requestId },
        });
      }
    } else {
      const attempts = this.#state.attempts + 1;
      // A gateway that is starting says when to come back; otherwise back off.
      const asked = Number(err.details.retry_after_ms);
      const wait = err.kind === 'starting' && asked > 0 ? Math.min(asked, BACKOFF_MAX_MS) : backoffMs(attempts);
      this.#save({
        status: 'disconnected',
        since: this.#state.status === 'disconnected' ? this.#state.since : now,
        attempts,
        nextAttemptAt: now + wait,
        lastError,
      });
    }
    log('warn', 'gateway.connect_failed', {
      gateway_id: this.#state.gatewayId,
      reason: err.kind,
      error: err.message,
      attempts: this.#state.attempts,
    });
  }

  #onClose(conn: GatewayConnection | null, code: number, reason: string): void {
    if (conn === null || this.#conn !== conn) return; // A connection we dropped ourselves.
    this.#conn = null;
    const now = Date.now();
    this.#save({
      status: 'disconnected',
      since: now,
      attempts: 1,
      nextAttemptAt: now + backoffMs(1),
      lastError: {
        kind: 'closed',
        message: `The gateway closed the connection (${code}${reason ? ` ${reason}` : ''}).`,
        at: now,
      },
    });
    log('warn', 'gateway.disconnected', { gateway_id: this.#state.gatewayId, code, reason });
    this.#activity({ type: 'gateway.disconnected', message: 'Gateway connection lost', payload: { code, reason } });
    this.ctx.waitUntil(this.#schedule());
  }

  /** Organization locked, emergency shutdown, or the gateway deleted: disconnect and stay down. */
  #goDown(reason: 'deleted' | 'organization_locked' | 'emergency_shutdown'): void {
    this.#drop(1000, reason);
    this.#save({ status: 'stopped', since: Date.now(), stopReason: reason, nextAttemptAt: Date.now() + HEARTBEAT_MS });
    if (reason === 'deleted') this.#save({ run: false });
  }

  async #ping(): Promise<void> {
    const conn = this.#conn;
    if (!conn) return;
    try {
      await conn.request('health', {}, PING_TIMEOUT_MS);
    } catch (err) {
      if ((err as GatewayError).kind !== 'rpc_error') {
        // No answer: a half-open socket. Closing it reports the loss and schedules the reconnect.
        conn.close(4000, 'heartbeat timeout');
      }
    }
  }

  #activity(entry: GatewayActivity): void {
    const { gatewayId, organizationId } = this.#state;
    if (!gatewayId || !organizationId) return;
    const env = this.env;
    const settings = this.#settings();
    this.ctx.waitUntil(
      openDatabase(settings).then((db) => recordGatewayActivity(env, db, organizationId, gatewayId, entry)),
    );
  }

  // ---- RPC -----------------------------------------------------------------------------------

  #waitConnected(deadline: number): Promise<boolean> {
    if (this.#conn?.isOpen) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(
        () => {
          this.#waiters.delete(wake);
          resolve(false);
        },
        Math.max(0, deadline - Date.now()),
      );
      this.#waiters.add(wake);
    });
  }

  async #rpc(body: RpcRequest): Promise<RpcResult> {
    // The caller's organization must own this session: the relay skips a database read for it.
    if (body.organization_id !== undefined && body.organization_id !== this.#state.organizationId) {
      return { ok: false, kind: 'not_found', message: 'No such gateway.', details: {} };
    }
    const deadline = Date.now() + body.timeout_ms;
    for (let attempt = 0; ; attempt++) {
      let conn = this.#conn;
      if (!conn?.isOpen && this.#connecting && (await this.#waitConnected(deadline))) conn = this.#conn;
      if (!conn?.isOpen) return unavailable(this.#state);
      try {
        return { ok: true, payload: await conn.request(body.method, body.params, Math.max(1, deadline - Date.now())) };
      } catch (err) {
        const e = err as GatewayError;
        // A read lost to a dropped connection is safe to repeat once the session is back.
        if (e.kind === 'closed' && body.idempotent && attempt === 0) {
          this.#save({ nextAttemptAt: Date.now() });
          this.ctx.waitUntil(this.#connect());
          if (await this.#waitConnected(deadline)) continue;
          return unavailable(this.#state);
        }
        if (e.kind === 'closed') return unavailable(this.#state);
        return { ok: false, kind: e.kind, message: e.message, details: e.details };
      }
    }
  }

  // ---- events --------------------------------------------------------------------------------

  #onEvent(event: string, payload: unknown, seq: number | null): void {
    if (QUIET_EVENTS.has(event)) return;
    const body = JSON.stringify({ event, payload, seq, at: new Date().toISOString() });
    let id: number | null = null;
    if (body.length <= MAX_BUFFERED_EVENT_CHARS) {
      const sql = this.ctx.storage.sql;
      id = sql.exec<{ id: number }>('INSERT INTO events (body) VALUES (?) RETURNING id', body).one().id;
      sql.exec('DELETE FROM events WHERE id <= ?', id - SESSION_EVENT_BUFFER);
    }
    this.#broadcast(`{"type":"event","id":${id},"event":${body}}`);
    const activity = activityForEvent(event, payload);
    if (activity) this.#activity(activity);
  }

  #broadcast(message: string | object): void {
    const text = typeof message === 'string' ? message : JSON.stringify(message);
    for (const ws of this.ctx.getWebSockets()) {
      try {
        ws.send(text);
      } catch {
        // Closing socket: its client reconnects with its last id.
      }
    }
  }

  #subscribe(request: Request): Response {
    if (request.headers.get('Upgrade')?.toLowerCase() !== 'websocket') {
      return new Response('expected a WebSocket upgrade', { status: 426 });
    }
    const principalId = request.headers.get(SESSION_HEADERS.principalId);
    if (!principalId) return new Response('missing principal', { status: 400 });
    const afterHeader = request.headers.get(SESSION_HEADERS.afterId);
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    this.ctx.acceptWebSocket(server, [`principal:${principalId}`]);
    const sql = this.ctx.storage.sql;
    if (afterHeader !== null && /^\d+$/.test(afterHeader)) {
      const oldest = sql.exec<{ id: number | null }>('SELECT min(id) AS id FROM events').one().id;
      const after = Number(afterHeader);
      if (oldest !== null && after < oldest - 1) server.send(JSON.stringify({ type: 'resync', after_id: after }));
      for (const row of sql.exec<{ id: number; body: string }>(
        'SELECT id, body FROM events WHERE id > ? ORDER BY id',
        after,
      )) {
        server.send(`{"type":"event","id":${row.id},"event":${row.body}}`);
      }
    }
    const newest = sql.exec<{ id: number | null }>('SELECT max(id) AS id FROM events').one().id;
    server.send(JSON.stringify({ type: 'ready', last_id: newest, status: this.#status() }));
    return new Response(null, { status: 101, webSocket: client });
  }

  #closeSubscribers(body: unknown): Response {
    const selector = body as { principal_ids?: unknown; all?: unknown } | null;
    const sockets =
      selector?.all === true
        ? this.ctx.getWebSockets()
        : Array.isArray(selector?.principal_ids)
          ? selector.principal_ids.flatMap((id) => this.ctx.getWebSockets(`principal:${String(id)}`))
          : null;
    if (sockets === null) return new Response('bad selector', { status: 400 });
    const [code, reason] = selector?.all === true ? [4423, 'organization locked'] : [4401, 'credential revoked'];
    for (const ws of sockets) this.#closeSocket(ws, code, reason);
    return json({ closed: sockets.length });
  }

  #closeSocket(ws: WebSocket, code: number, reason: string): void {
    try {
      ws.close(code, reason);
    } catch {
      // Already closed.
    }
  }

  // ---- agent provisioning jobs ---------------------------------------------------------------

  async #addJob(job: JobRecord): Promise<Response> {
    this.ctx.storage.sql.exec(
      'INSERT INTO jobs (agent_id, next_at, body) VALUES (?, ?, ?) ON CONFLICT (agent_id) DO UPDATE SET next_at = excluded.next_at, body = excluded.body',
      job.agentId,
      Date.now(),
      JSON.stringify(job),
    );
    this.ctx.waitUntil(this.#runJobs().then(() => this.#schedule()));
    return json({ queued: true });
  }

  /** Runs every due job once; each returns when to look at it again, or that it is finished. */
  async #runJobs(): Promise<void> {
    if (this.#jobsRunning) return;
    this.#jobsRunning = true;
    try {
      const sql = this.ctx.storage.sql;
      const due = sql
        .exec<{ agent_id: string; body: string }>(
          'SELECT agent_id, body FROM jobs WHERE next_at <= ? ORDER BY next_at',
          Date.now(),
        )
        .toArray();
      if (due.length === 0) return;
      const settings = this.#settings();
      const runner: JobRunner = {
        env: this.env,
        db: await openDatabase(settings),
        settings,
        gatewayId: this.#state.gatewayId ?? '',
        connected: () => this.#conn?.isOpen === true,
        call: async (method, params) => {
          const result = await this.#rpc({
            method,
            params,
            timeout_ms: settings.GATEWAY_RPC_TIMEOUT_MS,
            idempotent: false,
          });
          if (!result.ok) throw new GatewayError(result.kind as GatewayError['kind'], result.message, result.details);
          return result.payload;
        },
      };
      for (const row of due) {
        const job = JSON.parse(row.body) as JobRecord;
        const next = await runJob(runner, job);
        if (next === null) sql.exec('DELETE FROM jobs WHERE agent_id = ? AND body = ?', row.agent_id, row.body);
        else
          sql.exec(
            'UPDATE jobs SET next_at = ?, body = ? WHERE agent_id = ? AND body = ?',
            next.nextAt,
            JSON.stringify(next.job),
            row.agent_id,
            row.body,
          );
      }
    } catch (err) {
      log('error', 'gateway.jobs_failed', { gateway_id: this.#state.gatewayId, error: (err as Error).message });
    } finally {
      this.#jobsRunning = false;
    }
  }
}

export interface RpcRequest {
  /** When set, the session answers `not_found` unless it belongs to this organization. */
  organization_id?: string;
  method: string;
  params: unknown;
  timeout_ms: number;
  /** Safe to repeat: retried once if the connection drops while it is in flight. */
  idempotent: boolean;
}

export type RpcResult =
  | { ok: true; payload: unknown }
  | { ok: false; kind: string; message: string; details: Record<string, unknown> };

function unavailable(state: SessionState): RpcResult {
  const why =
    state.status === 'stopped' ? ` (${state.stopReason})` : state.lastError ? `: ${state.lastError.message}` : '';
  return {
    ok: false,
    kind: 'unavailable',
    message: `The gateway session is ${state.status}${why}`,
    details: { status: state.status },
  };
}

/** The pairing request id the gateway put in its NOT_PAIRED error, where this version puts it. */
function pairingRequestId(details: Record<string, unknown>): string | null {
  const inner = (details.gateway_details ?? {}) as Record<string, unknown>;
  const id = inner.requestId ?? inner.request_id ?? inner.pairingRequestId;
  return typeof id === 'string' ? id : null;
}
