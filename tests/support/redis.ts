/**
 * What the Redis tests run against: a private `redis-server` on a free loopback port (no
 * persistence, data dir in a temp directory), a free port where nothing listens, and an HTTP
 * server that accepts requests and never answers (a REST peer that hangs).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RespConnection } from '../../cli/upstash-rest/resp.ts';

export interface TestRedis {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** A port that was free a moment ago (and on which nothing listens now). */
export async function unusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function answersPing(port: number): Promise<boolean> {
  try {
    const connection = await RespConnection.open({ host: '127.0.0.1', port }, { connectTimeoutMs: 500 });
    const reply = await connection.command('PING');
    connection.close();
    return reply === 'PONG';
  } catch {
    return false;
  }
}

async function launch(port: number, dir: string): Promise<ChildProcess> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const keep = (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const spawnError = new Promise<never>((_, reject) =>
    child.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'ENOENT' ? new Error('redis-server is not installed (Debian: apt-get install redis-server)') : err,
      );
    }),
  );
  spawnError.catch(() => {});
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    await Promise.race([spawnError, new Promise((resolve) => setTimeout(resolve, 50))]);
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode} on port ${port}:\n${log}`);
    if (await answersPing(port)) return child;
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server did not answer PING on port ${port} within 10 s:\n${log}`);
}

/** Starts a redis-server of its own; `port` reuses a given port (to restart one that was stopped). */
export async function startRedis(options: { port?: number } = {}): Promise<TestRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'mce-redis-'));
  let child: ChildProcess | undefined;
  let port = options.port ?? 0;
  // A free port can be taken between the check and redis binding it; try a few.
  for (let attempt = 1; child === undefined; attempt++) {
    port = options.port ?? (await unusedPort());
    try {
      child = await launch(port, dir);
    } catch (err) {
      if (options.port !== undefined || attempt >= 3 || /not installed/.test(String(err))) {
        rmSync(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }
  const running = child;
  // Never leave a redis-server behind when the test process ends without stopping it.
  const killOnExit = () => running.kill('SIGKILL');
  process.once('exit', killOnExit);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      process.off('exit', killOnExit);
      running.kill('SIGTERM');
      const timer = setTimeout(() => running.kill('SIGKILL'), 5_000);
      await exited(running);
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** An HTTP server that reads requests and never answers them. */
export async function startHangingServer(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createHttpServer(() => {
    // Deliberately no response.
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
