/**
 * One per rule and client (`idFromName(key)`): a fixed window that starts at the client's first
 * request. A Durable Object runs one method at a time and each method below reads and writes its
 * window without awaiting in between, so concurrent requests are counted exactly.
 *
 * The window is kept in SQLite storage, so eviction forgets nothing while it matters; an alarm at
 * the window's end deletes it, so idle clients cost nothing.
 */
import { DurableObject } from 'cloudflare:workers';
import type { RateDecision, RateRule } from '../workers/lib/rate-limiter';

interface Window {
  startedAt: number;
  windowMs: number;
  count: number;
}

const KEY = 'window';

export class RateLimiter extends DurableObject<Env> {
  /** Counts one request (or none, for a peek) and decides. */
  async check(rule: RateRule, count: boolean): Promise<RateDecision> {
    const now = Date.now();
    const windowMs = rule.windowSeconds * 1000;
    let window = this.ctx.storage.kv.get<Window>(KEY);
    const fresh = !window || now >= window.startedAt + window.windowMs;
    if (!window || fresh) window = { startedAt: now, windowMs, count: 0 };
    if (count) {
      window.count += 1;
      this.ctx.storage.kv.put(KEY, window);
    }
    const decision: RateDecision = {
      allowed: count ? window.count <= rule.limit : window.count < rule.limit,
      limit: rule.limit,
      remaining: Math.max(0, rule.limit - window.count),
      resetAt: window.startedAt + window.windowMs,
    };
    // Awaited after the decision: only the counting above must be free of interleaving.
    if (count && fresh) await this.ctx.storage.setAlarm(decision.resetAt);
    return decision;
  }

  override async alarm(): Promise<void> {
    const window = this.ctx.storage.kv.get<Window>(KEY);
    if (window && Date.now() < window.startedAt + window.windowMs) {
      await this.ctx.storage.setAlarm(window.startedAt + window.windowMs);
      return;
    }
    await this.ctx.storage.deleteAll();
  }
}
