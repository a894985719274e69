/**
 * The client address rate limits are keyed by. Only CF-Connecting-IP counts: Cloudflare sets it
 * and strips client-sent copies, while X-Forwarded-For and friends are whatever the client says.
 */

/** IPv6 clients usually own a whole /64, so they are keyed by it; IPv4 by the address. */
export function clientKey(ip: string | null): string {
  if (!ip) return 'unknown';
  if (!ip.includes(':')) return ip;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped?.[1]) return mapped[1];
  const [head = '', tail = ''] = ip.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  // An embedded IPv4 tail (::ffff:1.2.3.4) takes two groups; only the first four matter here.
  const missing = 8 - left.length - right.length;
  const groups = ip.includes('::') ? [...left, ...Array(Math.max(0, missing)).fill('0'), ...right] : left;
  const prefix = groups.slice(0, 4).map((g) => (Number.parseInt(g, 16) || 0).toString(16));
  return `${prefix.join(':')}::/64`;
}
