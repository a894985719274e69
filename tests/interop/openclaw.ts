/**
 * A real OpenClaw gateway from the `openclaw` package (tests/interop/node_modules), run as a child
 * process with its own HOME: token auth, loopback by default. `stop()` kills it (SIGKILL, as a
 * crash would), `start()` brings it back on the same port with the same state.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectDirect } from './direct-client.ts';

const BIN = join(import.meta.dirname, 'node_modules', '.bin', 'openclaw');

export interface OpenclawGateway {
  url: string;
  token: string;
  home: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Runs the `openclaw` CLI against this gateway's HOME (e.g. `devices approve <id>`). */
  cli(args: string[]): Promise<{ code: number; output: string }>;
  close(): Promise<void>;
}

export interface GatewayOptions {
  port: number;
  token: string;
  /** `loopback` (default) or `lan` (all addresses). */
  bind?: 'loopback' | 'lan';
  /** Runs the gateway through this command prefix, e.g. `['ip', 'netns', 'exec', 'ns']`. */
  prefix?: string[];
  /** The address the tests reach it at (default 127.0.0.1). */
  host?: string;
}

export function openclawInstalled(): boolean {
  return existsSync(BIN);
}

/** Resolves once a client completes the handshake: the gateway answers UNAVAILABLE while it starts up. */
async function waitServing(url: string, token: string, deadline: number, output: () => string): Promise<void> {
  while (Date.now() < deadline) {
    try {
      (await connectDirect(url, token)).close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  throw new Error(`the OpenClaw gateway did not start within the deadline:\n${output().slice(-3000)}`);
}

export async function startOpenclaw(options: GatewayOptions): Promise<OpenclawGateway> {
  const home = mkdtempSync(join(tmpdir(), 'mce-openclaw-'));
  const url = `ws://${options.host ?? '127.0.0.1'}:${options.port}`;
  let child: ChildProcess | null = null;
  let output = '';
  const env = { ...process.env, HOME: home, OPENCLAW_NO_UPDATE_CHECK: '1' };

  const start = async () => {
    const args = [
      'gateway',
      'run',
      '--dev',
      '--allow-unconfigured',
      '--auth',
      'token',
      '--token',
      options.token,
      '--port',
      String(options.port),
      '--bind',
      options.bind ?? 'loopback',
    ];
    const [command, ...rest] = [...(options.prefix ?? []), 'env', `HOME=${home}`, BIN, ...args];
    // Its own process group: a kill takes the gateway's helper processes with it, as a crash of the host would.
    child = spawn(command ?? BIN, rest, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    child.stdout?.on('data', (d) => {
      output = (output + String(d)).slice(-20_000);
    });
    child.stderr?.on('data', (d) => {
      output = (output + String(d)).slice(-20_000);
    });
    await waitServing(url, options.token, Date.now() + 90_000, () => output);
  };

  const stop = async () => {
    const running = child;
    child = null;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    if (running.pid) process.kill(-running.pid, 'SIGKILL');
    await exited;
    // Through a prefix (ip netns exec … env …) the gateway is a grandchild: make sure the port is free.
    if (options.prefix) spawn('pkill', ['-9', '-f', `--port ${options.port}`]).once('exit', () => {});
    await new Promise((r) => setTimeout(r, 300));
  };

  const cli = (args: string[]) =>
    new Promise<{ code: number; output: string }>((resolve) => {
      const [command, ...rest] = [...(options.prefix ?? []), 'env', `HOME=${home}`, BIN, ...args];
      const run = spawn(command ?? BIN, rest, { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      run.stdout.on('data', (d) => {
        text += String(d);
      });
      run.stderr.on('data', (d) => {
        text += String(d);
      });
      run.on('exit', (code) => resolve({ code: code ?? 1, output: text }));
    });

  await start();
  return {
    url,
    token: options.token,
    home,
    start,
    stop,
    cli,
    async close() {
      await stop();
      rmSync(home, { recursive: true, force: true });
    },
  };
}
