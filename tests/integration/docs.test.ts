import { env, SELF } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { json } from './helpers';

describe('API reference', () => {
  it('serves the OpenAPI document generated from the route schemas', async () => {
    const res = await SELF.fetch('https://mce.test/api/v1/openapi.json');
    const doc = await json(res);
    expect(res.status).toBe(200);
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/healthz', '/readyz']));
    expect(doc.paths['/readyz'].get.responses['503']).toBeDefined();
  });

  it('serves /docs and its scripts from our own assets, no CDN', async () => {
    const page = await SELF.fetch('https://mce.test/docs');
    const html = await page.text();
    expect(page.status).toBe(200);
    const sources = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] ?? '');
    expect(sources.length).toBeGreaterThan(0);
    for (const src of sources) {
      expect(src.startsWith('/')).toBe(true);
      // The runtime serves these straight from the assets binding, before the Worker runs.
      const asset = await env.ASSETS.fetch(`https://mce.test${src}`);
      expect(asset.status, src).toBe(200);
      expect((await asset.text()).length).toBeGreaterThan(50);
    }
  });
});
