import type { MiddlewareHandler } from 'hono';
import { loadSettings } from '../config';
import { AppError } from '../lib/errors';
import { log } from '../lib/log';
import type { AppEnv } from '../types';

/** Logged once per isolate: every later request still answers 500 naming the settings. */
let reported = false;

/** Loads the settings for every request; never fails by itself. */
export function settings(): MiddlewareHandler<AppEnv> {
  return async function settingsMiddleware(c, next) {
    const loaded = loadSettings(c.env);
    c.set('loaded', loaded);
    if (loaded.ok) c.set('settings', loaded.settings);
    else if (!reported) {
      reported = true;
      log('error', 'config.invalid', { problems: loaded.problems, request_id: c.var.requestId });
    }
    await next();
  };
}

/** Answers 500 naming the bad settings (never their values) instead of crashing the isolate. */
export function requireValidSettings(options: { except?: string[] } = {}): MiddlewareHandler<AppEnv> {
  const except = new Set(options.except ?? []);
  return async function requireValidSettingsMiddleware(c, next) {
    const loaded = c.var.loaded;
    if (!loaded.ok && !except.has(c.req.path)) {
      const names = loaded.problems.map((p) => p.setting);
      throw new AppError(500, 'config_invalid', `The server is misconfigured: check ${names.join(', ')}.`, {
        details: { problems: loaded.problems },
      });
    }
    await next();
  };
}
