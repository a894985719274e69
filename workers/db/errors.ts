/** Reading Postgres errors through the driver and drizzle. */

export const UNIQUE_VIOLATION = '23505';

/** The Postgres error code behind a driver error (drizzle wraps the driver's error as `cause`). */
export function pgErrorCode(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; depth++) {
    if (typeof e.code === 'string') return e.code;
    e = e.cause as typeof e;
  }
  return undefined;
}
