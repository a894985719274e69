import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { securityHeaderValues } from '../../workers/lib/security-headers.ts';
import { ROOT } from '../lib/dev-vars.ts';
import type { Output } from '../lib/output.ts';

export const ASSETS_DIR = join(ROOT, 'dist', 'public');

export const buildAssetsHelp = `mce build-assets
  Writes the Worker's static assets to dist/public: static/, the API reference's files from
  swagger-ui-dist, the dashboard (built first with \`npm run build:dashboard\` when package.json defines it),
  and a _headers file.`;

const SWAGGER_FILES = ['swagger-ui-bundle.js', 'swagger-ui.css'];

export function buildAssetsCommand(out: Output): void {
  rmSync(ASSETS_DIR, { recursive: true, force: true });
  mkdirSync(ASSETS_DIR, { recursive: true });
  cpSync(join(ROOT, 'static'), ASSETS_DIR, { recursive: true });

  const swaggerDir = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
  for (const file of SWAGGER_FILES) cpSync(join(swaggerDir, file), join(ASSETS_DIR, 'api-docs', file));

  const scripts = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).scripts ?? {};
  if (scripts['build:dashboard']) execFileSync('npm', ['run', 'build:dashboard'], { cwd: ROOT, stdio: 'inherit' });
  const dashboardBuild = join(ROOT, 'dashboard', 'dist');
  if (existsSync(dashboardBuild)) cpSync(dashboardBuild, ASSETS_DIR, { recursive: true });

  // Assets are served without running the Worker, so they get the same headers this way.
  const headers = securityHeaderValues().map(([name, value]) => `  ${name}: ${value}`);
  writeFileSync(join(ASSETS_DIR, '_headers'), `/*\n${headers.join('\n')}\n`);
  out.result(`Assets written to ${ASSETS_DIR}`, { directory: ASSETS_DIR });
}
