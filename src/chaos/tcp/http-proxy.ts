/**
 * The proxy's HTTP mode: a reverse proxy for out-of-process HTTP services, whose toxics act per request
 * (they become the rules of the HTTP fault engine): `http_status` answers 429/503/… without reaching the
 * upstream, `latency` delays the request, `reset_peer` resets the client's connection, `timeout` never
 * answers, `limit_data` cuts the response body. Toxicity is drawn per request from the seed; a toxic's
 * `match` narrows it to a host, method or path.
 */
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { Socket } from 'node:net';
import type { Clock, Timer } from '../../core/clock.js';
import type { Runtime } from '../../core/runtime.js';
import { type HttpFaultRule, HttpFaultRules, type HttpFaultSpec } from '../http/rules.js';
import { schedule } from '../schedule.js';
import { ProxyApiError } from './errors.js';
import { ListeningProxy, parseHostPort } from './proxy.js';
import { HTTP_TOXIC_TYPES, type ToxicAttributes, type ToxicSpec, type ToxicType } from './toxics.js';

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  404: 'Not Found',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

function faultOf(spec: ToxicSpec): HttpFaultSpec {
  switch (spec.type) {
    case 'http_status': {
      const { status, retry_after } = spec.attributes as ToxicAttributes['http_status'];
      const headers: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8' };
      if (retry_after > 0) headers['retry-after'] = String(retry_after);
      return { kind: 'status', status, headers, body: `${STATUS_TEXT[status] ?? status}\n` };
    }
    case 'latency': {
      const { latency, jitter } = spec.attributes as ToxicAttributes['latency'];
      return { kind: 'latency', delay: latency, jitter };
    }
    case 'reset_peer':
      return { kind: 'reset' };
    case 'limit_data':
      return { kind: 'truncate', bytes: (spec.attributes as ToxicAttributes['limit_data']).bytes };
    case 'timeout':
      return { kind: 'timeout', after: (spec.attributes as ToxicAttributes['timeout']).timeout };
    default:
      throw ProxyApiError.invalidToxicType();
  }
}

/** An HTTP reverse proxy with per-request toxics. Built by a `ProxyServer` for `mode: 'http'`. */
export class HttpProxy extends ListeningProxy<Server> {
  readonly mode = 'http';
  private readonly clock: Clock;
  private rules: HttpFaultRules;
  private readonly agent = new Agent({ keepAlive: true });
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<Timer>();

  constructor(
    name: string,
    listen: string,
    upstream: string,
    private readonly runtime: Runtime,
  ) {
    super(name, listen, upstream);
    this.clock = runtime.clock;
    this.rules = this.compile();
  }

  get connectionCount(): number {
    return this.sockets.size;
  }

  accepts(type: ToxicType): boolean {
    return (HTTP_TOXIC_TYPES as readonly string[]).includes(type);
  }

  protected toxicsChanged(): void {
    this.rules = this.compile();
  }

  /** Toxics become rules, in order; toxicity becomes a per-request rate drawn from the rule's stream. */
  private compile(): HttpFaultRules {
    const rules: HttpFaultRule[] = this.toxicList.map((spec) => ({
      name: spec.name,
      fault: faultOf(spec),
      ...(spec.toxicity < 1 ? { schedule: schedule.rate(spec.toxicity) } : {}),
      ...(spec.match?.host === undefined ? {} : { host: spec.match.host }),
      ...(spec.match?.method === undefined ? {} : { method: spec.match.method }),
      ...(spec.match?.path === undefined ? {} : { path: spec.match.path }),
    }));
    return new HttpFaultRules({ rules, name: `proxy:${this.name}`, runtime: this.runtime });
  }

  async start(): Promise<void> {
    if (this.server !== undefined) return;
    const server = createServer((request, response) => this.handle(request, response));
    server.keepAliveTimeout = 5000;
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    await this.listenWith(server);
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    this.server = undefined;
    for (const timer of this.timers) timer.cancel();
    this.timers.clear();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    this.agent.destroy();
  }

  private later(ms: number, action: () => void): void {
    const timer = this.clock.setTimer(
      ms,
      () => {
        this.timers.delete(timer);
        action();
      },
      undefined,
    );
    this.timers.add(timer);
  }

  private handle(request: IncomingMessage, response: ServerResponse): void {
    const hostHeader = request.headers.host ?? '';
    const parsed = parseHostPort(hostHeader);
    const decision = this.rules.decide({
      host: parsed?.host ?? hostHeader,
      ...(parsed === undefined ? {} : { port: parsed.port }),
      method: request.method ?? 'GET',
      path: request.url ?? '/',
    });
    if (decision === undefined) {
      this.forward(request, response, undefined);
      return;
    }
    switch (decision.kind) {
      case 'status': {
        request.resume();
        const body = Buffer.from(decision.body);
        response.writeHead(decision.status, { ...decision.headers, 'content-length': body.length });
        response.end(body);
        return;
      }
      case 'reset':
        request.socket.resetAndDestroy();
        return;
      case 'timeout':
        request.resume();
        if (decision.afterMs > 0) this.later(decision.afterMs, () => request.socket.destroy());
        return;
      case 'latency':
        request.pause();
        this.later(decision.delayMs, () => {
          if (!request.socket.destroyed) this.forward(request, response, undefined);
        });
        return;
      case 'truncate':
        this.forward(request, response, decision.bytes);
        return;
    }
  }

  private forward(request: IncomingMessage, response: ServerResponse, limit: number | undefined): void {
    const target = parseHostPort(this.upstream) as { host: string; port: number };
    const outgoing = httpRequest({
      host: target.host === '' ? 'localhost' : target.host,
      port: target.port,
      method: request.method,
      path: request.url,
      headers: request.headers,
      agent: this.agent,
    });
    outgoing.on('error', () => {
      if (!response.headersSent) {
        response.writeHead(502, { 'content-type': 'text/plain; charset=utf-8' });
        response.end('Bad Gateway\n');
      } else {
        response.destroy();
      }
    });
    outgoing.on('response', (incoming) => {
      response.writeHead(incoming.statusCode ?? 502, incoming.statusMessage, incoming.headers);
      if (limit === undefined) {
        incoming.pipe(response);
        return;
      }
      let passed = 0;
      let cut = false;
      incoming.on('data', (chunk: Buffer) => {
        if (cut) return;
        const room = limit - passed;
        if (chunk.length <= room) {
          passed += chunk.length;
          response.write(chunk);
          return;
        }
        // The body stops short of what the headers promised, as when a server dies mid-response.
        cut = true;
        response.write(chunk.subarray(0, room), () => response.socket?.destroy());
        incoming.destroy();
      });
      incoming.on('end', () => {
        if (!cut) response.end();
      });
    });
    request.pipe(outgoing);
    request.resume();
  }
}
