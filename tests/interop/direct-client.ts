/**
 * A plain WebSocket client of the OpenClaw gateway, written here from the observed protocol and
 * independent of the product's: what the tests and the relay benchmark compare against.
 */
export interface DirectClient {
  request(
    method: string,
    params?: Record<string, unknown>,
  ): Promise<{ ok: boolean; payload?: unknown; error?: unknown }>;
  /** Resolves with the first event of that name. */
  nextEvent(name: string, timeoutMs?: number): Promise<unknown>;
  close(): void;
}

export async function connectDirect(
  url: string,
  token: string,
  options: { caps?: string[] } = {},
): Promise<DirectClient> {
  const ws = new WebSocket(url);
  const pending = new Map<string, (frame: { ok: boolean; payload?: unknown; error?: unknown }) => void>();
  const listeners: { name: string; resolve(payload: unknown): void }[] = [];
  let next = 0;
  const request = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<{ ok: boolean; payload?: unknown; error?: unknown }>((resolve) => {
      const id = `direct-${++next}`;
      pending.set(id, resolve);
      ws.send(JSON.stringify({ type: 'req', id, method, params }));
    });
  const ready = new Promise<void>((resolve, reject) => {
    ws.onerror = () => reject(new Error(`cannot reach ${url}`));
    ws.onclose = () => reject(new Error(`${url} closed the connection`));
    ws.onmessage = (message) => {
      const frame = JSON.parse(String(message.data)) as Record<string, unknown>;
      if (frame.type === 'res') {
        const done = pending.get(String(frame.id));
        pending.delete(String(frame.id));
        done?.(frame as { ok: boolean });
      } else if (frame.type === 'event' && frame.event === 'connect.challenge') {
        request('connect', {
          minProtocol: 3,
          maxProtocol: 4,
          client: { id: 'gateway-client', version: '0.0.1', platform: 'linux', mode: 'backend' },
          ...(options.caps ? { caps: options.caps } : {}),
          role: 'operator',
          scopes: ['operator.read', 'operator.write', 'operator.admin', 'operator.approvals'],
          auth: { token },
        }).then((res) => {
          if (res.ok) resolve();
          else {
            reject(new Error(JSON.stringify(res.error)));
            ws.close();
          }
        });
      } else if (frame.type === 'event') {
        for (const [i, l] of listeners.entries()) {
          if (l.name === frame.event) {
            listeners.splice(i, 1);
            l.resolve(frame.payload);
            break;
          }
        }
      }
    };
  });
  await ready;
  return {
    request,
    nextEvent: (name, timeoutMs = 30_000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${name} event within ${timeoutMs} ms`)), timeoutMs);
        listeners.push({
          name,
          resolve: (payload) => {
            clearTimeout(timer);
            resolve(payload);
          },
        });
      }),
    close: () => ws.close(),
  };
}
