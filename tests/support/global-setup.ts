/**
 * Starts what the workerd tests talk to: the SQL endpoint over a migrated test database, one over
 * an empty database, and one whose database link the tests can cut through `faultControl`; and a
 * stand-in OIDC issuer JWKS (`jwksUrl`, with the private keys in `jwtPrivateKeys`); an Upstash REST
 * endpoint over a private redis-server (`upstashUrl`), one over a port where no Redis listens
 * (`upstashDeadUrl`), an HTTP server that never answers (`upstashHangUrl`), and the scripted
 * gateway (`fakeGatewayUrl`).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { neon, neonConfig } from '@neondatabase/serverless';
import type { TestProject } from 'vitest/node';
import { migrate } from '../../cli/lib/migrations.ts';
import { postgresBackend } from '../../cli/sql-endpoint/backends.ts';
import { startSqlEndpoint } from '../../cli/sql-endpoint/server.ts';
import { startUpstashRest } from '../../cli/upstash-rest/server.ts';
import { createTestDatabase, testToken } from './databases.ts';
import { startFakeGateway } from './fake-gateway.ts';
import { startJwksServer } from './jwks.ts';
import { startHangingServer, startRedis, unusedPort } from './redis.ts';
import { startTcpProxy } from './tcp-proxy.ts';

export default async function setup(project: TestProject) {
  const token = testToken();
  const main = await createTestDatabase();
  const empty = await createTestDatabase();
  const mainEndpoint = await startSqlEndpoint({ backend: main.backend, token });
  const emptyEndpoint = await startSqlEndpoint({ backend: empty.backend, token });
  // Migrated and used by one test file alone: for deployment-wide switches (emergency shutdown)
  // that would disturb the other files sharing the main database.
  const isolated = await createTestDatabase();
  const isolatedEndpoint = await startSqlEndpoint({ backend: isolated.backend, token });

  for (const endpoint of [mainEndpoint, isolatedEndpoint]) {
    neonConfig.fetchEndpoint = endpoint.url;
    await migrate(neon('postgresql://test@localhost/test', { authToken: token }));
  }
  neonConfig.fetchEndpoint = mainEndpoint.url;

  // On PostgreSQL the cut sits between the endpoint and the database, as when the server stops;
  // PGlite lives inside the endpoint, so there the cut sits in front of the endpoint.
  let faulty: { url: string; close(): Promise<void> };
  let proxy: Awaited<ReturnType<typeof startTcpProxy>>;
  if (main.url) {
    const pgUrl = new URL(main.url);
    proxy = await startTcpProxy(pgUrl.hostname, Number(pgUrl.port || 5432));
    pgUrl.host = `127.0.0.1:${proxy.port}`;
    const backend = postgresBackend(pgUrl.toString());
    const endpoint = await startSqlEndpoint({ backend, token });
    faulty = {
      url: endpoint.url,
      close: async () => {
        await endpoint.close();
        await backend.close();
      },
    };
  } else {
    proxy = await startTcpProxy('127.0.0.1', mainEndpoint.port);
    faulty = { url: `http://127.0.0.1:${proxy.port}/sql`, close: async () => {} };
  }
  const control = createServer((req, res) => {
    if (req.url === '/down') proxy.cut();
    else if (req.url === '/up') proxy.restore();
    res.end('ok');
  });
  await new Promise<void>((resolve) => control.listen(0, '127.0.0.1', resolve));
  const jwks = await startJwksServer();
  const redis = await startRedis();
  const upstashToken = testToken();
  const upstash = await startUpstashRest({ redisUrl: redis.url, token: upstashToken });
  const upstashDead = await startUpstashRest({
    redisUrl: `redis://127.0.0.1:${await unusedPort()}`,
    token: upstashToken,
  });
  const upstashHang = await startHangingServer();
  const fakeGateway = await startFakeGateway();

  project.provide('backendKind', main.backend.kind);
  project.provide('sqlEndpoint', mainEndpoint.url);
  project.provide('sqlToken', token);
  project.provide('emptySqlEndpoint', emptyEndpoint.url);
  project.provide('isolatedSqlEndpoint', isolatedEndpoint.url);
  project.provide('faultySqlEndpoint', faulty.url);
  project.provide('faultControl', `http://127.0.0.1:${(control.address() as AddressInfo).port}`);
  project.provide('jwksUrl', jwks.jwksUrl);
  project.provide('jwtPrivateKeys', JSON.stringify(jwks.privateKeys));
  project.provide('upstashUrl', upstash.url);
  project.provide('upstashToken', upstashToken);
  project.provide('upstashDeadUrl', upstashDead.url);
  project.provide('upstashHangUrl', upstashHang.url);
  project.provide('fakeGatewayUrl', fakeGateway.url);

  return async () => {
    control.close();
    await fakeGateway.close();
    await upstashHang.close();
    await upstashDead.close();
    await upstash.close();
    await redis.stop();
    await jwks.close();
    await faulty.close();
    await proxy.close();
    await mainEndpoint.close();
    await emptyEndpoint.close();
    await isolatedEndpoint.close();
    await main.drop();
    await empty.drop();
    await isolated.drop();
  };
}
