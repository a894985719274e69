/** What tests on both sides of the scripted gateway (tests/support/fake-gateway.ts) agree on. */
export const FAKE_GATEWAY_TOKEN = 'fake-gateway-token-0123456789';
export const FAKE_GATEWAY_VERSION = '2026.9.6';
