import { defineConfig } from 'vitest/config';

/** The real OpenClaw gateway and the real Worker, as processes: `npm run test:interop`. */
export default defineConfig({
  test: {
    name: 'interop',
    environment: 'node',
    root: import.meta.dirname,
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**'],
    testTimeout: 120_000,
    hookTimeout: 240_000,
    fileParallelism: false,
  },
});
