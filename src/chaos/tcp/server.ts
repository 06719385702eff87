/**
 * The proxy server: a collection of proxies and the HTTP API that drives it, endpoint for endpoint,
 * JSON shape for JSON shape and error for error the API of Toxiproxy 2.x, so Toxiproxy's clients and
 * scripts work unchanged. Beyond Toxiproxy: a seed (the runtime's) reproduces every random decision,
 * toxics take `toxicity_mode: 'per_request'`, and every activation is an event.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { Runtime } from '../../core/runtime.js';
import { systemRuntime } from '../../core/runtime.js';
import { intOption, invalid, knownKeys } from '../../policy/options.js';
import { ProxyApiError } from './errors.js';
import { HttpProxy } from './http-proxy.js';
import { type ProxyJson, parseHostPort, TcpProxy } from './proxy.js';
import { parseToxic, ToxicDefinitionError, type ToxicJson, type ToxicSpec, toxicJson } from './toxics.js';

/** The Toxiproxy version the API reports, with Bulwark's as build metadata. */
export const TOXIPROXY_API_VERSION = '2.12.0+bulwark';

/** The Toxiproxy API's default port. */
export const DEFAULT_API_PORT = 8474;

export interface ProxyServerOptions {
  /** Time, the seed of every random decision, and where events go. @defaultValue the system runtime */
  runtime?: Runtime;
  /** The API's address. Anything but a loopback address requires `token`. @defaultValue `'127.0.0.1'` */
  host?: string;
  /** The API's port (0: any free port). @defaultValue `8474` */
  port?: number;
  /** When set, API requests must send `Authorization: Bearer <token>`. */
  token?: string;
}

/** A proxy of either mode. */
export type FaultProxy = TcpProxy | HttpProxy;

/** What `POST /proxies` and `POST /populate` take. */
export interface ProxyInput {
  name: string;
  upstream: string;
  /**
   * Bulwark's extension: `'http'` makes an HTTP reverse proxy whose toxics act per request
   * (`http_status`, `latency`, `timeout`, `reset_peer`, `limit_data`). @defaultValue `'tcp'`
   */
  mode?: 'tcp' | 'http';
  /** @defaultValue `'127.0.0.1:0'` (any free port on loopback) */
  listen?: string;
  /** @defaultValue `true` */
  enabled?: boolean;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);
const MAX_BODY = 1024 * 1024;

function isLoopback(host: string): boolean {
  return LOOPBACK.has(host) || (isIP(host) === 4 && host.startsWith('127.'));
}

/**
 * A set of TCP fault proxies and (once `listen()`ed) the Toxiproxy-compatible HTTP API that drives them.
 *
 * @example
 * const server = new ProxyServer({ runtime: createRuntime({ seed: 42 }) });
 * await server.listen();                                   // API on 127.0.0.1:8474
 * const redis = await server.createProxy({ name: 'redis', listen: '127.0.0.1:26379', upstream: '127.0.0.1:6379' });
 * server.addToxic('redis', { type: 'latency', attributes: { latency: 100, jitter: 10 } });
 * // … point the client at 127.0.0.1:26379 …
 * await server.close();
 */
export class ProxyServer {
  readonly runtime: Runtime;
  private readonly proxies = new Map<string, FaultProxy>();
  private readonly host: string;
  private readonly port: number;
  private readonly token: string | undefined;
  private api: Server | undefined;
  private apiAddress: { host: string; port: number } | undefined;
  private closed = false;

  constructor(options: ProxyServerOptions = {}) {
    const where = 'ProxyServer';
    knownKeys(where, options, ['host', 'port', 'token']);
    this.runtime = options.runtime ?? systemRuntime();
    const host = options.host ?? '127.0.0.1';
    if (typeof host !== 'string' || host.length === 0)
      throw invalid(where, 'host', host, 'a host name or IP');
    this.host = host;
    this.port = intOption(where, 'port', options.port, DEFAULT_API_PORT, 0, 65535);
    const token = options.token;
    if (token !== undefined && (typeof token !== 'string' || token.length < 8)) {
      throw invalid(where, 'token', '(hidden)', 'a string of at least 8 characters');
    }
    if (!isLoopback(host) && token === undefined) {
      throw new TypeError(
        `${where}: option "host" is ${JSON.stringify(host)}, not a loopback address; binding elsewhere requires option "token"`,
      );
    }
    this.token = token;
  }

  /** The API's base URL once listening, e.g. `http://127.0.0.1:8474`. */
  get url(): string | undefined {
    const address = this.apiAddress;
    if (address === undefined) return undefined;
    const host = address.host.includes(':') ? `[${address.host}]` : address.host;
    return `http://${host}:${address.port}`;
  }

  // -------------------------------------------------------------------------------------------
  // the collection

  /** Every proxy, in creation order. */
  list(): FaultProxy[] {
    return [...this.proxies.values()];
  }

  /** The proxy named `name`; throws `PROXY_NOT_FOUND`. */
  get(name: string): FaultProxy {
    const proxy = this.proxies.get(name);
    if (proxy === undefined) throw ProxyApiError.proxyNotFound();
    return proxy;
  }

  /** Creates (and, unless `enabled: false`, starts) a proxy. Throws `PROXY_EXISTS`, `PROXY_LISTEN`, … */
  async createProxy(input: ProxyInput): Promise<FaultProxy> {
    const checked = checkProxyInput(input, '');
    if (this.proxies.has(checked.name)) throw ProxyApiError.proxyExists();
    const proxy =
      checked.mode === 'http'
        ? new HttpProxy(checked.name, checked.listen, checked.upstream, this.runtime)
        : new TcpProxy(checked.name, checked.listen, checked.upstream, this.runtime);
    if (checked.enabled) await proxy.start();
    // A proxy created while another request was binding the same name: the first one wins.
    if (this.proxies.has(checked.name)) {
      await proxy.stop();
      throw ProxyApiError.proxyExists();
    }
    this.proxies.set(checked.name, proxy);
    return proxy;
  }

  /**
   * Creates or replaces proxies in one go (`POST /populate`): everything is validated first; a proxy
   * whose listen and upstream are unchanged is kept as it is (toxics and connections included).
   */
  async populate(inputs: readonly ProxyInput[]): Promise<FaultProxy[]> {
    if (!Array.isArray(inputs)) throw ProxyApiError.badRequest('expected a JSON array of proxies');
    const checked = inputs.map((input, i) => checkProxyInput(input, ` at proxy ${i + 1}`));
    const names = new Set<string>();
    for (const input of checked) {
      if (names.has(input.name)) {
        throw new ProxyApiError('PROXY_BAD_REQUEST', `duplicate proxy name "${input.name}"`, 500);
      }
      names.add(input.name);
    }
    const result: FaultProxy[] = [];
    for (const input of checked) {
      const existing = this.proxies.get(input.name);
      if (
        existing !== undefined &&
        existing.upstream === input.upstream &&
        sameListen(existing, input.listen)
      ) {
        await existing.update({ enabled: input.enabled });
        result.push(existing);
        continue;
      }
      if (existing !== undefined) await this.deleteProxy(input.name);
      result.push(await this.createProxy(input));
    }
    return result;
  }

  /** Changes a proxy's listen address, upstream or enabled state. */
  async updateProxy(name: string, changes: Partial<ProxyInput>): Promise<FaultProxy> {
    const proxy = this.get(name);
    const update: { listen?: string; upstream?: string; enabled?: boolean } = {};
    if (changes.listen !== undefined) update.listen = checkAddress('listen', changes.listen);
    if (changes.upstream !== undefined) update.upstream = checkAddress('upstream', changes.upstream);
    if (changes.enabled !== undefined) {
      if (typeof changes.enabled !== 'boolean') throw ProxyApiError.badRequest('enabled must be a boolean');
      update.enabled = changes.enabled;
    }
    await proxy.update(update);
    return proxy;
  }

  /** Stops and removes a proxy; nothing else is touched. */
  async deleteProxy(name: string): Promise<void> {
    const proxy = this.get(name);
    this.proxies.delete(name);
    await proxy.stop();
  }

  /**
   * Adds a toxic (Toxiproxy's JSON: `type`, `stream`, `toxicity`, `attributes`, `name`; plus
   * `toxicity_mode`). Open connections get it at once.
   */
  addToxic(proxyName: string, body: unknown): ToxicSpec {
    const proxy = this.get(proxyName);
    const spec = toToxic(body, undefined);
    if (!proxy.accepts(spec.type)) throw ProxyApiError.invalidToxicType();
    if (spec.match !== undefined && proxy.mode !== 'http') {
      throw ProxyApiError.badRequest('match applies to HTTP-mode proxies only');
    }
    proxy.addToxic(spec);
    return spec;
  }

  /** Updates a toxic's `attributes`, `toxicity` or `toxicity_mode`. */
  updateToxic(proxyName: string, toxicName: string, body: unknown): ToxicSpec {
    const proxy = this.get(proxyName);
    const previous = proxy.getToxic(toxicName);
    if (previous === undefined) throw ProxyApiError.toxicNotFound();
    const spec = toToxic(body, previous);
    if (spec.match !== undefined && proxy.mode !== 'http') {
      throw ProxyApiError.badRequest('match applies to HTTP-mode proxies only');
    }
    proxy.replaceToxic(spec);
    return spec;
  }

  removeToxic(proxyName: string, toxicName: string): void {
    this.get(proxyName).removeToxic(toxicName);
  }

  /** `POST /reset`: enables every proxy and removes every toxic. */
  async reset(): Promise<void> {
    for (const proxy of this.proxies.values()) {
      await proxy.start();
      proxy.resetToxics();
    }
  }

  // -------------------------------------------------------------------------------------------
  // the API

  /** Starts the HTTP API. Rejects when its address cannot be bound. */
  async listen(): Promise<{ host: string; port: number; url: string }> {
    if (this.closed) throw new ProxyApiError('INVALID_STATE', 'ProxyServer: closed', 500);
    if (this.api !== undefined)
      throw new ProxyApiError('INVALID_STATE', 'ProxyServer: already listening', 500);
    const api = createServer((request, response) => {
      this.handle(request, response).catch((error: unknown) => {
        sendError(response, error);
      });
    });
    api.keepAliveTimeout = 5000;
    api.headersTimeout = 15_000;
    api.requestTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      api.once('error', reject);
      api.listen({ host: this.host, port: this.port }, () => {
        api.off('error', reject);
        resolve();
      });
    });
    this.api = api;
    const address = api.address();
    const port = typeof address === 'object' && address !== null ? address.port : this.port;
    this.apiAddress = { host: this.host, port };
    return { host: this.host, port, url: this.url as string };
  }

  /** Stops the API and every proxy, closing every connection. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    const api = this.api;
    this.api = undefined;
    const stopping = [...this.proxies.values()].map((p) => p.stop());
    this.proxies.clear();
    await Promise.all(stopping);
    if (api !== undefined) {
      await new Promise<void>((resolve) => {
        api.close(() => resolve());
        api.closeAllConnections();
      });
    }
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    // As Toxiproxy: a browser must not drive the proxy (a page could otherwise reach it on loopback).
    if ((request.headers['user-agent'] ?? '').startsWith('Mozilla/')) {
      sendText(response, 403, 'User agent not allowed\n');
      return;
    }
    if (this.token !== undefined && request.headers.authorization !== `Bearer ${this.token}`) {
      sendJson(response, 401, { error: 'unauthorized: send Authorization: Bearer <token>', status: 401 });
      return;
    }
    const url = new URL(request.url ?? '/', 'http://proxy');
    const parts = url.pathname
      .split('/')
      .filter((p) => p !== '')
      .map((p) => decodeURIComponent(p));
    const method = request.method ?? 'GET';
    const route = match(parts);
    if (route === undefined) {
      sendText(response, 404, '404 page not found\n');
      return;
    }
    if (!route.methods.includes(method)) {
      response.writeHead(405, { 'content-length': 0 });
      response.end();
      return;
    }
    const body = method === 'GET' || method === 'DELETE' ? undefined : await readBody(request);
    await route.run(this, method, body, response);
  }
}

// ---------------------------------------------------------------------------------------------
// routes

type Handler = (
  server: ProxyServer,
  method: string,
  body: string | undefined,
  response: ServerResponse,
) => Promise<void>;
interface Route {
  methods: readonly string[];
  run: Handler;
}

function match(parts: readonly string[]): Route | undefined {
  const [a, b, c, d, ...rest] = parts;
  if (rest.length > 0) return undefined;
  if (a === 'version' && b === undefined) return { methods: ['GET'], run: version };
  if (a === 'reset' && b === undefined) return { methods: ['POST'], run: reset };
  if (a === 'populate' && b === undefined) return { methods: ['POST'], run: populate };
  if (a !== 'proxies') return undefined;
  if (b === undefined) return { methods: ['GET', 'POST'], run: proxies };
  if (c === undefined)
    return { methods: ['GET', 'POST', 'PATCH', 'DELETE'], run: (s, m, body, r) => proxy(s, m, b, body, r) };
  if (c !== 'toxics') return undefined;
  if (d === undefined) return { methods: ['GET', 'POST'], run: (s, m, body, r) => toxics(s, m, b, body, r) };
  return { methods: ['GET', 'POST', 'PATCH', 'DELETE'], run: (s, m, body, r) => toxic(s, m, b, d, body, r) };
}

async function version(_server: ProxyServer, _m: string, _b: string | undefined, response: ServerResponse) {
  response.writeHead(200, { 'content-type': 'application/json;charset=utf-8' });
  response.end(`{"version": "${TOXIPROXY_API_VERSION}"}\n`);
}

async function reset(server: ProxyServer, _m: string, _b: string | undefined, response: ServerResponse) {
  await server.reset();
  response.writeHead(204);
  response.end();
}

async function populate(server: ProxyServer, _m: string, body: string | undefined, response: ServerResponse) {
  let created: FaultProxy[] = [];
  let failure: ProxyApiError | undefined;
  try {
    const input = parseJson(body);
    if (!Array.isArray(input)) throw ProxyApiError.badRequest('expected a JSON array of proxies');
    created = await server.populate(input as ProxyInput[]);
  } catch (error) {
    failure = asApiError(error);
  }
  // Toxiproxy's shape: the error's fields (when there is one) beside the proxies applied (null when none).
  const proxies = created.length === 0 ? null : created.map((p) => p.json());
  const payload =
    failure === undefined ? { proxies } : { error: failure.message, status: failure.status, proxies };
  sendJson(response, failure?.status ?? 201, payload);
}

async function proxies(
  server: ProxyServer,
  method: string,
  body: string | undefined,
  response: ServerResponse,
) {
  if (method === 'GET') {
    const all: Record<string, ProxyJson> = {};
    for (const p of server.list()) all[p.name] = p.json();
    sendJson(response, 200, all);
    return;
  }
  const input = parseJson(body);
  const created = await server.createProxy(input as ProxyInput);
  sendJson(response, 201, created.json());
}

async function proxy(
  server: ProxyServer,
  method: string,
  name: string,
  body: string | undefined,
  response: ServerResponse,
) {
  if (method === 'GET') {
    sendJson(response, 200, server.get(name).json());
  } else if (method === 'DELETE') {
    await server.deleteProxy(name);
    response.writeHead(204);
    response.end();
  } else {
    server.get(name);
    const input = parseJson(body);
    if (typeof input !== 'object' || input === null || Array.isArray(input)) {
      throw ProxyApiError.badRequest('expected a JSON object');
    }
    const updated = await server.updateProxy(name, input as Partial<ProxyInput>);
    sendJson(response, 200, updated.json());
  }
}

async function toxics(
  server: ProxyServer,
  method: string,
  name: string,
  body: string | undefined,
  response: ServerResponse,
) {
  if (method === 'GET') {
    sendJson(response, 200, server.get(name).json().toxics);
    return;
  }
  server.get(name);
  const spec = server.addToxic(name, parseJson(body));
  sendJson(response, 200, toxicJson(spec));
}

async function toxic(
  server: ProxyServer,
  method: string,
  proxyName: string,
  toxicName: string,
  body: string | undefined,
  response: ServerResponse,
) {
  const target = server.get(proxyName);
  if (method === 'GET') {
    const spec = target.getToxic(toxicName);
    if (spec === undefined) throw ProxyApiError.toxicNotFound();
    sendJson(response, 200, toxicJson(spec));
  } else if (method === 'DELETE') {
    server.removeToxic(proxyName, toxicName);
    response.writeHead(204);
    response.end();
  } else {
    if (target.getToxic(toxicName) === undefined) throw ProxyApiError.toxicNotFound();
    const spec = server.updateToxic(proxyName, toxicName, parseJson(body));
    sendJson(response, 200, toxicJson(spec) satisfies ToxicJson);
  }
}

// ---------------------------------------------------------------------------------------------
// helpers

function checkAddress(field: string, value: unknown): string {
  if (typeof value !== 'string') throw ProxyApiError.badRequest(`${field} must be a string`);
  if (parseHostPort(value) === undefined) {
    throw ProxyApiError.badRequest(`${field}: invalid address ${JSON.stringify(value)}; expected host:port`);
  }
  return value;
}

function checkProxyInput(
  input: unknown,
  at: string,
): { name: string; listen: string; upstream: string; enabled: boolean; mode: 'tcp' | 'http' } {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw ProxyApiError.badRequest('expected a JSON object');
  }
  const { name, listen, upstream, enabled, mode } = input as Record<string, unknown>;
  if (mode !== undefined && mode !== 'tcp' && mode !== 'http') {
    throw ProxyApiError.badRequest(`mode must be "tcp" or "http", got ${JSON.stringify(mode)}`);
  }
  if (name !== undefined && typeof name !== 'string') throw ProxyApiError.badRequest('name must be a string');
  if (name === undefined || name === '') throw ProxyApiError.missingField(`name${at}`);
  if (upstream !== undefined && typeof upstream !== 'string') {
    throw ProxyApiError.badRequest('upstream must be a string');
  }
  if (upstream === undefined || upstream === '') throw ProxyApiError.missingField(`upstream${at}`);
  if (enabled !== undefined && typeof enabled !== 'boolean') {
    throw ProxyApiError.badRequest('enabled must be a boolean');
  }
  return {
    name,
    listen: listen === undefined || listen === '' ? '127.0.0.1:0' : checkAddress('listen', listen),
    upstream: checkAddress('upstream', upstream),
    enabled: enabled ?? true,
    mode: mode ?? 'tcp',
  };
}

/** Toxiproxy keeps a populated proxy when its bound address and upstream are unchanged. */
function sameListen(proxy: FaultProxy, listen: string): boolean {
  return proxy.listen === listen;
}

function toToxic(body: unknown, previous: ToxicSpec | undefined): ToxicSpec {
  try {
    return parseToxic(body, previous);
  } catch (error) {
    if (error instanceof ToxicDefinitionError) {
      if (error.kind === 'invalid_type') throw ProxyApiError.invalidToxicType();
      if (error.kind === 'invalid_stream') throw ProxyApiError.invalidStream();
      throw ProxyApiError.badRequest(error.message);
    }
    throw error;
  }
}

function parseJson(body: string | undefined): unknown {
  if (body === undefined || body.trim() === '') throw ProxyApiError.badRequest('EOF');
  try {
    return JSON.parse(body) as unknown;
  } catch (error) {
    throw ProxyApiError.badRequest((error as Error).message);
  }
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(ProxyApiError.badRequest(`body larger than ${MAX_BODY} bytes`));
        request.destroy();
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

function asApiError(error: unknown): ProxyApiError {
  if (error instanceof ProxyApiError) return error;
  return new ProxyApiError(
    'PROXY_BAD_REQUEST',
    error instanceof Error ? error.message : String(error),
    500,
    error,
  );
}

function sendJson(response: ServerResponse, status: number, payload: unknown): void {
  const text = JSON.stringify(payload);
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  response.end(text);
}

function sendText(response: ServerResponse, status: number, text: string): void {
  response.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'x-content-type-options': 'nosniff',
    'content-length': Buffer.byteLength(text),
  });
  response.end(text);
}

/** Toxiproxy's `apiError`: the JSON `{"error","status"}` sent the way Go's `http.Error` sends text. */
function sendError(response: ServerResponse, error: unknown): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  const failure = asApiError(error);
  sendText(
    response,
    failure.status,
    `${JSON.stringify({ error: failure.message, status: failure.status })}\n`,
  );
}
