/** Pieces the local protocol servers (SQL endpoint, Upstash REST) share: errors, bearer check, bodies, JSON replies. */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

export class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export const tokenDigest = (value: string) => createHash('sha256').update(value).digest();

export function tokenMatches(header: string | undefined, expected: Buffer): boolean {
  const match = /^Bearer (.+)$/.exec(header ?? '');
  // Compare fixed-length digests so neither the content nor the length leaks through timing.
  return match !== null && timingSafeEqual(tokenDigest(match[1] ?? ''), expected);
}

/** The body as text; 413 past `maxBytes`, with `prefix` on the message (Redis errors start with ERR). */
export async function readBody(req: IncomingMessage, maxBytes: number, prefix = ''): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new HttpError(413, `${prefix}request body exceeds ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function sendJson(res: ServerResponse, status: number, body: unknown) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
