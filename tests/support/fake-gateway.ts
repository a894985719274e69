/**
 * A scripted OpenClaw gateway for what the real one cannot be made to do: never send the
 * challenge, stall the hello, speak another protocol, send garbage or oversized frames, close in
 * the middle of a call. The real gateway is tested in tests/interop.
 *
 * The first path segment picks the behaviour (`ws://host/ok/<anything>`): ok, old, no-challenge,
 * slow-hello, wrong-protocol, pairing, scope, garbage, mid-call-close, oversized. The rest of the
 * path names the test's own gateway: calls are recorded, and the control API acts, per full path.
 * The token must be FAKE_GATEWAY_TOKEN.
 *
 * Control (plain HTTP on the same port), all with `?path=/ok/<name>`:
 *   GET  /control/calls   requests received, in order    POST /control/emit {event, payload}
 *   POST /control/drop    close its sockets (1012)       POST /control/down | /control/up  refuse | accept upgrades
 *   POST /control/fail {method, error}  answer that method with this error from now on (`"hang"`: never answer)
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { WebSocketServer as Server, WebSocket } from 'ws';
import { FAKE_GATEWAY_TOKEN, FAKE_GATEWAY_VERSION } from './fake-gateway-shared.ts';

// Loaded as CommonJS: the global setup's resolver would otherwise pick ws's browser stub.
const { WebSocketServer } = createRequire(import.meta.url)('ws') as { WebSocketServer: typeof Server };

interface Call {
  method: string;
  params: unknown;
}

interface PathState {
  calls: Call[];
  sockets: Set<WebSocket>;
  down: boolean;
  failures: Map<string, unknown>;
}

export interface FakeGateway {
  /** ws://127.0.0.1:port (append /<mode>/<name>). */
  url: string;
  close(): Promise<void>;
}

const OVERSIZED_BYTES = 27 * 1024 * 1024;

function answer(method: string, params: Record<string, unknown>): unknown {
  switch (method) {
    case 'health':
      return { ok: true, ts: Date.now() };
    case 'status':
      return { runtimeVersion: FAKE_GATEWAY_VERSION };
    case 'agents.create':
      return { ok: true, agentId: String(params.name ?? 'agent'), name: params.name, workspace: params.workspace };
    case 'chat.send':
      return { runId: String(params.idempotencyKey ?? 'run'), status: 'started' };
    default:
      return { ok: true };
  }
}

export async function startFakeGateway(): Promise<FakeGateway> {
  const paths = new Map<string, PathState>();
  const stateOf = (path: string): PathState => {
    let state = paths.get(path);
    if (!state) {
      state = { calls: [], sockets: new Set(), down: false, failures: new Map() };
      paths.set(path, state);
    }
    return state;
  };

  const control = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const state = stateOf(url.searchParams.get('path') ?? '');
    let body = '';
    for await (const chunk of req) body += chunk;
    const input = body ? (JSON.parse(body) as Record<string, unknown>) : {};
    switch (url.pathname) {
      case '/control/calls':
        res.end(JSON.stringify(state.calls));
        return;
      case '/control/emit':
        for (const ws of state.sockets)
          ws.send(JSON.stringify({ type: 'event', event: input.event, payload: input.payload }));
        break;
      case '/control/drop':
        for (const ws of state.sockets) ws.close(1012, 'restarting');
        break;
      case '/control/down':
        state.down = true;
        for (const ws of state.sockets) ws.terminate();
        break;
      case '/control/up':
        state.down = false;
        break;
      case '/control/fail':
        state.failures.set(String(input.method), input.error);
        break;
      default:
        res.statusCode = 404;
    }
    res.end('{}');
  };

  const server = createServer((req, res) => {
    control(req, res).catch((err: Error) => {
      res.statusCode = 500;
      res.end(err.message);
    });
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 * 1024 });
  server.on('upgrade', (req, socket, head) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (stateOf(path).down) {
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => serve(ws, path));
  });

  function serve(ws: WebSocket, path: string) {
    const mode = path.split('/')[1] ?? 'ok';
    const state = stateOf(path);
    state.sockets.add(ws);
    ws.on('close', () => state.sockets.delete(ws));
    const nonce = crypto.randomUUID();
    if (mode !== 'no-challenge') {
      ws.send(JSON.stringify({ type: 'event', event: 'connect.challenge', payload: { nonce, ts: Date.now() } }));
    }
    let connected = false;
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as { id: string; method: string; params: Record<string, unknown> };
      const reply = (payload: unknown) => ws.send(JSON.stringify({ type: 'res', id: frame.id, ok: true, payload }));
      const refuse = (error: unknown, close?: [number, string]) => {
        ws.send(JSON.stringify({ type: 'res', id: frame.id, ok: false, error }));
        if (close) ws.close(...close);
      };
      if (!connected) {
        if (frame.method !== 'connect') return refuse({ code: 'INVALID_REQUEST', message: 'connect first' });
        const auth = (frame.params.auth ?? {}) as { token?: string };
        if (mode === 'slow-hello') return;
        if (auth.token !== FAKE_GATEWAY_TOKEN) {
          return refuse(
            {
              code: 'INVALID_REQUEST',
              message: 'unauthorized: gateway token mismatch (provide gateway auth token)',
              details: { code: 'AUTH_TOKEN_MISMATCH' },
            },
            [1008, 'unauthorized: gateway token mismatch'],
          );
        }
        if (mode === 'wrong-protocol') {
          return refuse(
            {
              code: 'INVALID_REQUEST',
              message: 'protocol mismatch',
              details: { code: 'PROTOCOL_MISMATCH', expectedProtocol: 9 },
            },
            [1002, 'protocol mismatch'],
          );
        }
        if (mode === 'pairing') {
          return refuse(
            {
              code: 'NOT_PAIRED',
              message: 'pairing required',
              details: { code: 'PAIRING_REQUIRED', reason: 'not-paired', requestId: 'req-fake-1' },
            },
            [1008, 'pairing required'],
          );
        }
        connected = true;
        const scopes = mode === 'scope' ? ['operator.read'] : (frame.params.scopes as string[]);
        return reply({
          type: 'hello-ok',
          protocol: 4,
          server: { version: mode === 'old' ? '2025.12.1' : FAKE_GATEWAY_VERSION, connId: crypto.randomUUID() },
          features: { methods: ['health', 'status', 'chat.send'], events: ['health', 'chat'] },
          policy: { maxPayload: 26214400, tickIntervalMs: 30000 },
          auth: { method: 'token', role: 'operator', scopes },
        });
      }
      state.calls.push({ method: frame.method, params: frame.params });
      if (mode === 'garbage') return ws.send('this is not json {');
      if (mode === 'mid-call-close') return ws.close(1011, 'gone mid-call');
      if (mode === 'oversized') return ws.send('x'.repeat(OVERSIZED_BYTES));
      const failure = state.failures.get(frame.method);
      if (failure === 'hang') return; // Never answers this method.
      if (failure) return refuse(failure);
      reply(answer(frame.method, frame.params));
    });
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}`,
    close: async () => {
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
