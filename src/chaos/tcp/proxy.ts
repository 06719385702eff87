/**
 * One proxy: a listening socket that forwards every connection to its upstream through the proxy's toxics.
 * Adding, updating or removing a toxic applies to the connections already open (as Toxiproxy does) and
 * closes nothing; disabling or removing the proxy closes its listener and every connection.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Clock } from '../../core/clock.js';
import type { EventSink } from '../../core/events.js';
import type { Random } from '../../core/random.js';
import type { Runtime } from '../../core/runtime.js';
import { Connection, type ConnectionOwner } from './connection.js';
import { ProxyApiError } from './errors.js';
import { ToxicList } from './toxic-list.js';
import {
  TCP_TOXIC_TYPES,
  type ToxicJson,
  type ToxicSpec,
  type ToxicStream,
  type ToxicType,
  toxicJson,
} from './toxics.js';

declare module '../../core/events.js' {
  interface BulwarkEventMap {
    /**
     * A proxy's toxic acted on a connection: once per connection (`per_connection` toxicity) or per chunk
     * it fired on (`per_request`). `source` is the proxy's name; `connection` counts from 1 per proxy.
     */
    'proxy.toxic': {
      proxy: string;
      toxic: string;
      toxicType: string;
      stream: ToxicStream;
      connection: number;
    };
    /** A client connection through a proxy opened (its upstream connected) or closed. */
    'proxy.connection': { proxy: string; connection: number; state: 'open' | 'closed' };
  }
}

/** A proxy as the Toxiproxy API shows it. */
export interface ProxyJson {
  name: string;
  listen: string;
  upstream: string;
  enabled: boolean;
  toxics: ToxicJson[];
  /** Bulwark's extension, present for HTTP-mode proxies only. */
  mode?: 'http';
}

/** A `host:port` address; `[v6]:port` for IPv6. An empty host means every interface. */
export interface HostPort {
  host: string;
  port: number;
}

/** Parses `host:port` as Toxiproxy accepts it (`localhost:0`, `:8080`, `[::1]:6379`). */
export function parseHostPort(text: string): HostPort | undefined {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]*)):(\d{1,5})$/.exec(text);
  if (match === null) return undefined;
  const port = Number(match[3]);
  if (port > 65535) return undefined;
  return { host: match[1] ?? match[2] ?? '', port };
}

export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** `localhost` listens on 127.0.0.1 (as Go resolves it), an empty host on every interface. */
function listenHost(host: string): string | undefined {
  if (host === '') return undefined;
  return host === 'localhost' ? '127.0.0.1' : host;
}

/**
 * What the TCP and HTTP proxies share: a name, an upstream, a listen address bound while enabled (with
 * Toxiproxy's errors), `update` as `POST /proxies/{name}` does it, their JSON, and their toxics.
 */
export abstract class ListeningProxy<S extends Server = Server> extends ToxicList {
  abstract readonly mode: 'tcp' | 'http';
  protected server: S | undefined;
  protected listenAddress: string;

  constructor(
    readonly name: string,
    listen: string,
    public upstream: string,
  ) {
    super();
    this.listenAddress = listen;
  }

  /** The address the proxy listens on (the bound port once enabled, for `:0`). */
  get listen(): string {
    return this.listenAddress;
  }

  get enabled(): boolean {
    return this.server !== undefined;
  }

  abstract start(): Promise<void>;
  abstract stop(): Promise<void>;

  json(): ProxyJson {
    return {
      name: this.name,
      listen: this.listenAddress,
      upstream: this.upstream,
      enabled: this.enabled,
      toxics: this.toxicList.map(toxicJson),
      ...(this.mode === 'http' ? { mode: 'http' as const } : {}),
    };
  }

  /** Changes listen/upstream/enabled as `POST /proxies/{name}` does: a new address restarts the proxy. */
  async update(changes: { listen?: string; upstream?: string; enabled?: boolean }): Promise<void> {
    const listen = changes.listen ?? this.listenAddress;
    const upstream = changes.upstream ?? this.upstream;
    const enabled = changes.enabled ?? this.enabled;
    if (listen !== this.listenAddress || upstream !== this.upstream) {
      await this.stop();
      this.listenAddress = listen;
      this.upstream = upstream;
    }
    if (enabled && !this.enabled) await this.start();
    else if (!enabled && this.enabled) await this.stop();
  }

  /**
   * Binds `server` to the listen address and makes it this proxy's server; rejects with a 500 error (as
   * Toxiproxy) when the address is invalid or cannot be bound.
   */
  protected async listenWith(server: S): Promise<void> {
    const address = parseHostPort(this.listenAddress);
    if (address === undefined) {
      throw new ProxyApiError('PROXY_LISTEN', `listen tcp ${this.listenAddress}: address invalid`, 500);
    }
    const host = listenHost(address.host);
    await new Promise<void>((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException) => {
        server.close();
        reject(
          new ProxyApiError(
            'PROXY_LISTEN',
            `listen tcp ${this.listenAddress}: bind: ${describeListenError(error)}`,
            500,
            error,
          ),
        );
      };
      server.once('error', onError);
      server.listen({ host, port: address.port, exclusive: true }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    const bound = server.address();
    if (bound !== null && typeof bound === 'object') {
      this.listenAddress = formatHostPort(host === undefined ? '' : bound.address, bound.port);
    }
    server.on('error', () => {});
    this.server = server;
  }
}

/**
 * A TCP proxy with toxics. Built and owned by a {@link ProxyServer}; use the server's methods (or its
 * HTTP API) to change it.
 */
export class TcpProxy extends ListeningProxy implements ConnectionOwner {
  readonly clock: Clock;
  readonly random: Random;
  private readonly events: EventSink;
  private readonly connections = new Set<Connection>();
  /** Client sockets accepted whose upstream is still connecting. */
  private readonly pending = new Set<Socket>();
  private nextId = 1;

  constructor(name: string, listen: string, upstream: string, runtime: Runtime) {
    super(name, listen, upstream);
    this.clock = runtime.clock;
    this.random = runtime.random.fork(`proxy:${name}`);
    this.events = runtime.events;
  }

  readonly mode = 'tcp';

  accepts(type: ToxicType): boolean {
    return (TCP_TOXIC_TYPES as readonly string[]).includes(type);
  }

  /** Open connections (for tests and leak checks). */
  get connectionCount(): number {
    return this.connections.size + this.pending.size;
  }

  protected toxicsChanged(stream: ToxicStream): void {
    for (const connection of this.connections) connection.toxicsChanged(stream);
  }

  /** Starts listening; rejects with a 500 error (as Toxiproxy) when the address cannot be bound. */
  async start(): Promise<void> {
    if (this.server !== undefined) return;
    await this.listenWith(
      createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => this.accept(socket)),
    );
  }

  /** Stops listening and closes every connection (including those still connecting). */
  async stop(): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    this.server = undefined;
    for (const socket of this.pending) socket.destroy();
    this.pending.clear();
    for (const connection of this.connections) connection.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    const target = parseHostPort(this.upstream);
    if (target === undefined) {
      client.destroy();
      return;
    }
    this.pending.add(client);
    client.on('error', () => {});
    const upstream = connect({
      host: target.host === '' ? 'localhost' : target.host,
      port: target.port,
      allowHalfOpen: true,
    });
    const onFail = () => {
      this.pending.delete(client);
      client.destroy();
      upstream.destroy();
    };
    upstream.once('error', onFail);
    client.once('close', onFail);
    upstream.once('connect', () => {
      upstream.off('error', onFail);
      client.off('close', onFail);
      this.pending.delete(client);
      if (client.destroyed || this.server === undefined) {
        upstream.destroy();
        client.destroy();
        return;
      }
      const id = this.nextId++;
      const connection = new Connection(this, id, client, upstream);
      this.connections.add(connection);
      this.connectionEvent(id, 'open');
      client.resume();
    });
  }

  activated(connection: Connection, spec: ToxicSpec): void {
    const events = this.events;
    if (events.wants('proxy.toxic')) {
      events.emit({
        type: 'proxy.toxic',
        source: this.name,
        at: this.clock.now(),
        proxy: this.name,
        toxic: spec.name,
        toxicType: spec.type,
        stream: spec.stream,
        connection: connection.id,
      });
    }
    if (events.wants('fault.injected')) {
      events.emit({
        type: 'fault.injected',
        source: `${this.name}/${spec.name}`,
        at: this.clock.now(),
        fault: `tcp.${spec.type}`,
        call: connection.id,
      });
    }
  }

  private connectionEvent(connection: number, state: 'open' | 'closed'): void {
    if (!this.events.wants('proxy.connection')) return;
    const at = this.clock.now();
    this.events.emit({
      type: 'proxy.connection',
      source: this.name,
      at,
      proxy: this.name,
      connection,
      state,
    });
  }

  closed(connection: Connection): void {
    if (!this.connections.delete(connection)) return;
    this.connectionEvent(connection.id, 'closed');
  }
}

function describeListenError(error: NodeJS.ErrnoException): string {
  if (error.code === 'EADDRINUSE') return 'address already in use';
  if (error.code === 'EACCES') return 'permission denied';
  if (error.code === 'EADDRNOTAVAIL') return 'cannot assign requested address';
  return error.message;
}
