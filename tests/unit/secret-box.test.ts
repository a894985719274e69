/** AES-256-GCM secrets at rest: sealing format, nonces, key rotation, and every way opening must fail. */
import { describe, expect, it } from 'vitest';
import { base64url, fromBase64url } from '../../workers/lib/crypto';
import {
  decryptSecret,
  encryptSecret,
  keyVersion,
  SecretUnreadable,
  sealedKeyVersion,
} from '../../workers/lib/secret-box';

function newKey(): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
}

const CONTEXT = 'board_webhooks.secret:11111111-1111-4111-8111-111111111111';

/** Asserts `promise` rejects with SecretUnreadable and returns its message. */
async function unreadable(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SecretUnreadable);
  return (err as SecretUnreadable).message;
}

describe('secret box', () => {
  it('round-trips a secret in the v1 format under the current key version', async () => {
    const keys = { current: newKey() };
    const sealed = await encryptSecret('whsec_hunter2', keys, CONTEXT);
    const version = await keyVersion(keys.current);
    expect(version).toMatch(/^[0-9a-f]{16}$/);
    expect(sealed).toMatch(new RegExp(`^v1\\.${version}\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$`));
    expect(await decryptSecret(sealed, keys, CONTEXT)).toBe('whsec_hunter2');
  });

  it('derives the version from the key bytes without exposing the key', async () => {
    const key = newKey();
    const raw = Uint8Array.from(atob(key), (c) => c.charCodeAt(0));
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', raw));
    const expected = Array.from(digest.slice(0, 8), (b) => b.toString(16).padStart(2, '0')).join('');
    expect(await keyVersion(key)).toBe(expected);
    expect(await keyVersion(newKey())).not.toBe(expected);
  });

  it('uses a fresh 12-byte nonce each time and leaks no plaintext', async () => {
    const keys = { current: newKey() };
    const plaintext = 'gateway-token-abcdefghijklmnop';
    const a = await encryptSecret(plaintext, keys, CONTEXT);
    const b = await encryptSecret(plaintext, keys, CONTEXT);
    expect(a).not.toBe(b);
    const [, , nonceA, ciphertextA] = a.split('.') as [string, string, string, string];
    const [, , nonceB] = b.split('.') as [string, string, string, string];
    expect(nonceA).not.toBe(nonceB);
    expect(fromBase64url(nonceA)).toHaveLength(12);
    // ciphertext || 16-byte tag
    expect(fromBase64url(ciphertextA)).toHaveLength(new TextEncoder().encode(plaintext).length + 16);
    for (const sealed of [a, b]) {
      for (let i = 0; i + 8 <= plaintext.length; i++) expect(sealed).not.toContain(plaintext.slice(i, i + 8));
      expect(sealed).not.toContain(base64url(new TextEncoder().encode(plaintext)).slice(0, 8));
      expect(sealed).not.toContain(keys.current);
    }
  });

  it('opens secrets sealed under the previous key after rotation, and seals new ones under the current key', async () => {
    const oldKey = newKey();
    const sealedOld = await encryptSecret('old secret', { current: oldKey }, CONTEXT);
    const rotated = { current: newKey(), previous: oldKey };
    expect(await decryptSecret(sealedOld, rotated, CONTEXT)).toBe('old secret');
    const sealedNew = await encryptSecret('new secret', rotated, CONTEXT);
    expect(sealedKeyVersion(sealedNew)).toBe(await keyVersion(rotated.current));
    expect(sealedKeyVersion(sealedNew)).not.toBe(await keyVersion(oldKey));
    expect(await decryptSecret(sealedNew, rotated, CONTEXT)).toBe('new secret');
  });

  it('refuses an unknown key version, naming the version and no key material', async () => {
    const retired = newKey();
    const sealed = await encryptSecret('s', { current: retired }, CONTEXT);
    const keys = { current: newKey(), previous: newKey() };
    const message = await unreadable(decryptSecret(sealed, keys, CONTEXT));
    const version = await keyVersion(retired);
    expect(message).toContain(version);
    for (const key of [retired, keys.current, keys.previous]) expect(message).not.toContain(key);
  });

  it('refuses a ciphertext with any flipped byte, nonce included', async () => {
    const keys = { current: newKey() };
    const sealed = await encryptSecret('tamper me', keys, CONTEXT);
    const [format, version, nonce, ciphertext] = sealed.split('.') as [string, string, string, string];
    const flip = (text: string, at: number) => {
      const bytes = fromBase64url(text);
      bytes[at] = (bytes[at] ?? 0) ^ 0x01;
      return base64url(bytes);
    };
    const ciphertextBytes = fromBase64url(ciphertext).length;
    for (const at of [0, 4, ciphertextBytes - 1]) {
      await unreadable(decryptSecret([format, version, nonce, flip(ciphertext, at)].join('.'), keys, CONTEXT));
    }
    await unreadable(decryptSecret([format, version, flip(nonce, 0), ciphertext].join('.'), keys, CONTEXT));
    // Dropping the tag's last byte is tampering too.
    const short = base64url(fromBase64url(ciphertext).slice(0, -1));
    await unreadable(decryptSecret([format, version, nonce, short].join('.'), keys, CONTEXT));
  });

  it('refuses a ciphertext copied to another row or column', async () => {
    const keys = { current: newKey() };
    const sealed = await encryptSecret('bound', keys, CONTEXT);
    await unreadable(decryptSecret(sealed, keys, 'board_webhooks.secret:22222222-2222-4222-8222-222222222222'));
    await unreadable(decryptSecret(sealed, keys, 'gateways.token:11111111-1111-4111-8111-111111111111'));
    expect(await decryptSecret(sealed, keys, CONTEXT)).toBe('bound');
  });

  it('refuses malformed strings', async () => {
    const keys = { current: newKey() };
    const good = await encryptSecret('x', keys, CONTEXT);
    const [, version, nonce, ciphertext] = good.split('.') as [string, string, string, string];
    const malformed = [
      '',
      'plaintext-secret',
      `v2.${version}.${nonce}.${ciphertext}`,
      `v1.${version}.${nonce}`,
      `v1.${version}.${nonce}.${ciphertext}.extra`,
      `v1.${version.toUpperCase()}.${nonce}.${ciphertext}`,
      `v1.${version.slice(1)}.${nonce}.${ciphertext}`,
      `v1.${version}.${nonce}.${ciphertext}=`,
      `v1.${version}.${nonce}.${ciphertext.replace(/^./, '+')}`,
      `v1.${version}.${base64url(new Uint8Array(16))}.${ciphertext}`,
      `v1.${version}.${nonce}.`,
      `v1.${version}.${nonce}.${base64url(new Uint8Array(15))}`,
    ];
    for (const sealed of malformed) {
      expect(await unreadable(decryptSecret(sealed, keys, CONTEXT))).toBe('sealed secret is malformed');
      expect(sealedKeyVersion(sealed)).toBeNull();
    }
  });

  it('parses the key version without decrypting', async () => {
    const key = newKey();
    const sealed = await encryptSecret('y', { current: key }, CONTEXT);
    expect(sealedKeyVersion(sealed)).toBe(await keyVersion(key));
    expect(sealedKeyVersion('not.ours')).toBeNull();
  });

  it('round-trips unicode and empty plaintext', async () => {
    const keys = { current: newKey() };
    for (const plaintext of ['пароль 🔑 秘密 e\u0301', '\uFEFFleading BOM', '']) {
      expect(await decryptSecret(await encryptSecret(plaintext, keys, CONTEXT), keys, CONTEXT)).toBe(plaintext);
    }
  });

  it('rejects a configured key that is not 32 bytes of base64, without echoing it', async () => {
    const short = btoa('only sixteen b!!');
    const err = await encryptSecret('z', { current: short }, CONTEXT).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(SecretUnreadable);
    expect((err as Error).message).not.toContain(short);
  });
});
