/**
 * A minimal RESP2 client over `node:net`: encodes commands, parses replies (nested arrays
 * included) and pipelines any number of commands on one connection, answered in order.
 * Redis error replies are values (`RedisReplyError`), not rejections, because a pipeline or
 * transaction carries them per command; a promise rejects only when the connection fails.
 */
import { createConnection, type Socket } from 'node:net';

export type RespArg = string | Buffer;

/** Simple strings are `string`, bulk strings `Buffer`, a null bulk or null array `null`. */
export type RespReply = string | number | Buffer | null | RedisReplyError | RespReply[];

/** An error reply (`-ERR ...`): the message is the text Redis sent. */
export class RedisReplyError extends Error {
  override name = 'RedisReplyError';
}

/** Redis could not be reached, or the connection broke before the replies came. */
export class RedisConnectionError extends Error {
  override name = 'RedisConnectionError';
}

export interface RedisAddress {
  host: string;
  port: number;
  username?: string;
  password?: string;
  db?: number;
}

export function parseRedisUrl(url: string): RedisAddress {
  const parsed = new URL(url);
  if (parsed.protocol !== 'redis:') throw new Error(`only redis:// URLs are supported, not ${parsed.protocol}//`);
  const db = parsed.pathname.replace(/^\//, '');
  return {
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1',
    port: Number(parsed.port || 6379),
    username: parsed.username ? decodeURIComponent(parsed.username) : undefined,
    password: parsed.password ? decodeURIComponent(parsed.password) : undefined,
    db: db ? Number(db) : undefined,
  };
}

export function encodeCommand(args: readonly RespArg[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = typeof arg === 'string' ? Buffer.from(arg, 'utf8') : arg;
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** A parsed reply and where the next one starts, or how many bytes must be buffered before trying again. */
type Parsed = { reply: RespReply; end: number } | { need: number };

function parseReply(buf: Buffer, start: number): Parsed {
  const lineEnd = buf.indexOf('\r\n', start + 1);
  if (lineEnd === -1) return { need: buf.length + 1 };
  const line = buf.toString('utf8', start + 1, lineEnd);
  const next = lineEnd + 2;
  switch (buf[start]) {
    case 0x2b: // +
      return { reply: line, end: next };
    case 0x2d: // -
      return { reply: new RedisReplyError(line), end: next };
    case 0x3a: // :
      return { reply: Number(line), end: next };
    case 0x24: {
      // $
      const length = Number(line);
      if (length < 0) return { reply: null, end: next };
      const end = next + length + 2;
      if (buf.length < end) return { need: end };
      return { reply: Buffer.from(buf.subarray(next, next + length)), end };
    }
    case 0x2a: {
      // *
      const count = Number(line);
      if (count < 0) return { reply: null, end: next };
      const items: RespReply[] = [];
      let position = next;
      for (let i = 0; i < count; i++) {
        if (position >= buf.length) return { need: position + 1 };
        const item = parseReply(buf, position);
        if ('need' in item) return item;
        items.push(item.reply);
        position = item.end;
      }
      return { reply: items, end: position };
    }
    default:
      throw new RedisConnectionError(`unexpected RESP type byte 0x${buf[start]?.toString(16)}`);
  }
}

/** Incremental reply reader: chunks are only joined once enough bytes for the next reply are in. */
class ReplyReader {
  private chunks: Buffer[] = [];
  private length = 0;
  private need = 1;

  push(chunk: Buffer): RespReply[] {
    this.chunks.push(chunk);
    this.length += chunk.length;
    // A large bulk string arrives in many chunks; waiting for its known size keeps this linear.
    if (this.length < this.need) return [];
    let buf = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.length);
    const replies: RespReply[] = [];
    let position = 0;
    while (position < buf.length) {
      const parsed = parseReply(buf, position);
      if ('need' in parsed) {
        this.need = parsed.need - position;
        break;
      }
      replies.push(parsed.reply);
      position = parsed.end;
    }
    buf = buf.subarray(position);
    this.chunks = buf.length > 0 ? [buf] : [];
    this.length = buf.length;
    if (buf.length === 0) this.need = 1;
    return replies;
  }
}

interface Pending {
  resolve(reply: RespReply): void;
  reject(err: Error): void;
}

export interface ConnectOptions {
  /** How long to wait for the TCP connection (a refused one fails at once). */
  connectTimeoutMs?: number;
  /** Fail everything in flight when Redis sends nothing for this long while replies are owed; 0 = never. */
  replyTimeoutMs?: number;
}

/** One pipelined connection. Commands written together in one `send` reach Redis back to back. */
export class RespConnection {
  private readonly socket: Socket;
  private readonly pending: Pending[] = [];
  private readonly reader = new ReplyReader();
  private failure: Error | undefined;

  private constructor(socket: Socket, label: string, replyTimeoutMs: number) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      let replies: RespReply[];
      try {
        replies = this.reader.push(chunk);
      } catch (err) {
        this.destroy(err as Error);
        return;
      }
      for (const reply of replies) this.pending.shift()?.resolve(reply);
    });
    socket.on('error', (err) => {
      this.failure ??= new RedisConnectionError(`redis at ${label}: ${err.message}`);
    });
    socket.on('close', () => {
      this.failure ??= new RedisConnectionError(`redis at ${label} closed the connection`);
      for (const waiting of this.pending.splice(0)) waiting.reject(this.failure);
    });
    if (replyTimeoutMs > 0) {
      // Fires after that much silence; with nothing owed an idle connection is fine.
      socket.setTimeout(replyTimeoutMs, () => {
        if (this.pending.length > 0) {
          this.destroy(new RedisConnectionError(`redis at ${label} sent no reply for ${replyTimeoutMs} ms`));
        }
      });
    }
  }

  static async open(address: RedisAddress, options: ConnectOptions = {}): Promise<RespConnection> {
    const label = `${address.host}:${address.port}`;
    const connectTimeoutMs = options.connectTimeoutMs ?? 2_000;
    const socket = createConnection({ host: address.host, port: address.port });
    const connection = await new Promise<RespConnection>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new RedisConnectionError(`redis at ${label}: no connection within ${connectTimeoutMs} ms`));
      }, connectTimeoutMs);
      const refused = (err: Error) => {
        clearTimeout(timer);
        reject(new RedisConnectionError(`redis at ${label}: ${err.message}`));
      };
      socket.once('error', refused);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', refused);
        resolve(new RespConnection(socket, label, options.replyTimeoutMs ?? 0));
      });
    });
    const setup: RespArg[][] = [];
    if (address.password !== undefined) {
      setup.push(address.username ? ['AUTH', address.username, address.password] : ['AUTH', address.password]);
    }
    if (address.db !== undefined) setup.push(['SELECT', String(address.db)]);
    if (setup.length > 0) {
      const replies = await connection.send(setup);
      const refused = replies.find((reply) => reply instanceof RedisReplyError);
      if (refused) {
        connection.close();
        throw new RedisConnectionError(`redis at ${label} refused the connection setup: ${refused.message}`);
      }
    }
    return connection;
  }

  get usable(): boolean {
    return this.failure === undefined && !this.socket.destroyed;
  }

  /** Writes all commands in one go and resolves with their replies, in order. */
  send(commands: readonly (readonly RespArg[])[]): Promise<RespReply[]> {
    if (!this.usable) {
      return Promise.reject(this.failure ?? new RedisConnectionError('the redis connection is closed'));
    }
    const replies = commands.map(
      () => new Promise<RespReply>((resolve, reject) => this.pending.push({ resolve, reject })),
    );
    this.socket.write(Buffer.concat(commands.map(encodeCommand)));
    return Promise.all(replies);
  }

  async command(...args: RespArg[]): Promise<RespReply> {
    const [reply] = await this.send([args]);
    return reply as RespReply;
  }

  destroy(reason: Error): void {
    this.failure ??= reason;
    this.socket.destroy();
  }

  close(): void {
    this.destroy(new RedisConnectionError('the redis connection was closed'));
  }
}

/**
 * One shared pipelined connection, opened on first use and again after it breaks, plus fresh
 * connections for work that must not hold up everyone else (blocking commands).
 */
export class RespClient {
  private readonly address: RedisAddress;
  private readonly options: ConnectOptions;
  private shared: Promise<RespConnection> | undefined;
  private readonly dedicated = new Set<RespConnection>();

  constructor(url: string, options: ConnectOptions = {}) {
    this.address = parseRedisUrl(url);
    this.options = { replyTimeoutMs: 10_000, ...options };
  }

  private connection(): Promise<RespConnection> {
    const current = this.shared;
    if (current) {
      return current.then(
        (connection) => (connection.usable ? connection : this.reconnect(current)),
        () => this.reconnect(current),
      );
    }
    return this.reconnect(undefined);
  }

  private reconnect(stale: Promise<RespConnection> | undefined): Promise<RespConnection> {
    // Concurrent callers that saw the same broken connection share one new attempt.
    if (this.shared === stale) this.shared = RespConnection.open(this.address, this.options);
    return this.shared as Promise<RespConnection>;
  }

  /** Sends the commands back to back on the shared connection. */
  async send(commands: readonly (readonly RespArg[])[]): Promise<RespReply[]> {
    return (await this.connection()).send(commands);
  }

  /** Sends the commands on a connection of their own, closed afterwards. */
  async sendAlone(commands: readonly (readonly RespArg[])[]): Promise<RespReply[]> {
    const connection = await RespConnection.open(this.address, { ...this.options, replyTimeoutMs: 0 });
    this.dedicated.add(connection);
    try {
      return await connection.send(commands);
    } finally {
      this.dedicated.delete(connection);
      connection.close();
    }
  }

  async close(): Promise<void> {
    for (const connection of this.dedicated) connection.close();
    const shared = this.shared;
    this.shared = undefined;
    if (shared) (await shared.catch(() => undefined))?.close();
  }
}
