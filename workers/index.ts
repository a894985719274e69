/** The Worker's entry points. Durable Object classes are re-exported here as they are added. */
import { createApp } from './app';

const app = createApp();

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
