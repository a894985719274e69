/**
 * Reads a request body into memory with a byte limit counted on what is actually streamed (a
 * lying Content-Length or a chunked body cannot get past it) and a deadline for slow senders.
 * Reading stops at the limit.
 */
import { AppError } from './errors';

export const tooLarge = (maxBytes: number) =>
  new AppError(413, 'payload_too_large', `The request body exceeds ${maxBytes} bytes.`);

const tooSlow = () => new AppError(408, 'request_timeout', 'The request body arrived too slowly.');

export async function readBoundedBody(
  body: ReadableStream<Uint8Array> | null,
  options: { maxBytes: number; timeoutMs: number; declaredLength?: string | null },
): Promise<Uint8Array> {
  const declared = Number(options.declaredLength);
  if (Number.isFinite(declared) && declared > options.maxBytes) {
    await body?.cancel().catch(() => {});
    throw tooLarge(options.maxBytes);
  }
  if (!body) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(tooSlow()), options.timeoutMs);
  });
  try {
    for (;;) {
      const { done, value } = await Promise.race([reader.read(), deadline]);
      if (done) break;
      total += value.byteLength;
      if (total > options.maxBytes) throw tooLarge(options.maxBytes);
      chunks.push(value);
    }
  } catch (err) {
    await reader.cancel().catch(() => {});
    throw err;
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}
