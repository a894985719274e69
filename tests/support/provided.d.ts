/** Values the test globalSetup hands to tests (and to the workerd bindings). */
declare module 'vitest' {
  export interface ProvidedContext {
    backendKind: 'pglite' | 'postgres';
    sqlEndpoint: string;
    sqlToken: string;
    /** A database with no migrations applied. */
    emptySqlEndpoint: string;
    /** A migrated database only the emergency-shutdown tests use. */
    isolatedSqlEndpoint: string;
    /** The migrated database behind a link the tests can cut (`faultControl` POST /down, /up). */
    faultySqlEndpoint: string;
    faultControl: string;
    /** JWKS of a stand-in OIDC issuer (tests/support/jwks.ts); `/sets/{name}/...` for separate sets. */
    jwksUrl: string;
    /** JSON `{RS256: JWK, ES256: JWK}`: the private keys behind jwksUrl, to sign test tokens. */
    jwtPrivateKeys: string;
    /** Upstash REST endpoint over a private redis-server (tests/support/redis.ts); token `upstashToken`. */
    upstashUrl: string;
    upstashToken: string;
    /** Upstash REST endpoint whose Redis is not there: every command fails (HTTP 503). */
    upstashDeadUrl: string;
    /** An HTTP server that accepts requests and never answers. */
    upstashHangUrl: string;
    /** The scripted gateway (tests/support/fake-gateway.ts): ws://127.0.0.1:port, append /<mode>/<name>. */
    fakeGatewayUrl: string;
  }
}

export {};
