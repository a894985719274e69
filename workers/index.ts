/** The Worker's entry points. Durable Object classes are re-exported here as they are added. */
import { createApp } from './app';

export { EventHub } from '../durable-objects/event-hub';

const app = createApp();

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
