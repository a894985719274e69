/** HMAC-SHA256 webhook signatures as GitHub sends them: hex over the raw body, optionally `sha256=`-prefixed. */
import { hex } from './crypto';

const encoder = new TextEncoder();

export async function signBody(secret: string, body: Uint8Array): Promise<string> {
  const key = await crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, [
    'sign',
  ]);
  return hex(new Uint8Array(await crypto.subtle.sign('HMAC', key, body as Uint8Array<ArrayBuffer>)));
}

/** Constant-time: both sides are 64 hex characters before they are compared. */
export async function signatureMatches(secret: string, body: Uint8Array, presented: string): Promise<boolean> {
  const candidate = presented
    .trim()
    .replace(/^sha256=/i, '')
    .toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(candidate)) return false;
  const expected = encoder.encode(await signBody(secret, body));
  return crypto.subtle.timingSafeEqual(expected, encoder.encode(candidate));
}
