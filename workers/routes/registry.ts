/**
 * Routes anyone may call without a credential. Everything else under /api/v1 requires one; the
 * authorization matrix test reads this list to know which routes are exempt.
 */
export interface PublicRoute {
  method: string;
  /** OpenAPI-style: `{name}` matches one path segment. */
  path: string;
  /** The route reads its body itself (any content type, its own size limit). */
  rawBody?: true;
}

export const PUBLIC_ROUTES: readonly PublicRoute[] = [
  { method: 'GET', path: '/healthz' },
  { method: 'GET', path: '/readyz' },
  { method: 'GET', path: '/docs' },
  { method: 'GET', path: '/api/v1/openapi.json' },
  // No Authorization header: browsers cannot set one on a WebSocket. Its credential is the
  // single-use `?ticket=` from POST /api/v1/events/ticket, checked by the route itself.
  { method: 'GET', path: '/api/v1/events' },
  { method: 'GET', path: '/api/v1/gateways/{id}/events' },
  // Webhook senders have no credential; a signature (when the webhook has a secret) stands in for one.
  { method: 'POST', path: '/api/v1/boards/{id}/webhooks/{webhook_id}', rawBody: true },
];

const patterns = PUBLIC_ROUTES.map((route) => ({
  route,
  regex: new RegExp(`^${route.path.replace(/\{[^}]+\}/g, '[^/]+')}$`),
}));

export function publicRoute(method: string, path: string): PublicRoute | undefined {
  return patterns.find(
    ({ route, regex }) =>
      (route.method === method || (method === 'HEAD' && route.method === 'GET')) && regex.test(path),
  )?.route;
}

export function isPublicRoute(method: string, path: string): boolean {
  return publicRoute(method, path) !== undefined;
}
