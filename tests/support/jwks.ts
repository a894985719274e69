/**
 * A stand-in for an OIDC issuer's JWKS endpoint (Clerk's `/.well-known/jwks.json`), so the JWT
 * tests need no network. Started by the global setup; the private keys go to the tests, which
 * sign tokens with them inside workerd.
 *
 * Key sets: `/.well-known/jwks.json` is the root set; `/sets/{name}/.well-known/jwks.json` are
 * independent sets (a test that rotates keys uses its own, so others keep theirs). Every set starts
 * with the base RS256 and ES256 keys. Control, per set (prefix `/sets/{name}` or none):
 *   POST /rotate      a new RS256 key becomes current; old and new are both served; answers
 *                     `{kid, private_jwk}` (the new private key, for signing)
 *   POST /retire-old  only the current key is served from now on
 *   GET  /stats       `{fetches}`: how often the set's JWKS was fetched
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';

interface SigningKey {
  publicJwk: JWK;
  privateJwk: JWK;
}

interface KeySet {
  keys: SigningKey[];
  fetches: number;
}

export interface JwksServer {
  /** The root set's JWKS URL. */
  jwksUrl: string;
  /** The base private keys as JWKs (with `kid` and `alg`), by algorithm. */
  privateKeys: { RS256: JWK; ES256: JWK };
  close(): Promise<void>;
}

async function signingKey(alg: 'RS256' | 'ES256'): Promise<SigningKey> {
  const pair = await generateKeyPair(alg, { extractable: true });
  const publicJwk = await exportJWK(pair.publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return {
    publicJwk: { ...publicJwk, kid, alg, use: 'sig' },
    privateJwk: { ...(await exportJWK(pair.privateKey)), kid, alg },
  };
}

const ROUTE = /^(?:\/sets\/([A-Za-z0-9_-]{1,64}))?(\/\.well-known\/jwks\.json|\/rotate|\/retire-old|\/stats)$/;

export async function startJwksServer(): Promise<JwksServer> {
  const base = [await signingKey('RS256'), await signingKey('ES256')];
  const sets = new Map<string, KeySet>();
  const setNamed = (name: string): KeySet => {
    let set = sets.get(name);
    if (!set) {
      set = { keys: [...base], fetches: 0 };
      sets.set(name, set);
    }
    return set;
  };

  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const match = ROUTE.exec(new URL(req.url ?? '/', 'http://jwks.test').pathname);
    if (!match) return send(res, 404, { error: 'not found' });
    const set = setNamed(match[1] ?? '');
    const action = `${req.method} ${match[2]}`;
    switch (action) {
      case 'GET /.well-known/jwks.json':
        set.fetches += 1;
        return send(res, 200, { keys: set.keys.map((k) => k.publicJwk) });
      case 'POST /rotate': {
        const key = await signingKey('RS256');
        set.keys = [...set.keys, key];
        return send(res, 200, { kid: key.publicJwk.kid, private_jwk: key.privateJwk });
      }
      case 'POST /retire-old':
        set.keys = set.keys.slice(-1);
        return send(res, 200, { kids: set.keys.map((k) => k.publicJwk.kid) });
      case 'GET /stats':
        return send(res, 200, { fetches: set.fetches });
      default:
        return send(res, 405, { error: 'method not allowed' });
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: Error) => send(res, 500, { error: err.message }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const [rs256, es256] = base as [SigningKey, SigningKey];
  return {
    jwksUrl: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    privateKeys: { RS256: rs256.privateJwk, ES256: es256.privateJwk },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
