import { randomBytes } from 'node:crypto';
import { cloudflareTest } from '@cloudflare/vitest-plugin';
import { defineConfig } from 'vitest/config';

/**
 * One deployment's secrets for the whole run: the config callback runs once per test file, and
 * deployment-wide sealed data (the gateway device identity) must open in every file.
 */
const LOCAL_AUTH_TOKEN = randomBytes(48).toString('base64url');
const ENCRYPTION_KEY = randomBytes(32).toString('base64');

/** The workerd side: the real Worker bindings plus the URLs of what the global setup started. */
const workerd = () =>
  cloudflareTest(({ inject }) => ({
    wrangler: { configPath: './wrangler.toml' },
    miniflare: {
      bindings: {
        ENVIRONMENT: 'test',
        DATABASE_URL: 'postgresql://test@localhost/test',
        DATABASE_HTTP_ENDPOINT: inject('sqlEndpoint'),
        DATABASE_HTTP_TOKEN: inject('sqlToken'),
        LOCAL_AUTH_TOKEN,
        ENCRYPTION_KEY,
        TEST_EMPTY_SQL_ENDPOINT: inject('emptySqlEndpoint'),
        TEST_ISOLATED_SQL_ENDPOINT: inject('isolatedSqlEndpoint'),
        TEST_FAULTY_SQL_ENDPOINT: inject('faultySqlEndpoint'),
        TEST_FAULT_CONTROL: inject('faultControl'),
        TEST_JWKS_URL: inject('jwksUrl'),
        TEST_JWT_PRIVATE_KEYS: inject('jwtPrivateKeys'),
        TEST_UPSTASH_URL: inject('upstashUrl'),
        TEST_UPSTASH_TOKEN: inject('upstashToken'),
        TEST_UPSTASH_DEAD_URL: inject('upstashDeadUrl'),
        TEST_UPSTASH_HANG_URL: inject('upstashHangUrl'),
        TEST_FAKE_GATEWAY_URL: inject('fakeGatewayUrl'),
        // Gateway lifecycles on a test's time scale (the scripted gateway answers at once).
        GATEWAY_CONNECT_TIMEOUT_MS: '3000',
        AGENT_CHECKIN_TIMEOUT_SECONDS: '2',
        AGENT_PROVISION_RETRY_MS: '200',
      },
    },
  }));

/** Worker code runs inside workerd (workers, faults); cli/ and the endpoint run in Node. */
export default defineConfig({
  test: {
    projects: [
      {
        plugins: [workerd()],
        test: {
          name: 'workers',
          include: ['tests/unit/**/*.test.ts', 'tests/integration/**/*.test.ts'],
          globalSetup: ['tests/support/global-setup.ts'],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        // `npm run test:faults`: long-running fault and fuzz tests, on databases of their own.
        plugins: [workerd()],
        test: {
          name: 'faults',
          include: ['tests/faults/**/*.test.ts'],
          globalSetup: ['tests/support/global-setup.ts'],
          testTimeout: 600_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'node',
          environment: 'node',
          include: ['tests/node/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
