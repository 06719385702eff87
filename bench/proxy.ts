/**
 * npm run bench:proxy [-- --json] [-- --mb N] [-- --round-trips N] [-- --rounds K] [-- --no-socat]
 *
 * Direct vs through Bulwark's TCP proxy (no toxics) on loopback: request/response round trips of 64-byte
 * messages (p50, p99) and the throughput of a 1 GiB transfer. The upstream servers and the proxy each run
 * in their own process, as in real use (`bulwark proxy` is a process of its own); the client runs here.
 * Direct and proxied measurements alternate for K rounds (default 3); each figure is its side's best
 * round (the JSON lists every round), so load from elsewhere on a shared machine does not decide it.
 * Targets (issue 6): added p50 <= 100 µs (Toxiproxy's published figure), proxy throughput >= 50% of
 * direct. Times are read through Bulwark's SystemClock.
 *
 * When `socat` is on PATH, a third side runs through it (`socat -b 262144`, a C relay with 256 KiB
 * buffers, no toxics) as a reference for what a userspace relay reaches on this machine; `--no-socat`
 * leaves it out.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { connect, createServer, type Socket } from 'node:net';
import os from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ProxyServer } from '../src/chaos/tcp/server.js';
import { SystemClock } from '../src/core/clock.js';
import { createRuntime } from '../src/core/runtime.js';

const clock = new SystemClock();
const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
};

// ---------------------------------------------------------------------------------------------
// child roles

async function listen(server: ReturnType<typeof createServer>): Promise<number> {
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  return (server.address() as { port: number }).port;
}

/** Echo server, and a sink that reads an 8-byte length, counts that many bytes, then answers one byte. */
async function upstreamRole(): Promise<void> {
  const echo = createServer((socket) => {
    socket.setNoDelay(true);
    socket.pipe(socket);
    socket.on('error', () => {});
  });
  const sink = createServer((socket) => {
    socket.setNoDelay(true);
    let expected = -1;
    let received = 0;
    let header = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      if (expected < 0) {
        header = Buffer.concat([header, chunk]);
        if (header.length < 8) return;
        expected = Number(header.readBigUInt64LE(0));
        received = header.length - 8;
      } else {
        received += chunk.length;
      }
      if (received >= expected) socket.end('D');
    });
    socket.on('error', () => {});
  });
  process.stdout.write(`${await listen(echo)} ${await listen(sink)}\n`);
}

async function proxyRole(echo: string, sink: string): Promise<void> {
  const server = new ProxyServer({ runtime: createRuntime({ seed: 'bench' }), port: 0 });
  const a = await server.createProxy({ name: 'echo', upstream: echo });
  const b = await server.createProxy({ name: 'sink', upstream: sink });
  process.stdout.write(`${a.listen} ${b.listen}\n`);
}

// ---------------------------------------------------------------------------------------------
// the client side

function child(role: string[]): Promise<{ process: ChildProcess; line: string }> {
  const self = fileURLToPath(import.meta.url);
  const proc = spawn(process.execPath, [...process.execArgv, self, '--role', ...role], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: proc.stdout as NonNullable<typeof proc.stdout> });
    lines.once('line', (line) => resolve({ process: proc, line }));
    proc.once('exit', (code) => reject(new Error(`bench child ${role[0]} exited with ${code}`)));
  });
}

function open(address: string): Promise<Socket> {
  const [host, port] = address.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port: Number(port) }, () => resolve(socket));
    socket.setNoDelay(true);
    socket.once('error', reject);
  });
}

/** Round-trip times in µs of `count` 64-byte messages (after `warmup` unmeasured ones). */
async function roundTrips(address: string, count: number, warmup: number): Promise<number[]> {
  const socket = await open(address);
  const message = Buffer.alloc(64, 7);
  const times: number[] = [];
  let pending = 0;
  let wake: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    pending -= chunk.length;
    if (pending <= 0) wake?.();
  });
  for (let i = 0; i < warmup + count; i++) {
    const start = clock.now();
    pending = message.length;
    await new Promise<void>((resolve) => {
      wake = resolve;
      socket.write(message);
    });
    if (i >= warmup) times.push((clock.now() - start) * 1000);
  }
  socket.destroy();
  return times.sort((a, b) => a - b);
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

/** MB/s (MiB) of sending `bytes` to the sink at `address` until it confirms receipt. */
async function throughput(address: string, bytes: number): Promise<number> {
  const socket = await open(address);
  const chunk = Buffer.alloc(256 * 1024, 1);
  const done = new Promise<void>((resolve) => socket.once('data', () => resolve()));
  const start = clock.now();
  const header = Buffer.alloc(8);
  header.writeBigUInt64LE(BigInt(bytes));
  socket.write(header);
  let sent = 0;
  while (sent < bytes) {
    const part = bytes - sent >= chunk.length ? chunk : chunk.subarray(0, bytes - sent);
    sent += part.length;
    if (!socket.write(part)) await new Promise((resolve) => socket.once('drain', resolve));
  }
  await done;
  const seconds = (clock.now() - start) / 1000;
  socket.destroy();
  return bytes / 1024 / 1024 / seconds;
}

/** A free loopback port (closed again: socat binds it next). */
async function freePort(): Promise<number> {
  const server = createServer();
  const port = await listen(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** `socat` relaying a free port to `upstream`, once it accepts connections; undefined without socat. */
async function socatRelay(upstream: string): Promise<{ process: ChildProcess; address: string } | undefined> {
  if (spawnSync('socat', ['-V'], { stdio: 'ignore' }).status !== 0) return undefined;
  const port = await freePort();
  const proc = spawn(
    'socat',
    ['-b', '262144', `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, `TCP:${upstream}`],
    { stdio: 'ignore' },
  );
  const address = `127.0.0.1:${port}`;
  for (let attempt = 0; attempt < 100; attempt++) {
    const socket = await open(address).catch(() => undefined);
    if (socket !== undefined) {
      socket.destroy();
      return { process: proc, address };
    }
    await clock.sleep(20);
  }
  proc.kill();
  return undefined;
}

async function main(): Promise<void> {
  const json = args.includes('--json');
  const mb = Number(option('--mb') ?? 1024);
  const count = Number(option('--round-trips') ?? 20_000);
  const rounds = Number(option('--rounds') ?? 3);
  if (![mb, count, rounds].every((n) => Number.isInteger(n) && n > 0)) {
    console.error('bench:proxy: --mb, --round-trips and --rounds must be positive integers');
    process.exit(2);
  }
  const upstream = await child(['upstream']);
  const [echoPort, sinkPort] = upstream.line.split(' ');
  const direct = { echo: `127.0.0.1:${echoPort}`, sink: `127.0.0.1:${sinkPort}` };
  const proxy = await child(['proxy', direct.echo, direct.sink]);
  const [proxiedEcho, proxiedSink] = proxy.line.split(' ') as [string, string];
  const withSocat = !args.includes('--no-socat');
  const socatEcho = withSocat ? await socatRelay(direct.echo) : undefined;
  const socatSink = socatEcho === undefined ? undefined : await socatRelay(direct.sink);
  try {
    const warmup = Math.min(2000, count);
    const bytes = mb * 1024 * 1024;
    const sides: Record<'direct' | 'proxy' | 'socat', { p50: number[]; p99: number[]; mbS: number[] }> = {
      direct: { p50: [], p99: [], mbS: [] },
      proxy: { p50: [], p99: [], mbS: [] },
      socat: { p50: [], p99: [], mbS: [] },
    };
    const order: ['direct' | 'proxy' | 'socat', string, string][] = [
      ['direct', direct.echo, direct.sink],
      ['proxy', proxiedEcho, proxiedSink],
    ];
    if (socatEcho !== undefined && socatSink !== undefined)
      order.push(['socat', socatEcho.address, socatSink.address]);
    for (let r = 0; r < rounds; r++) {
      for (const [side, echo, sink] of order) {
        const times = await roundTrips(echo, count, warmup);
        sides[side].p50.push(quantile(times, 0.5));
        sides[side].p99.push(quantile(times, 0.99));
        sides[side].mbS.push(await throughput(sink, bytes));
      }
    }
    const best = (values: number[], pick: (...v: number[]) => number) => pick(...values);
    const directTimesP50 = best(sides.direct.p50, Math.min);
    const proxyTimesP50 = best(sides.proxy.p50, Math.min);
    const directMbS = best(sides.direct.mbS, Math.max);
    const proxyMbS = best(sides.proxy.mbS, Math.max);
    const round = (x: number) => Math.round(x * 10) / 10;
    const result = {
      direct_p50_us: round(directTimesP50),
      proxy_p50_us: round(proxyTimesP50),
      direct_p99_us: round(best(sides.direct.p99, Math.min)),
      proxy_p99_us: round(best(sides.proxy.p99, Math.min)),
      added_p50_us: round(proxyTimesP50 - directTimesP50),
      direct_mb_s: round(directMbS),
      proxy_mb_s: round(proxyMbS),
      throughput_ratio: Math.round((proxyMbS / directMbS) * 1000) / 1000,
      ...(sides.socat.mbS.length === 0
        ? {}
        : {
            socat_p50_us: round(best(sides.socat.p50, Math.min)),
            socat_mb_s: round(best(sides.socat.mbS, Math.max)),
            socat_throughput_ratio: Math.round((best(sides.socat.mbS, Math.max) / directMbS) * 1000) / 1000,
          }),
      round_trips: count,
      transfer_mb: mb,
      rounds: Object.fromEntries(
        Object.entries(sides)
          .filter(([, v]) => v.mbS.length > 0)
          .map(([side, v]) => [
            side,
            { p50_us: v.p50.map(round), p99_us: v.p99.map(round), mb_s: v.mbS.map(round) },
          ]),
      ),
      targets: { added_p50_us_max: 100, throughput_ratio_min: 0.5 },
      meta: { node: process.version, cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length },
    };
    if (!json) {
      console.log(
        `round trip p50: direct ${result.direct_p50_us} µs, proxy ${result.proxy_p50_us} µs (added ${result.added_p50_us} µs)`,
      );
      console.log(`round trip p99: direct ${result.direct_p99_us} µs, proxy ${result.proxy_p99_us} µs`);
      console.log(
        `${mb} MiB transfer: direct ${result.direct_mb_s} MB/s, proxy ${result.proxy_mb_s} MB/s (${result.throughput_ratio}×)`,
      );
      if (result.socat_mb_s !== undefined)
        console.log(
          `reference, socat -b 262144: p50 ${result.socat_p50_us} µs, ${result.socat_mb_s} MB/s (${result.socat_throughput_ratio}×)`,
        );
    }
    console.log(JSON.stringify(result));
  } finally {
    upstream.process.kill();
    proxy.process.kill();
    socatEcho?.process.kill();
    socatSink?.process.kill();
  }
}

const role = option('--role');
if (role === 'upstream') await upstreamRole();
else if (role === 'proxy')
  await proxyRole(args[args.indexOf('--role') + 2] as string, args[args.indexOf('--role') + 3] as string);
else await main();
