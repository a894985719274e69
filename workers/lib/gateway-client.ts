/**
 * The OpenClaw gateway protocol over one outbound WebSocket: the `connect.challenge` →
 * `connect` → `hello-ok` handshake, requests correlated by id, and events handed to a callback.
 * Used by the GatewaySession object (one long-lived connection) and by the connectivity test (one
 * short one). Frames are JSON text: `{type:"req",id,method,params}`, `{type:"res",id,ok,payload|error}`,
 * `{type:"event",event,payload,seq?}`.
 */

export const PROTOCOL_MIN = 3;
export const PROTOCOL_MAX = 4;
/** What Mission Control asks for: reads, chat, agent lifecycle, and exec approvals. */
export const OPERATOR_SCOPES = ['operator.read', 'operator.write', 'operator.admin', 'operator.approvals'] as const;
export const CLIENT_ID = 'gateway-client';
export const CLIENT_MODE = 'backend';
export const CLIENT_VERSION = '0.1.0';
export const CLIENT_PLATFORM = 'cloudflare-workers';
/**
 * A frame larger than this is a broken or hostile gateway: the connection is dropped. OpenClaw
 * advertises a 25 MiB payload limit (`policy.maxPayload`); anything past it is not the protocol.
 */
export const MAX_FRAME_BYTES = 26 * 1024 * 1024;

export interface GatewayHello {
  protocol: number;
  server: { version: string; connId?: string; [field: string]: unknown };
  features: { methods: string[]; events: string[] };
  policy: Record<string, unknown>;
  /** Present when the gateway issued this device a token (after pairing). */
  auth?: { deviceToken?: string; role?: string; scopes?: string[]; [field: string]: unknown };
}

/** Why a connection or call failed, in words an operator can act on. */
export type GatewayFailure =
  | 'unreachable'
  | 'starting'
  | 'tls_failed'
  | 'upgrade_refused'
  | 'no_challenge'
  | 'handshake_timeout'
  | 'auth_failed'
  | 'pairing_required'
  | 'scope_missing'
  | 'protocol_mismatch'
  | 'version_too_old'
  | 'protocol_error'
  | 'closed'
  | 'timeout'
  | 'rpc_error'
  | 'internal';

export class GatewayError extends Error {
  constructor(
    readonly kind: GatewayFailure,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'GatewayError';
  }
}

/** A gateway's `{ok:false,error}` payload. */
export interface GatewayErrorShape {
  code?: string;
  message?: string;
  details?: unknown;
  retryable?: boolean;
  retryAfterMs?: number;
}

/** Builds the `device` block of the connect params, signed over the challenge nonce. */
export type DeviceBlock = (input: {
  nonce: string;
  token: string | null;
  scopes: readonly string[];
}) => Promise<object>;

export interface ConnectOptions {
  url: string;
  token: string | null;
  /** Issued by the gateway after pairing; sent instead of nothing when the shared token is absent. */
  deviceToken?: string | null;
  device?: DeviceBlock;
  /** For the whole handshake (upgrade, challenge, hello). */
  timeoutMs: number;
  onEvent?: (event: string, payload: unknown, seq: number | null) => void;
  onClose?: (code: number, reason: string) => void;
  /** Injected for tests of the upgrade step; defaults to the global fetch. */
  fetcher?: typeof fetch;
}

interface Pending {
  resolve(payload: unknown): void;
  reject(err: GatewayError): void;
  timer: ReturnType<typeof setTimeout>;
}

/** `wss://h/p` → `https://h/p`: the Workers runtime upgrades through fetch. */
export function upgradeUrl(url: string): string {
  return url.replace(/^ws(s?):\/\//i, 'http$1://');
}

/**
 * Classifies a failed upgrade fetch. The runtime reports a failed TLS handshake only as an opaque
 * "internal error", so on a `wss://` URL that is read as a TLS failure.
 */
function unreachable(url: string, err: unknown): GatewayError {
  const reason = err instanceof Error ? err.message : String(err);
  const host = new URL(upgradeUrl(url)).host;
  const secure = url.toLowerCase().startsWith('wss:');
  if (/tls|ssl|certificate|handshake/i.test(reason) || (secure && /internal error/i.test(reason))) {
    return new GatewayError(
      'tls_failed',
      `The TLS handshake with ${host} failed: the gateway must serve TLS there with a publicly trusted certificate for that name (self-signed, expired or mismatched certificates are refused; Workers cannot skip the check).`,
    );
  }
  return new GatewayError('unreachable', `Could not reach the gateway at ${host}: ${reason.replace(/\.+$/, '')}.`);
}

/**
 * Maps a refused `connect` to what the operator should fix. OpenClaw puts the precise reason in
 * `details.code` (AUTH_TOKEN_MISMATCH, PROTOCOL_MISMATCH, PAIRING_REQUIRED, DEVICE_AUTH_*) under a
 * generic top-level code (INVALID_REQUEST, NOT_PAIRED).
 */
export function connectRefused(error: GatewayErrorShape, closeReason = ''): GatewayError {
  const code = String(error.code ?? '');
  const inner = (error.details ?? {}) as { code?: unknown };
  const reason = typeof inner.code === 'string' ? inner.code : '';
  const message = String(error.message ?? (closeReason || 'refused'));
  const text = `${code} ${reason} ${message}`;
  const details = {
    gateway_code: reason || code || null,
    gateway_message: message,
    gateway_details: error.details ?? null,
  };
  if (code === 'UNAVAILABLE') {
    return new GatewayError('starting', `The gateway is not ready yet (${message}): try again shortly.`, {
      ...details,
      retry_after_ms: typeof error.retryAfterMs === 'number' ? error.retryAfterMs : null,
    });
  }
  if (/NOT_PAIRED|PAIRING_REQUIRED|not[- ]paired/i.test(text)) {
    return new GatewayError('pairing_required', 'The gateway has not approved this device yet.', details);
  }
  if (/PROTOCOL_MISMATCH|protocol mismatch/i.test(text)) {
    return new GatewayError('protocol_mismatch', `The gateway speaks another protocol version: ${message}`, details);
  }
  if (/scope/i.test(text)) {
    return new GatewayError('scope_missing', `The gateway token lacks a needed scope: ${message}`, details);
  }
  if (/AUTH|DEVICE|unauthori[sz]ed|forbidden|token|credential/i.test(text)) {
    return new GatewayError('auth_failed', `The gateway refused the credentials: ${message}`, details);
  }
  return new GatewayError('protocol_error', `The gateway refused the connection: ${message}`, details);
}

/** Calendar versions (`2026.9.6`, `2026.02.9`) compared part by part, numerically. */
export function versionAtLeast(version: string, minimum: string): boolean {
  const parts = (v: string) => v.split(/[.-]/).map((p) => Number.parseInt(p, 10) || 0);
  const [a, b] = [parts(version), parts(minimum)];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const [x, y] = [a[i] ?? 0, b[i] ?? 0];
    if (x !== y) return x > y;
  }
  return true;
}

function frameText(data: unknown): string | null {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer) return new TextDecoder().decode(data);
  return null;
}

export class GatewayConnection {
  #ws: WebSocket;
  #pending = new Map<string, Pending>();
  #nextId = 1;
  #closed = false;
  #options: ConnectOptions;
  hello!: GatewayHello;

  private constructor(ws: WebSocket, options: ConnectOptions) {
    this.#ws = ws;
    this.#options = options;
  }

  /** Opens the socket and completes the handshake, or throws a GatewayError saying why not. */
  static async open(options: ConnectOptions): Promise<GatewayConnection> {
    const deadline = Date.now() + options.timeoutMs;
    const fetcher = options.fetcher ?? fetch;
    let response: Response;
    // A timer, not an AbortSignal: a signal passed to the upgrade would keep governing the socket after it opened.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(new GatewayError('handshake_timeout', 'The gateway did not answer the WebSocket upgrade in time.')),
        options.timeoutMs,
      );
    });
    try {
      response = await Promise.race([
        fetcher(upgradeUrl(options.url), { headers: { Upgrade: 'websocket' } }),
        timedOut,
      ]);
    } catch (err) {
      if (err instanceof GatewayError) throw err;
      throw unreachable(options.url, err);
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
    const ws = response.webSocket;
    if (response.status !== 101 || !ws) {
      await response.body?.cancel();
      throw new GatewayError(
        'upgrade_refused',
        `The gateway answered HTTP ${response.status} instead of opening a WebSocket: is this the gateway's address?`,
        { status: response.status },
      );
    }
    ws.accept();
    const connection = new GatewayConnection(ws, options);
    await connection.#handshake(deadline);
    return connection;
  }

  get isOpen(): boolean {
    return !this.#closed;
  }

  /** Sends a request; resolves with the `res` payload or rejects with a GatewayError. */
  request(method: string, params: unknown, timeoutMs: number): Promise<unknown> {
    if (this.#closed) return Promise.reject(new GatewayError('closed', 'The gateway connection is closed.'));
    const id = `mce-${this.#nextId++}`;
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new GatewayError('timeout', `The gateway did not answer ${method} within ${timeoutMs} ms.`));
      }, timeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
      try {
        this.#ws.send(JSON.stringify({ type: 'req', id, method, params: params ?? {} }));
      } catch (err) {
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(new GatewayError('closed', `Could not send to the gateway: ${(err as Error).message}`));
      }
    });
  }

  close(code = 1000, reason = 'closing'): void {
    this.#shutdown(code, reason, true);
  }

  #handshake(deadline: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let stage: 'challenge' | 'hello' | 'done' = 'challenge';
      const fail = (err: GatewayError, code = 1002) => {
        if (stage === 'done') return;
        stage = 'done';
        clearTimeout(timer);
        this.#shutdown(code, err.message.slice(0, 60), true);
        reject(err);
      };
      const timer = setTimeout(
        () =>
          fail(
            stage === 'challenge'
              ? new GatewayError('no_challenge', 'The gateway opened the socket but sent no connect.challenge.')
              : new GatewayError('handshake_timeout', 'The gateway did not answer the connect request in time.'),
            1000,
          ),
        Math.max(0, deadline - Date.now()),
      );
      this.#ws.addEventListener('message', (event) => {
        const frame = this.#parse(event.data);
        if (frame === null) {
          // Garbage ends the connection: a gateway that sends it cannot be trusted to answer.
          if (stage === 'done') this.#shutdown(1002, 'invalid frame', true);
          else fail(new GatewayError('protocol_error', 'The gateway sent a frame that is not protocol JSON.'));
          return;
        }
        if (stage === 'challenge') {
          if (frame.type !== 'event' || frame.event !== 'connect.challenge') return;
          const nonce = (frame.payload as { nonce?: unknown } | undefined)?.nonce;
          if (typeof nonce !== 'string') {
            fail(new GatewayError('protocol_error', 'The connect.challenge carried no nonce.'));
            return;
          }
          stage = 'hello';
          this.#sendConnect(nonce).then(
            (hello) => {
              if (stage !== 'hello') return;
              stage = 'done';
              clearTimeout(timer);
              this.hello = hello;
              resolve();
            },
            (err: GatewayError) => fail(err, err.kind === 'protocol_error' ? 1002 : 1000),
          );
          return;
        }
        this.#dispatch(frame);
      });
      this.#ws.addEventListener('close', (event) => {
        const err =
          stage === 'challenge'
            ? new GatewayError('closed', `The gateway closed the socket before the handshake (${event.code}).`)
            : connectRefused({ message: event.reason || `closed with ${event.code}` }, event.reason);
        fail(err);
        this.#shutdown(event.code, event.reason, false);
      });
      this.#ws.addEventListener('error', () => {
        fail(new GatewayError('closed', 'The gateway socket failed.'));
        this.#shutdown(1006, 'socket error', false);
      });
    });
  }

  async #sendConnect(nonce: string): Promise<GatewayHello> {
    const { token, deviceToken, device } = this.#options;
    const auth: Record<string, string> = {};
    if (token) auth.token = token;
    if (deviceToken) auth.deviceToken = deviceToken;
    const params: Record<string, unknown> = {
      minProtocol: PROTOCOL_MIN,
      maxProtocol: PROTOCOL_MAX,
      client: { id: CLIENT_ID, version: CLIENT_VERSION, platform: CLIENT_PLATFORM, mode: CLIENT_MODE },
      // Without this capability the gateway keeps exec-approval events from backend clients.
      caps: ['exec-approvals'],
      role: 'operator',
      scopes: [...OPERATOR_SCOPES],
      auth,
    };
    // The signature covers whichever credential is presented: the shared token, else the device token.
    if (device) params.device = await device({ nonce, token: token ?? deviceToken ?? null, scopes: OPERATOR_SCOPES });
    let payload: unknown;
    try {
      payload = await this.request('connect', params, this.#options.timeoutMs);
    } catch (err) {
      const e = err as GatewayError;
      if (e.kind === 'rpc_error') throw connectRefused(e.details as GatewayErrorShape);
      throw e;
    }
    const hello = payload as GatewayHello | null;
    if (hello?.server === undefined || typeof hello.protocol !== 'number') {
      throw new GatewayError('protocol_error', 'The gateway answered connect without a hello-ok.');
    }
    hello.features = {
      methods: Array.isArray(hello.features?.methods) ? hello.features.methods : [],
      events: Array.isArray(hello.features?.events) ? hello.features.events : [],
    };
    hello.policy = hello.policy ?? {};
    return hello;
  }

  #parse(data: unknown): { type?: unknown; [field: string]: unknown } | null {
    const text = frameText(data);
    if (text === null) return null;
    if (text.length > MAX_FRAME_BYTES) {
      this.#shutdown(1009, 'frame too large', true);
      return null;
    }
    try {
      const frame = JSON.parse(text) as unknown;
      return typeof frame === 'object' && frame !== null && !Array.isArray(frame)
        ? (frame as { type?: unknown })
        : null;
    } catch {
      return null;
    }
  }

  #dispatch(frame: { type?: unknown; [field: string]: unknown }): void {
    if (frame.type === 'res' && typeof frame.id === 'string') {
      const pending = this.#pending.get(frame.id);
      if (!pending) return;
      this.#pending.delete(frame.id);
      clearTimeout(pending.timer);
      if (frame.ok === true) pending.resolve(frame.payload);
      else {
        const error = (frame.error ?? {}) as GatewayErrorShape;
        pending.reject(
          new GatewayError(
            'rpc_error',
            String(error.message ?? 'The gateway refused the call.'),
            error as Record<string, unknown>,
          ),
        );
      }
    } else if (frame.type === 'event' && typeof frame.event === 'string') {
      const seq = typeof frame.seq === 'number' ? frame.seq : null;
      this.#options.onEvent?.(frame.event, frame.payload, seq);
    }
  }

  #shutdown(code: number, reason: string, initiate: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const [id, pending] of this.#pending) {
      clearTimeout(pending.timer);
      pending.reject(
        new GatewayError('closed', `The gateway connection closed (${code}${reason ? `: ${reason}` : ''}).`),
      );
      this.#pending.delete(id);
    }
    if (initiate) {
      try {
        this.#ws.close(code, reason);
      } catch {
        // Already closing.
      }
    }
    this.#options.onClose?.(code, reason);
  }
}
