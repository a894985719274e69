import type { Context } from 'hono';
import type { ActivityEvent } from '../services/activity';
import { publishEvents } from '../services/events';
import type { AppEnv } from '../types';

/** After a handler's statement committed: hand its activity rows to the event hub without delaying the response. */
export function publishActivity(c: Context<AppEnv>, events: ActivityEvent[]): void {
  const organizationId = events[0]?.organization_id;
  if (!organizationId) return;
  const publishing = publishEvents(c.env, organizationId, events);
  try {
    c.executionCtx.waitUntil(publishing);
  } catch {
    // No execution context (an app driven directly, as in unit tests): the publish still runs, and
    // it never rejects, so nothing is left unhandled.
  }
}
