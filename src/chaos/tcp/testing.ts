/**
 * Loopback helpers for the proxy's tests and benchmark (not exported from the package): an echo server,
 * a client that collects what it receives, and a bounded poll for a condition on real I/O.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { SystemClock } from '../../core/clock.js';

const clock = new SystemClock();

/** Milliseconds on the system clock (for measuring real I/O in tests). */
export function now(): number {
  return clock.now();
}

/** Waits `ms` of real time (only for checks that something does *not* happen meanwhile). */
export function pause(ms: number): Promise<void> {
  return clock.sleep(ms);
}

/** Waits until `condition()` holds, checking every 5 ms; throws after `limitMs` naming `what`. */
export async function until(condition: () => boolean, what: string, limitMs = 5000): Promise<void> {
  const start = clock.now();
  while (!condition()) {
    if (clock.now() - start > limitMs) throw new Error(`timed out after ${limitMs} ms waiting for ${what}`);
    await clock.sleep(5);
  }
}

export interface EchoServer {
  server: Server;
  port: number;
  address: string;
  /** Sockets the server accepted that are still open. */
  sockets: Set<Socket>;
  close(): Promise<void>;
}

/** A TCP server on 127.0.0.1 that writes back what it reads (or runs `onConnection`). */
export async function echoServer(onConnection?: (socket: Socket) => void): Promise<EchoServer> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    if (onConnection !== undefined) onConnection(socket);
    else {
      socket.pipe(socket);
    }
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const port = (server.address() as { port: number }).port;
  return {
    server,
    port,
    address: `127.0.0.1:${port}`,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A client socket that records everything it receives, how it ended, and its error. */
export interface Client {
  socket: Socket;
  received(): Buffer;
  chunks: Buffer[];
  ended: boolean;
  closed: boolean;
  error: NodeJS.ErrnoException | undefined;
}

export async function client(address: string): Promise<Client> {
  const [host, port] = address.split(':') as [string, string];
  const socket = connect({ host, port: Number(port), allowHalfOpen: true });
  const state: Client = {
    socket,
    chunks: [],
    received: () => Buffer.concat(state.chunks),
    ended: false,
    closed: false,
    error: undefined,
  };
  socket.on('data', (chunk: Buffer) => state.chunks.push(chunk));
  socket.on('end', () => {
    state.ended = true;
  });
  socket.on('close', () => {
    state.closed = true;
  });
  socket.on('error', (error: NodeJS.ErrnoException) => {
    state.error = error;
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return state;
}
