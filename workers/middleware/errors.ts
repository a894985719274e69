/** The one place errors become responses: `{error: {code, message, details?}, request_id}`. */
import type { Context, ErrorHandler, NotFoundHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { z } from 'zod';
import { isDatabaseUnreachable } from '../db/client';
import { pgErrorCode } from '../db/errors';
import { AppError, errorBody } from '../lib/errors';
import { log } from '../lib/log';
import type { AppEnv } from '../types';

const CODES: Partial<Record<number, string>> = {
  400: 'bad_request',
  401: 'unauthenticated',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  409: 'conflict',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  422: 'validation_failed',
  429: 'rate_limited',
};

function respond(c: Context<AppEnv>, err: AppError) {
  const res = c.json(errorBody(err, c.var.requestId ?? ''), err.status);
  for (const [name, value] of Object.entries(err.headers ?? {})) res.headers.set(name, value);
  return res;
}

export const onError: ErrorHandler<AppEnv> = (err, c) => {
  if (err instanceof AppError) {
    if (err.status >= 500)
      log('error', 'http.error', { code: err.code, message: err.message, request_id: c.var.requestId });
    return respond(c, err);
  }
  if (err instanceof HTTPException && err.status < 500) {
    // Hono's own client errors (malformed JSON and the like) keep their message.
    const status = err.status as ContentfulStatusCode;
    return respond(c, new AppError(status, CODES[status] ?? 'bad_request', err.message || 'Bad request.'));
  }
  const sqlState = pgErrorCode(err);
  if (sqlState?.startsWith('22') || sqlState === '21000') {
    // Data exceptions: a value Postgres cannot take (NUL in text, a year 0 timestamp, ...).
    log('warn', 'http.invalid_input', { request_id: c.var.requestId, code: sqlState });
    return respond(c, new AppError(422, 'invalid_input', 'A value in the request is malformed or out of range.'));
  }
  if (sqlState === '23503') {
    return respond(
      c,
      new AppError(
        409,
        'conflict',
        'Something this change refers to was changed or deleted meanwhile; reload and retry.',
      ),
    );
  }
  if (isDatabaseUnreachable(err)) {
    log('error', 'db.unreachable', { request_id: c.var.requestId, error: (err as Error).message });
    return respond(
      c,
      new AppError(503, 'database_unavailable', 'The database is not reachable right now; try again shortly.', {
        headers: { 'Retry-After': '5' },
      }),
    );
  }
  log('error', 'http.unhandled_error', { request_id: c.var.requestId, error: describeError(err) });
  return respond(
    c,
    new AppError(500, 'internal_error', 'Something went wrong on our side. Quote the request id when reporting it.'),
  );
};

export const notFound: NotFoundHandler<AppEnv> = (c) =>
  respond(c, new AppError(404, 'not_found', `No route for ${c.req.method} ${c.req.path}.`));

/** zod-openapi's hook: a failed request schema becomes a 422 listing each field path. */
export function validationHook(
  result: { success: true } | { success: false; error: z.ZodError; target: string },
): void {
  if (result.success) return;
  throw new AppError(422, 'validation_failed', 'The request is not valid.', {
    details: {
      location: result.target,
      issues: result.error.issues.map((issue) => ({
        path: issue.path.map(String).join('.'),
        message: issue.message,
      })),
    },
  });
}

/**
 * What an unexpected error may put in a log line. Query errors name the SQL but never its
 * parameters (they can hold secrets and token hashes); the database's own error comes from `cause`.
 */
function describeError(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { message: String(err) };
  const cause = err.cause instanceof Error ? err.cause : undefined;
  const withoutParams = (message: string) => message.split('\nparams:')[0]?.slice(0, 2000);
  return {
    name: err.name,
    message: withoutParams(err.message),
    code: (cause as { code?: unknown } | undefined)?.code ?? (err as { code?: unknown }).code,
    cause: cause ? withoutParams(cause.message) : undefined,
    // Frames only: the stack's first lines repeat the message, parameters included.
    stack: err.stack
      ?.split('\n')
      .filter((line) => line.trimStart().startsWith('at '))
      .slice(0, 8)
      .join('\n'),
  };
}
