import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'postgresql',
  schema: [
    './workers/db/schema.ts',
    './workers/db/schema-domain.ts',
    './workers/db/schema-edge.ts',
    './workers/db/schema-ops.ts',
    './workers/db/schema-gateways.ts',
  ],
  out: './migrations',
});
