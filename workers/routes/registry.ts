/**
 * Routes anyone may call without a credential. Everything else under /api/v1 requires one; the
 * authorization matrix test reads this list to know which routes are exempt.
 */
export const PUBLIC_ROUTES: readonly { method: string; path: string }[] = [
  { method: 'GET', path: '/healthz' },
  { method: 'GET', path: '/readyz' },
  { method: 'GET', path: '/docs' },
  { method: 'GET', path: '/api/v1/openapi.json' },
  // No Authorization header: browsers cannot set one on a WebSocket. Its credential is the
  // single-use `?ticket=` from POST /api/v1/events/ticket, checked by the route itself.
  { method: 'GET', path: '/api/v1/events' },
];

export function isPublicRoute(method: string, path: string): boolean {
  return PUBLIC_ROUTES.some(
    (r) => (r.method === method || (method === 'HEAD' && r.method === 'GET')) && r.path === path,
  );
}
