/**
 * The deployment's device identity for gateways that require device auth (remote ones do): an
 * Ed25519 key made once, its private half sealed in `device_identity`, its id the SHA-256 hex of
 * the raw public key. The connect signature covers, pipe-joined: `v3`, device id, client id,
 * client mode, role, scopes (comma-joined), signedAt (ms), token, challenge nonce, platform and
 * device family (both trimmed, ASCII-lowercased).
 */
import { sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import { CLIENT_ID, CLIENT_MODE, CLIENT_PLATFORM, type DeviceBlock } from '../lib/gateway-client';
import { decryptSecret, type EncryptionKeys, encryptSecret } from '../lib/secret-box';

const ROW_ID = 'default';
export const deviceKeyContext = (id: string) => `device_identity.private_key:${id}`;

export interface DeviceIdentity {
  deviceId: string;
  publicKey: string;
  privateKey: CryptoKey;
}

const base64url = (bytes: Uint8Array) =>
  btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');
const base64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));
const fromBase64 = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
const hex = (bytes: ArrayBuffer) => [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, '0')).join('');

async function importPrivate(pkcs8: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey('pkcs8', pkcs8, { name: 'Ed25519' }, false, ['sign']);
}

/** Reads the identity, making it on first use (two racing isolates agree: the first insert wins). */
export async function deviceIdentity(db: Database, keys: EncryptionKeys): Promise<DeviceIdentity> {
  const read = async () =>
    (
      await db.execute<{ device_id: string; public_key: string; private_key_ciphertext: string }>(
        sql`SELECT device_id, public_key, private_key_ciphertext FROM device_identity WHERE id = ${ROW_ID}`,
      )
    ).rows[0];
  let row = await read();
  if (!row) {
    const pair = (await crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify'])) as CryptoKeyPair;
    const raw = new Uint8Array((await crypto.subtle.exportKey('raw', pair.publicKey)) as ArrayBuffer);
    const pkcs8 = new Uint8Array((await crypto.subtle.exportKey('pkcs8', pair.privateKey)) as ArrayBuffer);
    const sealed = await encryptSecret(base64(pkcs8), keys, deviceKeyContext(ROW_ID));
    const deviceId = hex(await crypto.subtle.digest('SHA-256', raw));
    await db.execute(sql`INSERT INTO device_identity (id, device_id, public_key, private_key_ciphertext)
      VALUES (${ROW_ID}, ${deviceId}, ${base64url(raw)}, ${sealed}) ON CONFLICT (id) DO NOTHING`);
    row = await read();
    if (!row) throw new Error('device identity could not be stored');
  }
  const pkcs8 = fromBase64(await decryptSecret(row.private_key_ciphertext, keys, deviceKeyContext(ROW_ID)));
  return { deviceId: row.device_id, publicKey: row.public_key, privateKey: await importPrivate(pkcs8) };
}

const normalize = (value: string) => value.trim().replace(/[A-Z]/g, (c) => c.toLowerCase());

/** The `device` block of the connect params, signed over the challenge. */
export function signedDevice(identity: DeviceIdentity): DeviceBlock {
  return async ({ nonce, token, scopes }) => {
    const signedAt = Date.now();
    const payload = [
      'v3',
      identity.deviceId,
      CLIENT_ID,
      CLIENT_MODE,
      'operator',
      scopes.join(','),
      String(signedAt),
      token ?? '',
      nonce,
      normalize(CLIENT_PLATFORM),
      '',
    ].join('|');
    const signature = await crypto.subtle.sign(
      { name: 'Ed25519' },
      identity.privateKey,
      new TextEncoder().encode(payload),
    );
    return {
      id: identity.deviceId,
      publicKey: identity.publicKey,
      signature: base64url(new Uint8Array(signature)),
      signedAt,
      nonce,
    };
  };
}
