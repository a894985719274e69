/** Operator session JWTs (Clerk or any OIDC issuer), verified against the issuer's JWKS. */
import { createRemoteJWKSet, errors, type JWTPayload, jwtVerify } from 'jose';
import type { Settings } from '../config';

/** Asymmetric algorithms only: `none` and HMAC (which would let a public key act as a secret) never pass. */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

const keySets = new Map<string, ReturnType<typeof createRemoteJWKSet>>();

/** One cached key set per JWKS URL per isolate; jose refetches it when it meets an unknown `kid` (rotation). */
function keySet(url: string) {
  let set = keySets.get(url);
  if (!set) {
    set = createRemoteJWKSet(new URL(url), {
      cooldownDuration: 30_000,
      cacheMaxAge: 10 * 60_000,
      timeoutDuration: 5_000,
    });
    keySets.set(url, set);
  }
  return set;
}

export interface SessionClaims {
  subject: string;
  issuedAt: number | null;
  email: string | null;
  name: string | null;
}

export type JwtResult = { ok: true; claims: SessionClaims } | { ok: false; reason: string };

export async function verifySessionJwt(token: string, settings: Settings): Promise<JwtResult> {
  if (!settings.JWKS_URL || !settings.JWT_ISSUER) return { ok: false, reason: 'jwt_not_configured' };
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, keySet(settings.JWKS_URL), {
      issuer: settings.JWT_ISSUER,
      audience: settings.JWT_AUDIENCE,
      algorithms: ALGORITHMS,
      clockTolerance: settings.JWT_LEEWAY_SECONDS,
      // `iat` is what revoke-all compares against, so a session without one is refused.
      requiredClaims: ['sub', 'exp', 'iat'],
    }));
  } catch (err) {
    if (err instanceof errors.JWTExpired) return { ok: false, reason: 'token_expired' };
    if (err instanceof errors.JOSEError) return { ok: false, reason: err.code.toLowerCase() };
    return { ok: false, reason: 'token_invalid' };
  }
  if ((payload.iat ?? 0) > Date.now() / 1000 + settings.JWT_LEEWAY_SECONDS)
    return { ok: false, reason: 'issued_in_future' };
  const azp = typeof payload.azp === 'string' ? payload.azp : undefined;
  if (settings.JWT_AUTHORIZED_PARTIES.length > 0 && (!azp || !settings.JWT_AUTHORIZED_PARTIES.includes(azp))) {
    return { ok: false, reason: 'unauthorized_party' };
  }
  const text = (v: unknown) => (typeof v === 'string' && v.length <= 320 ? v : null);
  return {
    ok: true,
    claims: {
      subject: String(payload.sub),
      issuedAt: payload.iat ?? null,
      email: text(payload.email),
      name: text(payload.name),
    },
  };
}
