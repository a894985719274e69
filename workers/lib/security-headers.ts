/**
 * The security headers, shared by the Worker's responses and the static assets' `_headers` file.
 * Overrides replace a default; a blank override is treated as unset, never as "off".
 */

/** Suits the dashboard and the API reference: everything from our own origin, nothing inline but styles. */
export const DEFAULT_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export const DEFAULT_HSTS = 'max-age=31536000; includeSubDomains';

export interface SecurityHeaderOverrides {
  CONTENT_SECURITY_POLICY?: string;
  STRICT_TRANSPORT_SECURITY?: string;
}

const cache = new WeakMap<object, [string, string][]>();
let defaults: [string, string][] | undefined;

export function securityHeaderValues(overrides?: SecurityHeaderOverrides): [string, string][] {
  if (!overrides) {
    defaults ??= build({});
    return defaults;
  }
  let values = cache.get(overrides);
  if (!values) {
    values = build(overrides);
    cache.set(overrides, values);
  }
  return values;
}

function build(overrides: SecurityHeaderOverrides): [string, string][] {
  const pick = (value: string | undefined, fallback: string) => (value?.trim() ? value.trim() : fallback);
  return [
    ['X-Content-Type-Options', 'nosniff'],
    ['X-Frame-Options', 'DENY'],
    ['Referrer-Policy', 'strict-origin-when-cross-origin'],
    ['Strict-Transport-Security', pick(overrides.STRICT_TRANSPORT_SECURITY, DEFAULT_HSTS)],
    ['Content-Security-Policy', pick(overrides.CONTENT_SECURITY_POLICY, DEFAULT_CSP)],
    ['Permissions-Policy', 'camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()'],
    ['Cross-Origin-Opener-Policy', 'same-origin'],
  ];
}
