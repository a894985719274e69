/**
 * One per organization (`idFromName(organizationId)`): fans committed activity out to the
 * organization's dashboards over hibernating WebSockets and keeps the last events for replay.
 *
 * Only the Worker reaches it (through the EVENT_HUB binding), after checking the subscriber's
 * ticket and Origin: the `X-Hub-*` headers below are trusted as-is.
 *
 *   GET  /connect   WebSocket upgrade; X-Hub-Principal-Type, X-Hub-Principal-Id, X-Hub-Board-Id?, X-Hub-After-Id?
 *   POST /publish   {events: ActivityEvent[]}: buffer (duplicates ignored by id) and broadcast
 *   POST /close     {principal_ids: string[]} (code 4401) or {all: true} (code 4423)
 *
 * Messages to clients: `{"type":"event","event":{...}}`, `{"type":"resync","after_id":n}` when the
 * buffer no longer holds everything after the client's last id (fetch `GET /api/v1/activity?after_id=`),
 * and `{"type":"ready","last_id":n|null}` once the replay is done. The text `ping` is answered `pong`
 * without waking the object.
 */
import { DurableObject } from 'cloudflare:workers';
import { log } from '../workers/lib/log';

/** How many of the newest events the hub keeps for reconnecting clients. */
export const EVENT_BUFFER_SIZE = 1_000;

export const HUB_HEADERS = {
  principalType: 'X-Hub-Principal-Type',
  principalId: 'X-Hub-Principal-Id',
  boardId: 'X-Hub-Board-Id',
  afterId: 'X-Hub-After-Id',
} as const;

export const CLOSE_REVOKED = 4401;
export const CLOSE_LOCKED = 4423;

/** What each socket carries through hibernation. */
interface Subscriber {
  principalType: string;
  principalId: string;
  boardId: string | null;
}

/** The fields of an ActivityEvent the hub itself reads; the rest is passed through untouched. */
interface HubEvent {
  id: number;
  board_id: string | null;
  [field: string]: unknown;
}

/** Ordered and append-only: version N runs MIGRATIONS[N - 1]. Every statement is idempotent. */
const MIGRATIONS: readonly (readonly string[])[] = [
  [
    'CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, board_id TEXT, body TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS events_board_id_idx ON events (board_id, id)',
  ],
];

const boardTag = (boardId: string) => `board:${boardId}`;
const ALL = 'all';

export class EventHub extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    // Errors propagate: an object that failed to migrate must not serve half-initialised.
    ctx.blockConcurrencyWhile(async () => this.#migrate());
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair('ping', 'pong'));
  }

  override async fetch(request: Request): Promise<Response> {
    const { pathname } = new URL(request.url);
    if (pathname === '/connect') return this.#connect(request);
    if (request.method === 'POST' && pathname === '/publish') return this.#publish(await request.json());
    if (request.method === 'POST' && pathname === '/close') return this.#close(await request.json());
    return new Response('not found', { status: 404 });
  }

  override webSocketMessage(_ws: WebSocket, _message: string | ArrayBuffer): void {
    // Subscribers only listen; `ping` is answered by the auto-response. Anything else is ignored.
  }

  override webSocketClose(ws: WebSocket, code: number, reason: string): void {
    // Complete the closing handshake (codes 1005/1006 are not sendable, so answer with 1000).
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // Already closed.
    }
  }

  override webSocketError(ws: WebSocket, error: unknown): void {
    const who = ws.deserializeAttachment() as Subscriber | null;
    log('warn', 'events.socket_error', { principal_id: who?.principalId ?? null, error: String(error) });
  }

  #migrate(): void {
    const sql = this.ctx.storage.sql;
    this.ctx.storage.transactionSync(() => {
      sql.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)');
      let version = this.#meta('schema_version') ?? 0;
      for (; version < MIGRATIONS.length; version++) {
        for (const statement of MIGRATIONS[version] ?? []) sql.exec(statement);
        this.#setMeta('schema_version', version + 1);
      }
    });
  }

  #meta(key: string): number | null {
    const row = this.ctx.storage.sql.exec<{ value: number }>('SELECT value FROM meta WHERE key = ?', key).toArray()[0];
    return row ? row.value : null;
  }

  #setMeta(key: string, value: number): void {
    this.ctx.storage.sql.exec(
      'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      key,
      value,
    );
  }

  #connect(request: Request): Response {
    if (request.headers.get('Upgrade')?.toLowerCase() !== 'websocket') {
      return new Response('expected a WebSocket upgrade', { status: 426 });
    }
    const principalType = request.headers.get(HUB_HEADERS.principalType);
    const principalId = request.headers.get(HUB_HEADERS.principalId);
    if (!principalType || !principalId) return new Response('missing principal', { status: 400 });
    const boardId = request.headers.get(HUB_HEADERS.boardId) || null;
    const afterHeader = request.headers.get(HUB_HEADERS.afterId);
    const afterId = afterHeader ? Number(afterHeader) : null;

    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    this.ctx.acceptWebSocket(server, [boardId ? boardTag(boardId) : ALL, `principal:${principalId}`, 'org']);
    server.serializeAttachment({ principalType, principalId, boardId } satisfies Subscriber);

    // Synchronous from here to the response: no publish can slip between the replay and `ready`.
    if (afterId !== null && Number.isSafeInteger(afterId)) this.#replay(server, afterId, boardId);
    const newest = this.ctx.storage.sql.exec<{ id: number | null }>('SELECT max(id) AS id FROM events').one().id;
    server.send(JSON.stringify({ type: 'ready', last_id: newest ?? null }));
    return new Response(null, { status: 101, webSocket: client });
  }

  /** Everything after `afterId` the subscriber may see, in order; or `resync` if some of it was trimmed. */
  #replay(ws: WebSocket, afterId: number, boardId: string | null): void {
    const trimmedThrough = this.#meta('trimmed_through') ?? 0;
    if (afterId < trimmedThrough) {
      ws.send(JSON.stringify({ type: 'resync', after_id: afterId }));
      return;
    }
    const rows = boardId
      ? this.ctx.storage.sql.exec<{ body: string }>(
          'SELECT body FROM events WHERE board_id = ? AND id > ? ORDER BY id',
          boardId,
          afterId,
        )
      : this.ctx.storage.sql.exec<{ body: string }>('SELECT body FROM events WHERE id > ? ORDER BY id', afterId);
    for (const row of rows) ws.send(eventMessage(row.body));
  }

  #publish(body: unknown): Response {
    const events = (body as { events?: unknown })?.events;
    if (!Array.isArray(events) || !events.every(isHubEvent)) return new Response('bad events', { status: 400 });
    const sql = this.ctx.storage.sql;
    const fresh: { event: HubEvent; body: string }[] = [];
    this.ctx.storage.transactionSync(() => {
      for (const event of [...events].sort((a, b) => a.id - b.id)) {
        const json = JSON.stringify(event);
        const inserted = sql
          .exec(
            'INSERT INTO events (id, board_id, body) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING id',
            event.id,
            event.board_id,
            json,
          )
          .toArray();
        if (inserted.length > 0) fresh.push({ event, body: json });
      }
      // Keep the newest EVENT_BUFFER_SIZE; remember how far trimming went, for `resync`.
      const cutoff = sql
        .exec<{ id: number }>('SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?', EVENT_BUFFER_SIZE)
        .toArray()[0]?.id;
      if (cutoff !== undefined) {
        sql.exec('DELETE FROM events WHERE id <= ?', cutoff);
        this.#setMeta('trimmed_through', Math.max(cutoff, this.#meta('trimmed_through') ?? 0));
      }
    });

    let deliveries = 0;
    for (const { event, body: json } of fresh) {
      const message = eventMessage(json);
      const sockets = event.board_id
        ? [...this.ctx.getWebSockets(boardTag(event.board_id)), ...this.ctx.getWebSockets(ALL)]
        : this.ctx.getWebSockets(ALL);
      for (const ws of sockets) {
        try {
          ws.send(message);
          deliveries++;
        } catch {
          // Closing socket: its client reconnects with its last id.
        }
      }
    }
    return Response.json({ accepted: fresh.length, deliveries });
  }

  #close(body: unknown): Response {
    const selector = body as { principal_ids?: unknown; all?: unknown } | null;
    let sockets: WebSocket[];
    let code: number;
    let reason: string;
    if (selector?.all === true) {
      [sockets, code, reason] = [this.ctx.getWebSockets(), CLOSE_LOCKED, 'organization locked'];
    } else if (Array.isArray(selector?.principal_ids)) {
      const ids = selector.principal_ids.filter((id): id is string => typeof id === 'string');
      sockets = ids.flatMap((id) => this.ctx.getWebSockets(`principal:${id}`));
      [code, reason] = [CLOSE_REVOKED, 'credential revoked'];
    } else {
      return new Response('bad selector', { status: 400 });
    }
    for (const ws of sockets) {
      try {
        ws.close(code, reason);
      } catch {
        // Already closed.
      }
    }
    return Response.json({ closed: sockets.length });
  }
}

const eventMessage = (body: string) => `{"type":"event","event":${body}}`;

function isHubEvent(value: unknown): value is HubEvent {
  const e = value as HubEvent | null;
  return (
    typeof e === 'object' &&
    e !== null &&
    Number.isSafeInteger(e.id) &&
    e.id > 0 &&
    (e.board_id === null || typeof e.board_id === 'string')
  );
}
