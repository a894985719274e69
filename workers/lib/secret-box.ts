/**
 * Secrets at rest (webhook secrets, gateway tokens): AES-256-GCM under ENCRYPTION_KEY, sealed as
 * `v1.<keyVersion>.<base64url(nonce)>.<base64url(ciphertext||tag)>`. The key version lets ENCRYPTION_KEY rotate
 * while rows sealed under ENCRYPTION_KEY_PREVIOUS still open; a database dump alone holds no key material.
 */
import { base64url, fromBase64, fromBase64url, hex } from './crypto';

/** Base64 strings of 32 random bytes: `current` seals, either one opens. */
export interface EncryptionKeys {
  current: string;
  previous?: string;
}

/** Thrown when a sealed secret cannot be opened. Messages never carry plaintext or key material. */
export class SecretUnreadable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretUnreadable';
  }
}

const FORMAT = 'v1';
const NONCE_BYTES = 12; // 96 bits, the nonce size GCM is specified for
const TAG_BYTES = 16;
const VERSION = /^[0-9a-f]{16}$/;
const encoder = new TextEncoder();
// ignoreBOM keeps a leading U+FEFF in the plaintext instead of silently dropping it.
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

interface LoadedKey {
  version: string;
  key: CryptoKey;
}

// Importing a key costs a round into the crypto backend; an isolate serves many requests with the same one or two keys.
const loadedKeys = new Map<string, Promise<LoadedKey>>();

function loadKey(key: string): Promise<LoadedKey> {
  let loaded = loadedKeys.get(key);
  if (!loaded) {
    loaded = importKey(key);
    // A bad key fails every time anyway, but dropping it keeps the map from holding rejected promises.
    loaded.catch(() => loadedKeys.delete(key));
    loadedKeys.set(key, loaded);
  }
  return loaded;
}

async function importKey(key: string): Promise<LoadedKey> {
  let raw: Uint8Array<ArrayBuffer>;
  try {
    raw = fromBase64(key.trim());
  } catch {
    raw = new Uint8Array(0);
  }
  // Deliberately says nothing about the value: this message may end up in logs.
  if (raw.length !== 32) throw new Error('encryption key is not base64 of 32 bytes');
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', raw));
  const cryptoKey = await crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);
  return { version: hex(digest).slice(0, 16), key: cryptoKey };
}

/** Short stable id of a key: the first 16 hex chars of SHA-256 over its raw bytes, safe to store beside ciphertext. */
export async function keyVersion(key: string): Promise<string> {
  return (await loadKey(key)).version;
}

/** Seals `plaintext` under the current key, bound to `context` (e.g. `board_webhooks.secret:<row id>`). */
export async function encryptSecret(plaintext: string, keys: EncryptionKeys, context: string): Promise<string> {
  const { version, key } = await loadKey(keys.current);
  const nonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
  const sealed = await crypto.subtle.encrypt(
    { name: 'AES-GCM', iv: nonce, additionalData: encoder.encode(context) },
    key,
    encoder.encode(plaintext),
  );
  return [FORMAT, version, base64url(nonce), base64url(new Uint8Array(sealed))].join('.');
}

/** Opens a sealed secret with whichever configured key matches its version; the context must be the one it was sealed with. */
export async function decryptSecret(sealed: string, keys: EncryptionKeys, context: string): Promise<string> {
  const parts = parse(sealed);
  if (!parts) throw new SecretUnreadable('sealed secret is malformed');
  const candidates = keys.previous ? [keys.current, keys.previous] : [keys.current];
  let key: CryptoKey | undefined;
  for (const candidate of candidates) {
    const loaded = await loadKey(candidate);
    if (loaded.version !== parts.version) continue;
    key = loaded.key;
    break;
  }
  if (!key) throw new SecretUnreadable(`no encryption key with version ${parts.version} is configured`);
  let plaintext: ArrayBuffer;
  try {
    plaintext = await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: parts.nonce, additionalData: encoder.encode(context) },
      key,
      parts.ciphertext,
    );
  } catch {
    // GCM cannot tell a flipped bit from a wrong context: both fail the tag check.
    throw new SecretUnreadable('sealed secret failed authentication (tampered, or sealed for another context)');
  }
  return decoder.decode(plaintext);
}

/** The key version of a sealed secret, read without decrypting (to find rows still under an old key); null when not our format. */
export function sealedKeyVersion(sealed: string): string | null {
  return parse(sealed)?.version ?? null;
}

function parse(
  sealed: string,
): { version: string; nonce: Uint8Array<ArrayBuffer>; ciphertext: Uint8Array<ArrayBuffer> } | null {
  const parts = sealed.split('.');
  if (parts.length !== 4) return null;
  const [format, version, nonceText, ciphertextText] = parts as [string, string, string, string];
  if (format !== FORMAT || !VERSION.test(version)) return null;
  try {
    const nonce = fromBase64url(nonceText);
    const ciphertext = fromBase64url(ciphertextText);
    if (nonce.length !== NONCE_BYTES || ciphertext.length < TAG_BYTES) return null;
    return { version, nonce, ciphertext };
  } catch {
    return null;
  }
}
