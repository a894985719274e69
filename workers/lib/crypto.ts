/** Small crypto helpers on Web Crypto: base64/hex encoding, random secrets, SHA-256, constant-time comparison. */

const encoder = new TextEncoder();

export function base64url(bytes: Uint8Array): string {
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
}

/** Decodes standard base64 or base64url, padding optional; throws on anything else. Meant for configured keys. */
export function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text.replaceAll('-', '+').replaceAll('_', '/'));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/** Decodes unpadded base64url and throws on anything else, including non-canonical spellings of the same bytes. */
export function fromBase64url(text: string): Uint8Array<ArrayBuffer> {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new TypeError('not base64url');
  const bytes = fromBase64(text);
  // atob drops leftover low bits, so several strings can decode to the same bytes; accept only the one we would write.
  if (base64url(bytes) !== text) throw new TypeError('not canonical base64url');
  return bytes;
}

export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** `prefix` + 32 random bytes, base64url. */
export function randomSecret(prefix = ''): string {
  return prefix + base64url(crypto.getRandomValues(new Uint8Array(32)));
}

export async function sha256Hex(value: string): Promise<string> {
  return hex(new Uint8Array(await crypto.subtle.digest('SHA-256', encoder.encode(value))));
}

/** Compares two strings without leaking where they differ or how long the secret is. */
export async function constantTimeEqual(a: string, b: string): Promise<boolean> {
  const [da, db] = await Promise.all(
    [a, b].map(async (v) => new Uint8Array(await crypto.subtle.digest('SHA-256', encoder.encode(v)))),
  );
  // The digests have equal length by construction, which timingSafeEqual requires.
  return crypto.subtle.timingSafeEqual(da as Uint8Array, db as Uint8Array);
}
