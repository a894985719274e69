/** The Worker's entry points: HTTP, queue consumers and cron triggers; Durable Object classes re-exported. */
import { createApp } from './app';
import { dispatchScheduled } from './cron/dispatcher';
import { consumeWebhookDeliveries } from './queues/webhook-deliveries';

export { EventHub } from '../durable-objects/event-hub';
export { GatewaySession } from '../durable-objects/gateway-session';
export { RateLimiter } from '../durable-objects/rate-limiter';

const app = createApp();

export default {
  fetch: app.fetch,
  queue: consumeWebhookDeliveries,
  scheduled: dispatchScheduled,
} satisfies ExportedHandler<Env>;
