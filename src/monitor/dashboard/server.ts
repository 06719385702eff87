/**
 * The dashboard's HTTP server (node:http): the page, a Server-Sent Events stream of coalesced snapshots,
 * `/metrics`, the history API and control POSTs.
 *
 * Security: it binds 127.0.0.1 unless told otherwise, and any other address needs a token; with a token,
 * every request (page, stream, API, metrics) must carry it. Control POSTs always need a token (a random one
 * per server when none is configured, handed to the page in an HttpOnly SameSite=Strict cookie it cannot
 * read) and are refused cross-origin. On loopback, a request whose Host is not a loopback name is refused
 * (DNS rebinding). Snapshots carry names and counts only, never error messages or configuration.
 *
 * With alerting (`createMonitor({ alerts })`) it also serves `GET /api/alerts`, `/api/silences` and
 * `/api/outbox`, and takes `POST /api/silences` and `DELETE /api/silences/:id` as control requests.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Timer } from '../../core/clock.js';
import { intOption, invalid, knownKeys } from '../../policy/options.js';
import { alertsApi } from '../alerts/api.js';
import type { Scope } from '../live.js';
import type { Monitor } from '../monitor.js';

export interface DashboardServerOptions {
  /** The address to bind. Anything but a loopback address requires `token`. @defaultValue `'127.0.0.1'` */
  host?: string;
  /** The port; 0 picks a free one. @defaultValue 7420 */
  port?: number;
  /**
   * A shared secret (at least 16 characters). When set, every request needs it: `Authorization: Bearer …`,
   * or open the page once as `/?token=…` (it is moved into a cookie and removed from the address).
   */
  token?: string;
  /** What the page's header says is being watched, e.g. `lab: network (seed 1)`. @defaultValue `'runtime'` */
  title?: string;
  /** How often snapshots are sent on the stream, in ms. @defaultValue 1000 */
  intervalMs?: number;
  /** A comment line is sent when nothing else was for this long, in ms. @defaultValue 15000 */
  heartbeatMs?: number;
  /** The directory holding the built page (`index.html`, `app.js`, `app.css`). @defaultValue the package's */
  assetsDir?: string;
}

/** A running dashboard. */
export interface DashboardServer {
  /** `http://host:port/` */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** Connected event-stream clients. */
  readonly clients: number;
  /** Resolves once the server has closed. */
  readonly closed: Promise<void>;
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);
const LOOPBACK_HOSTNAMES = new Set(['127.0.0.1', '[::1]', 'localhost']);
/** A source is "live" while its last event is still inside the sparklines' window. */
const LIVE_WINDOW_MS = 121_000;
const SCOPES: readonly Scope[] = ['policy', 'queue', 'plan', 'fault'];
const ASSETS: Record<string, string> = {
  '/': 'index.html',
  '/index.html': 'index.html',
  '/app.js': 'app.js',
  '/app.css': 'app.css',
};
const TYPES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};
const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'content-security-policy':
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
};

/** Where the built page is: beside this module in the package, or in `dist` when running from source. */
export function defaultAssetsDir(): string {
  for (const candidate of ['./public/', '../../../dist/monitor/dashboard/public/']) {
    const dir = fileURLToPath(new URL(candidate, import.meta.url));
    if (existsSync(`${dir}index.html`)) return dir;
  }
  return fileURLToPath(new URL('./public/', import.meta.url));
}

function loadAssets(dir: string): Map<string, Buffer> | undefined {
  const assets = new Map<string, Buffer>();
  for (const file of new Set(Object.values(ASSETS))) {
    const path = `${dir.endsWith('/') ? dir : `${dir}/`}${file}`;
    if (!existsSync(path)) return undefined;
    assets.set(file, readFileSync(path));
  }
  return assets;
}

function sameSecret(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function cookie(request: IncomingMessage, name: string): string | undefined {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return decodeURIComponent(part.slice(i + 1).trim());
  }
  return undefined;
}

function bearer(request: IncomingMessage): string | undefined {
  const header = request.headers.authorization;
  return header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
}

function send(
  response: ServerResponse,
  status: number,
  body: string,
  type = 'text/plain; charset=utf-8',
): void {
  response.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, 'cache-control': 'no-store' });
  response.end(body);
}

function sendJson(response: ServerResponse, status: number, value: unknown): void {
  send(response, status, JSON.stringify(value), 'application/json; charset=utf-8');
}

interface Client {
  response: ServerResponse;
  blocked: boolean;
}

/**
 * Starts the dashboard of `monitor`. Use {@link Monitor.serve}.
 * @throws TypeError when an option is invalid, or when `host` is not loopback and no token is given.
 */
export async function startDashboard(
  monitor: Monitor,
  options: DashboardServerOptions = {},
): Promise<DashboardServer> {
  const where = 'serve';
  knownKeys(where, options, ['host', 'port', 'token', 'title', 'intervalMs', 'heartbeatMs', 'assetsDir']);
  const host = options.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host === '') throw invalid(where, 'host', host, 'a host name or address');
  const port = intOption(where, 'port', options.port, 7420, 0, 65_535);
  const token = options.token;
  if (token !== undefined && (typeof token !== 'string' || token.length < 16 || /\s/.test(token))) {
    throw invalid(where, 'token', '(hidden)', 'a string of at least 16 characters without spaces');
  }
  if (!LOOPBACK.has(host) && token === undefined) {
    throw invalid(where, 'token', undefined, `set when binding ${host}, which is not a loopback address`);
  }
  const intervalMs = intOption(where, 'intervalMs', options.intervalMs, 1000, 50, 60_000);
  const heartbeatMs = intOption(where, 'heartbeatMs', options.heartbeatMs, 15_000, 100, 600_000);
  const title = options.title ?? 'runtime';
  if (typeof title !== 'string') throw invalid(where, 'title', title, 'a string');
  const assetsDir = options.assetsDir ?? defaultAssetsDir();
  const assets = loadAssets(assetsDir);
  // A per-server secret for control POSTs when the user configured none; crypto, not the seeded runtime
  // random: it must be unguessable, not reproducible.
  const controlToken = token ?? randomBytes(24).toString('hex');
  const clock = monitor.clock;
  const clients = new Set<Client>();
  let lastEventAt = Number.NEGATIVE_INFINITY;
  let lastWriteAt = clock.now();
  // New events since the last snapshot: the aggregator's event count moved (no per-event callback).
  let seenEvents = -1;
  let dirty = true;

  let boundPort = port;
  const cookieName = () => `bulwark_dashboard_${boundPort}`;
  const loopbackOnly = LOOPBACK.has(host);

  const authorised = (request: IncomingMessage, secret: string): boolean =>
    sameSecret(bearer(request), secret) || sameSecret(cookie(request, cookieName()), secret);

  const info = () => ({
    title,
    history: monitor.history !== undefined,
    alerts: monitor.alerts !== undefined,
    intervalMs,
  });
  const alerts =
    monitor.alerts === undefined
      ? undefined
      : alertsApi({
          notifier: monitor.alerts.notifier,
          ...(monitor.alerts.engine === undefined ? {} : { engine: monitor.alerts.engine }),
        });
  // Alerts and silences change without events reaching the monitor (the engine runs on its own runtime):
  // a snapshot is sent when they did.
  let alertsSeen = '';

  const writeAll = (chunk: string) => {
    for (const client of clients) {
      if (client.blocked) continue;
      if (!client.response.write(chunk)) {
        // Coalesce for slow readers: skip snapshots until the socket drains, then they get the latest.
        client.blocked = true;
        client.response.once('drain', () => {
          client.blocked = false;
        });
      }
    }
  };

  let timer: Timer | undefined;
  const tick = () => {
    timer = clock.setTimer(intervalMs, tick, undefined);
    monitor.live.tick();
    const now = clock.now();
    if (monitor.live.events !== seenEvents) {
      if (seenEvents >= 0 || monitor.live.events > 0) lastEventAt = now;
      seenEvents = monitor.live.events;
      dirty = true;
    }
    if (clients.size === 0) return;
    if (monitor.alerts !== undefined) {
      const now = JSON.stringify(monitor.alertsSnapshot());
      if (now !== alertsSeen) {
        alertsSeen = now;
        dirty = true;
      }
    }
    if (dirty || now - lastEventAt < LIVE_WINDOW_MS) {
      dirty = false;
      writeAll(`event: snapshot\ndata: ${JSON.stringify(monitor.snapshot())}\n\n`);
      lastWriteAt = now;
    } else if (now - lastWriteAt >= heartbeatMs) {
      writeAll(`: heartbeat ${Math.floor(now / 1000)}\n\n`);
      lastWriteAt = now;
    }
  };

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const url = new URL(request.url ?? '/', 'http://dashboard.invalid');
    const hostHeader = (request.headers.host ?? '').toLowerCase();
    const hostname = hostHeader.replace(/:\d+$/, '');
    if (loopbackOnly && !LOOPBACK_HOSTNAMES.has(hostname)) {
      return send(response, 403, 'forbidden: this dashboard answers loopback host names only\n');
    }
    if (
      request.method === 'GET' &&
      url.pathname === '/' &&
      token !== undefined &&
      url.searchParams.has('token')
    ) {
      if (!sameSecret(url.searchParams.get('token') ?? undefined, token))
        return send(response, 401, 'unauthorised\n');
      response.writeHead(303, {
        ...SECURITY_HEADERS,
        location: '/',
        'set-cookie': `${cookieName()}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`,
      });
      response.end();
      return;
    }
    if (token !== undefined && !authorised(request, token)) {
      response.setHeader('www-authenticate', 'Bearer realm="bulwark dashboard"');
      return send(response, 401, 'unauthorised: open /?token=… or send Authorization: Bearer …\n');
    }
    if (request.method === 'POST' && url.pathname === '/api/control') return control(request, response);
    if (
      alerts !== undefined &&
      (url.pathname === '/api/silences' || url.pathname.startsWith('/api/silences/'))
    ) {
      if (request.method === 'POST' || request.method === 'DELETE') {
        if (!refuseControl(request, response, request.method === 'POST')) {
          response.once('finish', () => {
            dirty = true;
          });
          for (const [name, value] of Object.entries(SECURITY_HEADERS)) response.setHeader(name, value);
          alerts(request, response);
        }
        return;
      }
    }
    if (
      alerts !== undefined &&
      request.method === 'GET' &&
      ['/api/alerts', '/api/silences', '/api/outbox'].includes(url.pathname)
    ) {
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) response.setHeader(name, value);
      alerts(request, response);
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD')
      return send(response, 405, 'method not allowed\n');
    const asset = ASSETS[url.pathname];
    if (asset !== undefined) {
      if (assets === undefined) {
        return send(
          response,
          503,
          `the dashboard page is not built (no ${asset} in ${assetsDir}); run npm run build\n`,
        );
      }
      const headers: Record<string, string> = {
        ...SECURITY_HEADERS,
        'content-type': TYPES[asset] as string,
        'cache-control': 'no-cache',
      };
      if (asset === 'index.html') {
        headers['set-cookie'] =
          `${cookieName()}=${encodeURIComponent(controlToken)}; HttpOnly; SameSite=Strict; Path=/`;
      }
      response.writeHead(200, headers);
      response.end(request.method === 'HEAD' ? undefined : assets.get(asset));
      return;
    }
    switch (url.pathname) {
      case '/events':
        return stream(request, response);
      case '/metrics':
        return monitor.metricsHandler()(request, response);
      case '/api/info':
        return sendJson(response, 200, info());
      case '/api/snapshot':
        return sendJson(response, 200, monitor.snapshot());
      case '/api/names':
        return sendJson(response, 200, { names: monitor.history?.names() ?? [] });
      case '/api/history': {
        const scope = url.searchParams.get('scope') as Scope | null;
        const name = url.searchParams.get('name');
        if (scope === null || !SCOPES.includes(scope) || name === null) {
          return sendJson(response, 400, {
            error: `scope (one of ${SCOPES.join(', ')}) and name are required`,
          });
        }
        const to = Number(url.searchParams.get('to') ?? clock.now());
        const from = Number(url.searchParams.get('from') ?? to - 24 * 3_600_000);
        if (!Number.isFinite(from) || !Number.isFinite(to)) {
          return sendJson(response, 400, { error: 'from and to must be epoch milliseconds' });
        }
        return sendJson(response, 200, {
          scope,
          name,
          from,
          to,
          points: monitor.query({ scope, name, from, to }),
        });
      }
      default:
        return send(response, 404, 'not found\n');
    }
  };

  const stream = (request: IncomingMessage, response: ServerResponse) => {
    response.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    const client: Client = { response, blocked: false };
    clients.add(client);
    response.write(
      `retry: 2000\nevent: info\ndata: ${JSON.stringify(info())}\n\nevent: snapshot\ndata: ${JSON.stringify(monitor.snapshot())}\n\n`,
    );
    request.socket.setNoDelay(true);
    const remove = () => clients.delete(client);
    request.once('close', remove);
    response.once('error', remove);
  };

  /** Answers and returns true when a control request must be refused: cross-origin, no token, not JSON. */
  const refuseControl = (request: IncomingMessage, response: ServerResponse, hasBody: boolean): boolean => {
    const origin = request.headers.origin;
    if (
      (origin !== undefined && origin !== `http://${request.headers.host ?? ''}`) ||
      request.headers['sec-fetch-site'] === 'cross-site'
    ) {
      sendJson(response, 403, { error: 'cross-origin control requests are refused' });
    } else if (!authorised(request, controlToken)) {
      sendJson(response, 401, { error: 'a token is required' });
    } else if (hasBody && !(request.headers['content-type'] ?? '').startsWith('application/json')) {
      sendJson(response, 415, { error: 'send application/json' });
    } else {
      return false;
    }
    return true;
  };

  const control = async (request: IncomingMessage, response: ServerResponse) => {
    if (refuseControl(request, response, true)) return;
    let body = '';
    for await (const chunk of request) {
      body += chunk;
      if (body.length > 4096) return sendJson(response, 413, { error: 'request too large' });
    }
    let parsed: { name?: unknown; action?: unknown };
    try {
      parsed = JSON.parse(body) as { name?: unknown; action?: unknown };
    } catch {
      return sendJson(response, 400, { error: 'the body is not JSON' });
    }
    if (typeof parsed?.name !== 'string' || typeof parsed.action !== 'string') {
      return sendJson(response, 400, { error: 'name and action (strings) are required' });
    }
    try {
      if (!(await monitor.control(parsed.name, parsed.action))) {
        return sendJson(response, 404, { error: `no action "${parsed.action}" on "${parsed.name}"` });
      }
    } catch (error) {
      return sendJson(response, 500, {
        error: `${parsed.action} failed: ${error instanceof Error ? error.name : 'error'}`,
      });
    }
    dirty = true;
    return sendJson(response, 200, { ok: true });
  };

  const server: Server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) send(response, 500, 'internal error\n');
      else response.destroy(error instanceof Error ? error : undefined);
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  boundPort = (server.address() as AddressInfo).port;
  timer = clock.setTimer(intervalMs, tick, undefined);

  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => {
    resolveClosed = resolve;
  });
  let closing: Promise<void> | undefined;
  const displayHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${displayHost}:${boundPort}/`,
    host,
    port: boundPort,
    get clients() {
      return clients.size;
    },
    closed,
    close() {
      closing ??= new Promise<void>((resolve) => {
        timer?.cancel();
        for (const client of clients) client.response.end();
        clients.clear();
        server.close(() => {
          resolveClosed();
          resolve();
        });
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
