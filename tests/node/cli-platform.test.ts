/**
 * `mce emergency-shutdown` and `mce rotate-key` as an operator runs them: a child process talking HTTP.
 * The server here stands in for the Worker's four admin endpoints only (auth, state, batch progression,
 * unreadable rows); the Worker's own side of them is tested in tests/integration.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseDevVars } from '../../cli/lib/dev-vars.ts';
import { type Run, runMce } from '../support/mce.ts';

const TOKEN = randomBytes(32).toString('base64url');
const CURRENT = 'c0ffee0000000001';
const PREVIOUS = 'c0ffee0000000000';
/** A version neither configured key opens. */
const LOST = 'deadbeef00000000';

/** What the stand-in Worker holds and saw. */
interface WorkerState {
  shutdown: { enabled: boolean; reason: string | null; updated_by: string | null; updated_at: string | null };
  /** One key version per sealed secret, in id order. */
  sealed: string[];
  rotateBodies: unknown[];
  /** Simulates an instance still on the old key: seals one more secret under PREVIOUS after rotation. */
  stragglerAfterRotation: boolean;
  tokensSeen: string[];
}

let state: WorkerState;
let server: Server;
let url: string;
let dir: string;

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

function fail(res: ServerResponse, status: number, code: string, message: string, details?: unknown): void {
  send(res, status, { error: { code, message, ...(details ? { details } : {}) }, request_id: 'req-test-1' });
}

function keyStatus() {
  const versions: Record<string, number> = {};
  for (const v of state.sealed) versions[v] = (versions[v] ?? 0) + 1;
  return { current_version: CURRENT, versions, remaining: state.sealed.filter((v) => v !== CURRENT).length };
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let text = '';
  for await (const chunk of req) text += chunk;
  return JSON.parse(text || 'null');
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const auth = req.headers.authorization ?? '';
  state.tokensSeen.push(auth);
  if (auth !== `Bearer ${TOKEN}`) return fail(res, 401, 'unauthenticated', 'A valid bearer token is required.');
  const route = `${req.method} ${req.url}`;
  if (route === 'GET /api/v1/admin/emergency-shutdown') return send(res, 200, state.shutdown);
  if (route === 'POST /api/v1/admin/emergency-shutdown') {
    const body = (await readJson(req)) as { enabled?: unknown; reason?: unknown };
    if (typeof body?.enabled !== 'boolean') {
      return fail(res, 422, 'validation_failed', 'The request is not valid.', {
        issues: [{ path: 'enabled', message: 'Required' }],
      });
    }
    state.shutdown = {
      enabled: body.enabled,
      reason: typeof body.reason === 'string' && body.reason ? body.reason : null,
      updated_by: 'local-operator',
      updated_at: '2026-01-02T03:04:05.000000Z',
    };
    return send(res, 200, state.shutdown);
  }
  if (route === 'GET /api/v1/admin/encryption') return send(res, 200, keyStatus());
  if (route === 'POST /api/v1/admin/encryption/rotate') {
    const body = (await readJson(req)) as { batch_size?: number };
    state.rotateBodies.push(body);
    const size = body?.batch_size ?? 100;
    if (!Number.isInteger(size) || size < 1 || size > 500) {
      return fail(res, 422, 'validation_failed', 'The request is not valid.', {
        issues: [{ path: 'batch_size', message: 'Out of range' }],
      });
    }
    // Like rotateBatch: the first `size` rows not under the current key, in id order.
    const picked = state.sealed.flatMap((v, i) => (v === CURRENT ? [] : [i])).slice(0, size);
    let resealed = 0;
    let unreadable = 0;
    for (const i of picked) {
      if (state.sealed[i] === PREVIOUS) {
        state.sealed[i] = CURRENT;
        resealed += 1;
      } else unreadable += 1;
    }
    const { remaining } = keyStatus();
    if (remaining === 0 && state.stragglerAfterRotation) state.sealed.push(PREVIOUS);
    return send(res, 200, { resealed, unreadable, remaining });
  }
  return fail(res, 404, 'not_found', `No route for ${route}.`);
}

function mce(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const { MCE_TOKEN: _t, MCE_URL: _u, MCE_DEV_VARS: _d, PORT: _p, ...inherited } = process.env;
  return runMce(args, { ...inherited, MCE_DEV_VARS: join(dir, 'none.dev.vars'), MCE_TOKEN: TOKEN, ...env });
}

/** Runs against the stand-in Worker and checks the token never reaches the terminal. */
async function admin(...args: string[]): Promise<Run> {
  const run = await mce([...args, '--url', url]);
  expect(run.stdout + run.stderr).not.toContain(TOKEN);
  return run;
}

const versionOf = (key: string) => createHash('sha256').update(Buffer.from(key, 'base64')).digest('hex').slice(0, 16);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mce-platform-'));
  server = createServer((req, res) => {
    handle(req, res).catch((err: Error) => fail(res, 500, 'internal_error', err.message));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  state = {
    shutdown: { enabled: false, reason: null, updated_by: null, updated_at: null },
    sealed: [],
    rotateBodies: [],
    stragglerAfterRotation: false,
    tokensSeen: [],
  };
});

describe('mce emergency-shutdown', () => {
  it('status shows the switch off, for humans and as JSON', async () => {
    const human = await admin('emergency-shutdown', 'status');
    expect(human.code).toBe(0);
    expect(human.stdout).toContain('Emergency shutdown is OFF');

    const json = await admin('emergency-shutdown', 'status', '--json');
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(state.shutdown);
    expect(state.tokensSeen).toEqual([`Bearer ${TOKEN}`, `Bearer ${TOKEN}`]);
  });

  it('on --reason turns it on with the reason, and off turns it off again', async () => {
    const on = await admin('emergency-shutdown', 'on', '--reason', 'incident 42', '--json');
    expect(on.code).toBe(0);
    expect(state.shutdown).toMatchObject({ enabled: true, reason: 'incident 42' });
    expect(JSON.parse(on.stdout)).toEqual(state.shutdown);

    const status = await admin('emergency-shutdown', 'status');
    expect(status.stdout).toContain('Emergency shutdown is ON');
    expect(status.stdout).toContain('Reason: incident 42');
    expect(status.stdout).toContain('local-operator');

    const off = await admin('emergency-shutdown', 'off');
    expect(off.code).toBe(0);
    expect(off.stdout).toContain('Emergency shutdown is now OFF');
    expect(state.shutdown.enabled).toBe(false);
  });

  it('fails with the API message and code when the token is refused, without printing either token', async () => {
    const wrong = randomBytes(24).toString('base64url');
    const run = await mce(['emergency-shutdown', 'on', '--url', url], { MCE_TOKEN: wrong });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('A valid bearer token is required. (unauthenticated, HTTP 401, request req-test-1)');
    expect(run.stdout + run.stderr).not.toContain(wrong);
    expect(state.shutdown.enabled).toBe(false);

    const json = await mce(['emergency-shutdown', 'status', '--url', url, '--json'], { MCE_TOKEN: wrong });
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout).error).toContain('unauthenticated');
  });

  it('uses LOCAL_AUTH_TOKEN from .dev.vars when MCE_TOKEN is not set', async () => {
    const path = join(dir, 'token.dev.vars');
    writeFileSync(path, `LOCAL_AUTH_TOKEN=${TOKEN}\n`, { mode: 0o600 });
    const run = await mce(['emergency-shutdown', 'status', '--url', url], { MCE_TOKEN: '', MCE_DEV_VARS: path });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('OFF');
    expect(state.tokensSeen).toEqual([`Bearer ${TOKEN}`]);
  });

  it('sends the local token nowhere but a local Worker, and no token over plain http to another host', async () => {
    const path = join(dir, 'remote.dev.vars');
    writeFileSync(path, `LOCAL_AUTH_TOKEN=${TOKEN}\n`, { mode: 0o600 });
    const noToken = await mce(['emergency-shutdown', 'status', '--url', 'https://mce.invalid'], {
      MCE_TOKEN: '',
      MCE_DEV_VARS: path,
    });
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toContain('no token for https://mce.invalid');

    const plain = await mce(['emergency-shutdown', 'status', '--url', 'http://mce.invalid']);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toContain('refusing to send the admin token over plain http');
  });

  it('says the Worker cannot be reached when nothing listens', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const run = await mce(['emergency-shutdown', 'status', '--url', `http://127.0.0.1:${port}`]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`cannot reach the Worker at http://127.0.0.1:${port}`);
  });

  it('rejects a missing or unknown action, extra words and --reason with status', async () => {
    for (const args of [[], ['maybe'], ['on', 'db breach']]) {
      const run = await admin('emergency-shutdown', ...args);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain('usage: mce emergency-shutdown on|off|status');
    }
    const reason = await admin('emergency-shutdown', 'status', '--reason', 'x');
    expect(reason.code).toBe(1);
    expect(reason.stderr).toContain('--reason goes with on or off');
    expect(state.tokensSeen).toEqual([]);
  });
});

describe('mce rotate-key status and run', () => {
  it('status prints the versions map, for humans and as JSON', async () => {
    state.sealed = [CURRENT, PREVIOUS, PREVIOUS];
    const human = await admin('rotate-key', 'status');
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`Current key version: ${CURRENT}`);
    expect(human.stdout).toContain(`  ${PREVIOUS}: 2`);
    expect(human.stdout).toContain(`  ${CURRENT} (current): 1`);
    expect(human.stdout).toContain('2 secret(s) not yet under the current key');

    const json = await admin('rotate-key', 'status', '--json');
    expect(JSON.parse(json.stdout)).toEqual({
      current_version: CURRENT,
      versions: { [CURRENT]: 1, [PREVIOUS]: 2 },
      remaining: 2,
    });
  });

  it('run repeats batches until nothing remains, then says PREVIOUS can go', async () => {
    state.sealed = [PREVIOUS, CURRENT, PREVIOUS, PREVIOUS, PREVIOUS, PREVIOUS];
    const run = await admin('rotate-key', 'run', '--batch-size', '2');
    expect(run.code).toBe(0);
    expect(state.rotateBodies).toEqual([{ batch_size: 2 }, { batch_size: 2 }, { batch_size: 2 }]);
    expect(state.sealed.every((v) => v === CURRENT)).toBe(true);
    expect(run.stdout).toContain('5 secret(s) to re-seal');
    expect(run.stdout).toContain('batch 1: re-sealed 2, 3 remaining');
    expect(run.stdout).toContain('batch 3: re-sealed 1, 0 remaining');
    expect(run.stdout).toContain('Re-sealed 5 secret(s) in 3 batch(es)');
    expect(run.stdout).toContain(`  ${CURRENT} (current): 6`);
    expect(run.stdout).toContain('npx wrangler secret delete ENCRYPTION_KEY_PREVIOUS');
  });

  it('run --json prints one document with the totals and the final versions', async () => {
    state.sealed = [PREVIOUS, PREVIOUS, PREVIOUS];
    const run = await admin('rotate-key', 'run', '--json');
    expect(run.code).toBe(0);
    // The Worker's default batch size applies when none is given.
    expect(state.rotateBodies).toEqual([{}]);
    expect(JSON.parse(run.stdout)).toEqual({
      resealed: 3,
      batches: 1,
      current_version: CURRENT,
      versions: { [CURRENT]: 3 },
      remaining: 0,
    });
  });

  it('run sends no batch when nothing is left to re-seal', async () => {
    state.sealed = [CURRENT];
    const run = await admin('rotate-key', 'run');
    expect(run.code).toBe(0);
    expect(state.rotateBodies).toEqual([]);
    expect(run.stdout).toContain('Re-sealed 0 secret(s) in 0 batch(es)');
  });

  it('run stops with the unreadable count when a batch makes no progress, and keeps PREVIOUS', async () => {
    state.sealed = [PREVIOUS, LOST, PREVIOUS, LOST];
    const run = await admin('rotate-key', 'run', '--batch-size', '10');
    expect(run.code).toBe(1);
    // The first batch re-seals the readable two; the second finds only the lost ones and the loop stops there.
    expect(state.rotateBodies).toHaveLength(2);
    expect(run.stderr).toContain('a batch re-sealed nothing and 2 secret(s) remain');
    expect(run.stderr).toContain('2 could not be opened with ENCRYPTION_KEY or ENCRYPTION_KEY_PREVIOUS');
    expect(run.stderr).toContain(`${LOST}: 2`);
    expect(run.stdout + run.stderr).not.toContain('secret delete ENCRYPTION_KEY_PREVIOUS');
  });

  it('run points past unreadable rows that fill a whole batch', async () => {
    state.sealed = [LOST, LOST, PREVIOUS];
    const run = await admin('rotate-key', 'run', '--batch-size', '2', '--json');
    expect(run.code).toBe(1);
    expect(state.rotateBodies).toHaveLength(1);
    const { error } = JSON.parse(run.stdout) as { error: string };
    expect(error).toContain('1 more lie past them: a larger --batch-size gets to those');
  });

  it('run fails when the final check still finds secrets under another version', async () => {
    state.sealed = [PREVIOUS];
    state.stragglerAfterRotation = true;
    const run = await admin('rotate-key', 'run');
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`1 secret(s) are still under other key versions (${PREVIOUS}: 1)`);
    expect(run.stdout).not.toContain('no longer needed');
  });

  it('rejects a bad --batch-size, options of other actions and unknown actions before any request', async () => {
    for (const size of ['0', '501', 'abc', '2.5']) {
      const run = await admin('rotate-key', 'run', '--batch-size', size);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`--batch-size must be a whole number from 1 to 500, not ${size}`);
    }
    const misplaced = await admin('rotate-key', 'status', '--write-dev-vars');
    expect(misplaced.stderr).toContain('--write-dev-vars goes with generate');
    const unknown = await admin('rotate-key', 'spin');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('usage: mce rotate-key generate');
    expect(state.tokensSeen).toEqual([]);
  });
});

describe('mce rotate-key generate', () => {
  it('prints a fresh 32-byte key, its version and the production steps in order', async () => {
    const run = await mce(['rotate-key', 'generate', '--json']);
    expect(run.code).toBe(0);
    const { key, version, next_steps } = JSON.parse(run.stdout) as {
      key: string;
      version: string;
      next_steps: string[];
    };
    expect(Buffer.from(key, 'base64')).toHaveLength(32);
    expect(version).toBe(versionOf(key));
    expect(next_steps[0]).toContain('npx wrangler secret put ENCRYPTION_KEY_PREVIOUS');
    expect(next_steps[1]).toContain('npx wrangler secret put ENCRYPTION_KEY ');
    expect(next_steps[2]).toContain('rotate-key run');

    const again = await mce(['rotate-key', 'generate']);
    expect(again.code).toBe(0);
    expect(again.stdout).not.toContain(key);
    const printed = /^ {2}([A-Za-z0-9+/]{43}=)$/m.exec(again.stdout)?.[1] ?? '';
    expect(Buffer.from(printed, 'base64')).toHaveLength(32);
    expect(again.stdout).toContain(`version ${versionOf(printed)}`);
    expect(again.stdout.indexOf('secret put ENCRYPTION_KEY_PREVIOUS')).toBeLessThan(
      again.stdout.indexOf('secret put ENCRYPTION_KEY '),
    );
  });

  it('--write-dev-vars moves the key to ENCRYPTION_KEY_PREVIOUS, writes a new one and keeps the file private', async () => {
    const path = join(dir, 'rotate.dev.vars');
    const old = randomBytes(32).toString('base64');
    writeFileSync(path, `# mine\nLOCAL_AUTH_TOKEN=${TOKEN}\nENCRYPTION_KEY=${old}\nOTHER="kept"\n`, { mode: 0o600 });

    const run = await mce(['rotate-key', 'generate', '--write-dev-vars'], { MCE_DEV_VARS: path });
    expect(run.code).toBe(0);
    const text = readFileSync(path, 'utf8');
    const vars = parseDevVars(text);
    expect(vars.ENCRYPTION_KEY_PREVIOUS).toBe(old);
    expect(vars.ENCRYPTION_KEY).not.toBe(old);
    expect(Buffer.from(vars.ENCRYPTION_KEY ?? '', 'base64')).toHaveLength(32);
    expect(vars).toMatchObject({ LOCAL_AUTH_TOKEN: TOKEN, OTHER: 'kept' });
    expect(text.startsWith('# mine\n')).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);

    expect(run.stdout).toContain(`version ${versionOf(vars.ENCRYPTION_KEY ?? '')}`);
    expect(run.stdout).toContain(`the old one (version ${versionOf(old)}) is now ENCRYPTION_KEY_PREVIOUS`);
    expect(run.stdout).toContain('restart `npm start`');
    // The keys stay in the file; the terminal gets versions only.
    expect(run.stdout + run.stderr).not.toContain(vars.ENCRYPTION_KEY);
    expect(run.stdout + run.stderr).not.toContain(old);
  });

  it('--write-dev-vars makes a too-open .dev.vars private', async () => {
    const path = join(dir, 'open.dev.vars');
    writeFileSync(path, `ENCRYPTION_KEY=${randomBytes(32).toString('base64')}\n`);
    chmodSync(path, 0o644);
    const run = await mce(['rotate-key', 'generate', '--write-dev-vars', '--json'], { MCE_DEV_VARS: path });
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ written: path, version: expect.stringMatching(/^[0-9a-f]{16}$/) });
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('--write-dev-vars refuses to overwrite a PREVIOUS left from an unfinished rotation', async () => {
    const path = join(dir, 'unfinished.dev.vars');
    const text = `ENCRYPTION_KEY=${randomBytes(32).toString('base64')}\nENCRYPTION_KEY_PREVIOUS=${randomBytes(32).toString('base64')}\n`;
    writeFileSync(path, text, { mode: 0o600 });
    const run = await mce(['rotate-key', 'generate', '--write-dev-vars'], { MCE_DEV_VARS: path });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('already has an ENCRYPTION_KEY_PREVIOUS');
    expect(readFileSync(path, 'utf8')).toBe(text);
  });

  it('--write-dev-vars fails when there is no key to rotate', async () => {
    const run = await mce(['rotate-key', 'generate', '--write-dev-vars'], { MCE_DEV_VARS: join(dir, 'missing') });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('has no ENCRYPTION_KEY to rotate');
  });
});
