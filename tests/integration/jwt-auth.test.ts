/**
 * AUTH_MODE=clerk: operator session JWTs verified against the stand-in issuer's JWKS
 * (tests/support/jwks.ts), signed here inside workerd with its private keys.
 */
import { sql } from 'drizzle-orm';
import { exportJWK, exportSPKI, generateKeyPair, importJWK, type JWK, type JWTPayload, SignJWT } from 'jose';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { settingsSchema } from '../../workers/config';
import { type Database, openDatabase } from '../../workers/db/client';
import { appWith, json, testEnv } from './helpers';

const env = testEnv;
const keys = JSON.parse(env.TEST_JWT_PRIVATE_KEYS) as { RS256: JWK; ES256: JWK };
const ISSUER = 'https://issuer.test';
const ADMIN_SUBJECT = 'user_platform_admin';

let db: Database;

beforeAll(async () => {
  db = await openDatabase(settingsSchema.parse(testEnv));
});

afterEach(() => {
  vi.useRealTimers();
});

/** The app in JWT mode against the stand-in issuer (or one of its separate key sets). */
const clerk = (overrides: Record<string, unknown> = {}) =>
  appWith({
    AUTH_MODE: 'clerk',
    JWKS_URL: env.TEST_JWKS_URL,
    JWT_ISSUER: ISSUER,
    PLATFORM_ADMIN_SUBJECTS: ADMIN_SUBJECT,
    ...overrides,
  });

/** A separate key set on the stand-in issuer: its own keys to rotate and its own JWKS cache entry. */
function keySet(name: string) {
  const base = new URL(env.TEST_JWKS_URL);
  const prefix = `${base.origin}/sets/${name}`;
  return {
    jwksUrl: `${prefix}/.well-known/jwks.json`,
    control: async (action: 'rotate' | 'retire-old' | 'stats') => {
      const res = await fetch(`${prefix}/${action}`, { method: action === 'stats' ? 'GET' : 'POST' });
      expect(res.status).toBe(200);
      // biome-ignore lint/suspicious/noExplicitAny: the stand-in's own small JSON answers.
      return (await res.json()) as any;
    },
  };
}

const now = () => Math.floor(Date.now() / 1000);
const newSubject = () => `user_${crypto.randomUUID().replaceAll('-', '')}`;

interface TokenOptions {
  key?: JWK;
  alg?: string;
  kid?: string | null;
  sub?: string | null;
  iss?: string;
  iat?: number;
  exp?: number | null;
  claims?: JWTPayload;
  header?: Record<string, unknown>;
}

/** A session token as the issuer would mint it; every part can be bent for a negative test. */
async function token(options: TokenOptions = {}): Promise<string> {
  const key = options.key ?? keys.RS256;
  const alg = options.alg ?? (key.alg as string);
  const iat = options.iat ?? now();
  const payload: JWTPayload = { iss: options.iss ?? ISSUER, iat, ...options.claims };
  if (options.sub !== null) payload.sub = options.sub ?? newSubject();
  if (options.exp !== null) payload.exp = options.exp ?? iat + 60;
  const kid = options.kid === undefined ? key.kid : options.kid;
  return new SignJWT(payload)
    .setProtectedHeader({ alg, typ: 'JWT', ...(kid === null ? {} : { kid }), ...options.header })
    .sign(await importJWK(key, alg));
}

const b64url = (text: string) => btoa(text).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');

async function call(app: ReturnType<typeof clerk>, bearer: string, requestId = `jwt-${crypto.randomUUID()}`) {
  const res = await app('/api/v1/api-keys', {
    headers: { Authorization: `Bearer ${bearer}`, 'X-Request-Id': requestId },
  });
  return Object.assign(res, { requestId });
}

async function auditRows(requestId: string) {
  const result = await db.execute<{
    action: string;
    success: boolean;
    actor_type: string;
    actor_id: string | null;
    details: Record<string, unknown>;
  }>(sql`SELECT action, success, actor_type, actor_id, details FROM audit_logs WHERE request_id = ${requestId}`);
  return result.rows;
}

async function expectRefused(res: Response & { requestId: string }, reason?: string) {
  expect(res.status).toBe(401);
  expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
  const body = await json(res);
  expect(body.error.code).toBe('unauthenticated');
  const rows = await auditRows(res.requestId);
  expect(rows).toHaveLength(1);
  expect(rows[0]).toMatchObject({ action: 'auth.failed', success: false, actor_type: 'user', actor_id: null });
  if (reason) expect(rows[0]?.details.reason).toBe(reason);
}

async function operatorRows(subject: string) {
  const result = await db.execute<{
    user_id: string;
    email: string | null;
    name: string | null;
    organization_id: string | null;
    organization_name: string | null;
    role: string | null;
    active: boolean;
  }>(sql`
    SELECT u.id AS user_id, u.email, u.name, m.organization_id, o.name AS organization_name, m.role,
           (u.active_organization_id = m.organization_id) AS active
    FROM users u
    LEFT JOIN organization_members m ON m.user_id = u.id
    LEFT JOIN organizations o ON o.id = m.organization_id
    WHERE u.subject = ${subject}`);
  return result.rows;
}

describe('a valid session token', () => {
  it('provisions the operator once, as owner of a Personal organization', async () => {
    const sub = newSubject();
    const app = clerk();
    const claims = { email: 'ada@example.test', name: 'Ada' };
    const first = await call(app, await token({ sub, claims }));
    expect(first.status).toBe(200);
    expect(await json(first)).toMatchObject({ items: [], total: 0 });
    const second = await call(app, await token({ sub, claims }));
    expect(second.status).toBe(200);

    const rows = await operatorRows(sub);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      email: 'ada@example.test',
      name: 'Ada',
      organization_name: 'Personal',
      role: 'owner',
      active: true,
    });
    const provisioned = await db.execute(
      sql`SELECT 1 FROM audit_logs WHERE action = 'user.provision' AND actor_id = ${rows[0]?.user_id ?? ''}`,
    );
    expect(provisioned.rows).toHaveLength(1);
  });

  it('provisions one user and one organization when first requests arrive together', async () => {
    const sub = newSubject();
    const app = clerk();
    const results = await Promise.all([1, 2, 3].map(async () => call(app, await token({ sub }))));
    expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
    const rows = await operatorRows(sub);
    expect(rows).toHaveLength(1);
    expect(rows[0]?.role).toBe('owner');
  });

  it('is accepted signed with the ES256 key too', async () => {
    const res = await call(clerk(), await token({ key: keys.ES256 }));
    expect(res.status).toBe(200);
  });

  it('is accepted up to the 10 s leeway after it expired', async () => {
    const res = await call(clerk(), await token({ iat: now() - 120, exp: now() - 5 }));
    expect(res.status).toBe(200);
  });
});

describe('a refused session token answers 401 and leaves an auth.failed row', () => {
  it('expired beyond the leeway', async () => {
    const res = await call(clerk(), await token({ iat: now() - 120, exp: now() - 30 }));
    await expectRefused(res, 'token_expired');
  });

  it('expired beyond a configured leeway of 0', async () => {
    const res = await call(clerk({ JWT_LEEWAY_SECONDS: '0' }), await token({ iat: now() - 120, exp: now() - 5 }));
    await expectRefused(res, 'token_expired');
  });

  it.each<[string, () => Promise<string>]>([
    ['from another issuer', () => token({ iss: 'https://evil.test' })],
    ['without an issuer', () => token({ claims: { iss: undefined } })],
    ['without a subject', () => token({ sub: null })],
    ['without an expiry', () => token({ exp: null })],
    ['not valid yet', () => token({ claims: { nbf: now() + 600 } })],
  ])('%s', async (_, make) => {
    await expectRefused(await call(clerk(), await make()));
  });

  it('signed by a key the JWKS does not hold', async () => {
    const { privateKey } = await generateKeyPair('RS256', { extractable: true });
    const stranger = { ...(await exportJWK(privateKey)), alg: 'RS256' };
    // Claiming the real key's id: the signature does not verify.
    await expectRefused(await call(clerk(), await token({ key: { ...stranger, kid: keys.RS256.kid } })));
    // An unknown key id: the issuer's JWKS has no such key.
    await expectRefused(await call(clerk(), await token({ key: { ...stranger, kid: 'stranger' } })));
    // No key id at all.
    await expectRefused(await call(clerk(), await token({ key: stranger, kid: null })));
    // Pointing at the attacker's own key set in the header changes nothing.
    await expectRefused(
      await call(
        clerk(),
        await token({ key: { ...stranger, kid: 'stranger' }, header: { jku: 'https://evil.test/jwks.json' } }),
      ),
    );
  });

  it('with alg none', async () => {
    const header = b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }));
    const payload = b64url(JSON.stringify({ iss: ISSUER, sub: newSubject(), iat: now(), exp: now() + 60 }));
    await expectRefused(await call(clerk(), `${header}.${payload}.`));
    await expectRefused(await call(clerk(), `${header}.${payload}`));
    const noneWithKid = b64url(JSON.stringify({ alg: 'none', kid: keys.RS256.kid }));
    await expectRefused(await call(clerk(), `${noneWithKid}.${payload}.`));
  });

  it('signed HS256 with the RSA public key as the HMAC secret', async () => {
    const { kty, n, e } = keys.RS256;
    const publicKey = await importJWK({ kty, n, e }, 'RS256');
    const pem = await exportSPKI(publicKey as CryptoKey);
    for (const secret of [pem, `${pem}\n`, JSON.stringify({ kty, n, e })]) {
      const forged = await new SignJWT({ iss: ISSUER, sub: newSubject() })
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: keys.RS256.kid })
        .setIssuedAt()
        .setExpirationTime('1m')
        .sign(new TextEncoder().encode(secret));
      await expectRefused(await call(clerk(), forged));
    }
  });

  it('when the local token is presented in JWT mode', async () => {
    await expectRefused(await call(clerk(), env.LOCAL_AUTH_TOKEN));
  });

  it.each<[string, string]>([
    ['a word', 'garbage'],
    ['three empty parts', '..'],
    ['three words', 'a.b.c'],
    ['a JSON header that is not an object', `${b64url('[1]')}.${b64url('{}')}.c2ln`],
    ['a header that is not JSON', `${b64url('{"alg":')}.${b64url('{}')}.c2ln`],
    ['a payload that is not JSON', `${b64url('{"alg":"RS256"}')}.${b64url('nope')}.c2ln`],
    ['a kid that is an object', `${b64url('{"alg":"RS256","kid":{"$ne":1}}')}.${b64url('{}')}.c2ln`],
    ['an unknown critical header', `${b64url('{"alg":"RS256","crit":["x"],"x":1}')}.${b64url('{}')}.c2ln`],
    ['five parts (an encrypted token)', 'a.b.c.d.e'],
    ['non-base64 characters', '%%%.***.$$$'],
    ['a very long token', `${'e'.repeat(6000)}.${'e'.repeat(6000)}.${'e'.repeat(6000)}`],
    ['an agent token', 'mca_not_an_operator_token'],
  ])('garbage: %s', async (_, bearer) => {
    const res = await call(clerk(), bearer);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
    expect((await auditRows(res.requestId)).map((r) => r.action)).toEqual(['auth.failed']);
  });

  it('garbage in other shapes of Authorization header', async () => {
    for (const header of ['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer  ', 'token abc', 'Bearer a b c', '\u00ff\u00fe']) {
      const res = await clerk()('/api/v1/api-keys', { headers: { Authorization: header } });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
    }
  });
});

describe('audience and authorized parties', () => {
  it('enforces JWT_AUDIENCE when set', async () => {
    const app = clerk({ JWT_AUDIENCE: 'mce-api' });
    expect((await call(app, await token({ claims: { aud: 'mce-api' } }))).status).toBe(200);
    expect((await call(app, await token({ claims: { aud: ['other', 'mce-api'] } }))).status).toBe(200);
    await expectRefused(await call(app, await token({ claims: { aud: 'other-api' } })));
    await expectRefused(await call(app, await token()));
    // Without the setting, the audience is not checked.
    expect((await call(clerk(), await token({ claims: { aud: 'other-api' } }))).status).toBe(200);
  });

  it('enforces JWT_AUTHORIZED_PARTIES when set', async () => {
    const app = clerk({ JWT_AUTHORIZED_PARTIES: 'https://ops.example.test, https://ops2.example.test' });
    expect((await call(app, await token({ claims: { azp: 'https://ops2.example.test' } }))).status).toBe(200);
    await expectRefused(await call(app, await token({ claims: { azp: 'https://evil.test' } })), 'unauthorized_party');
    await expectRefused(await call(app, await token()), 'unauthorized_party');
    await expectRefused(await call(app, await token({ claims: { azp: ['https://ops.example.test'] } })));
  });
});

describe('key rotation', () => {
  it('accepts a newly rotated key without a restart, and drops a retired one once the cache ages out', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    const set = keySet(`rotation-${crypto.randomUUID()}`);
    const app = clerk({ JWKS_URL: set.jwksUrl });
    const sub = newSubject();

    expect((await call(app, await token({ sub }))).status).toBe(200);
    expect((await call(app, await token({ sub }))).status).toBe(200);
    expect((await set.control('stats')).fetches).toBe(1);

    // Some time later the issuer rotates: the new key signs, the old one is still published.
    vi.setSystemTime(Date.now() + 60_000);
    const { private_jwk: rotated } = await set.control('rotate');
    expect((await call(app, await token({ sub, key: rotated }))).status).toBe(200);
    expect((await call(app, await token({ sub }))).status).toBe(200);
    expect((await set.control('stats')).fetches).toBe(2);

    // Retired: once the cached set is older than its maximum age, the old key stops working.
    await set.control('retire-old');
    vi.setSystemTime(Date.now() + 11 * 60_000);
    await expectRefused(await call(app, await token({ sub })));
    expect((await call(app, await token({ sub, key: rotated }))).status).toBe(200);
  });
});

describe('revoke-all', () => {
  it('refuses sessions issued before credentials_revoked_at and accepts newer ones', async () => {
    const sub = newSubject();
    const app = clerk();
    const old = await token({ sub, iat: now() - 120, exp: now() + 600 });
    expect((await call(app, old)).status).toBe(200);

    await db.execute(
      sql`UPDATE users SET credentials_revoked_at = now() - interval '30 seconds' WHERE subject = ${sub}`,
    );

    await expectRefused(await call(app, old), 'session_revoked');
    expect((await call(app, await token({ sub }))).status).toBe(200);
    // Another operator is untouched.
    expect((await call(app, await token({ iat: now() - 120, exp: now() + 600 }))).status).toBe(200);
  });
});

describe('settings for JWT mode', () => {
  it.each([
    ['JWKS_URL', { JWT_ISSUER: ISSUER }],
    ['JWT_ISSUER', { JWKS_URL: 'https://issuer.test/.well-known/jwks.json' }],
    ['JWKS_URL', { JWT_ISSUER: ISSUER, JWKS_URL: 'not a url' }],
    ['JWKS_URL', { JWT_ISSUER: ISSUER, JWKS_URL: 'ftp://issuer.test/jwks.json' }],
  ])('answers 500 config_invalid naming %s', async (name, overrides) => {
    vi.spyOn(console, 'error').mockImplementation(() => {});
    const res = await appWith({ AUTH_MODE: 'clerk', ...overrides })('/api/v1/api-keys', {
      headers: { Authorization: `Bearer ${await token()}` },
    });
    expect(res.status).toBe(500);
    const body = await json(res);
    expect(body.error.code).toBe('config_invalid');
    expect(body.error.message).toContain(name);
    expect(body.error.details.problems.map((p: { setting: string }) => p.setting)).toEqual([name]);
    expect(JSON.stringify(body)).not.toContain('not a url');
  });
});
