/**
 * One proxied TCP connection: a client socket, an upstream socket, and a link per direction that runs
 * the bytes through that direction's toxic stages. With no toxic a link writes each chunk straight to the
 * other socket; either way the reading side pauses while the writing side (or a toxic holding data) is
 * over its high-water mark, so a slow peer never makes the proxy buffer without bound.
 */
import type { Socket } from 'node:net';
import type { Clock } from '../../core/clock.js';
import type { Random } from '../../core/random.js';
import {
  createStage,
  type Stage,
  type StageHost,
  type StageSink,
  type ToxicSpec,
  type ToxicStream,
} from './toxics.js';

/** Bytes a link's toxics may hold before the reading side pauses. */
const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;

/** What a connection needs from its proxy. */
export interface ConnectionOwner {
  readonly clock: Clock;
  /** The proxy's random stream; each toxic forks its own per connection from it. */
  readonly random: Random;
  toxics(stream: ToxicStream): readonly ToxicSpec[];
  activated(connection: Connection, spec: ToxicSpec): void;
  closed(connection: Connection): void;
}

const uncork = (socket: Socket) => socket.uncork();

class SocketSink implements StageSink {
  constructor(private readonly link: Link) {}
  write(chunk: Buffer): void {
    const dest = this.link.dest;
    if (dest.destroyed || dest.writableEnded) return;
    if (!dest.write(chunk)) this.link.pause();
  }

  /**
   * The path with no toxic: chunks read in one turn of the event loop go out in one writev (fewer
   * syscalls per byte). Not used behind toxics: a slicer's pieces must stay separate writes.
   */
  writeBatched(chunk: Buffer): void {
    const dest = this.link.dest;
    if (dest.destroyed || dest.writableEnded) return;
    if (dest.writableCorked === 0) {
      dest.cork();
      process.nextTick(uncork, dest);
    }
    if (!dest.write(chunk)) this.link.pause();
  }
  end(): void {
    const dest = this.link.dest;
    if (!dest.destroyed && !dest.writableEnded) dest.end();
  }
}

/** One direction: reads `source`, runs the chunks through the stages, writes `dest`. */
class Link implements StageHost {
  private stages: Stage[] = [];
  private head: StageSink;
  private readonly sink: SocketSink;
  private held_ = 0;
  private paused = false;

  constructor(
    readonly connection: Connection,
    readonly source: Socket,
    readonly dest: Socket,
    readonly stream: ToxicStream,
  ) {
    this.sink = new SocketSink(this);
    this.head = this.sink;
    source.on('data', (chunk: Buffer) => {
      if (this.head === this.sink) {
        this.sink.writeBatched(chunk);
        return;
      }
      this.head.write(chunk);
      if (this.held_ > HIGH_WATER) this.pause();
    });
    source.on('end', () => this.head.end());
    dest.on('drain', () => this.maybeResume());
  }

  get clock(): Clock {
    return this.connection.owner.clock;
  }

  /** Puts the chain of `specs` in place: kept toxics keep their state, removed ones release what they hold. */
  setChain(specs: readonly ToxicSpec[]): void {
    const kept = new Set(specs);
    for (const stage of this.stages) if (!kept.has(stage.spec)) stage.flush();
    const existing = new Map(this.stages.map((s) => [s.spec, s]));
    const created: Stage[] = [];
    const owner = this.connection.owner;
    const stages = specs.map((spec) => {
      const stage = existing.get(spec);
      if (stage !== undefined) return stage;
      const random = owner.random.fork(`${spec.name}#${this.connection.id}`);
      const fresh = createStage(spec, this, random, this.sink);
      created.push(fresh);
      return fresh;
    });
    for (let i = stages.length - 1; i >= 0; i--) {
      (stages[i] as Stage).next = i + 1 < stages.length ? (stages[i + 1] as Stage) : this.sink;
    }
    this.stages = stages;
    this.head = stages[0] ?? this.sink;
    for (const stage of created) {
      if (!this.connection.isClosed) stage.start();
    }
  }

  dispose(): void {
    for (const stage of this.stages) stage.dispose();
    this.stages = [];
    this.head = this.sink;
  }

  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.source.pause();
  }

  private maybeResume(): void {
    if (!this.paused || this.held_ > LOW_WATER || this.dest.writableNeedDrain) return;
    this.paused = false;
    this.source.resume();
  }

  close(reason: string): void {
    this.connection.close(reason);
  }

  reset(reason: string): void {
    this.connection.reset(reason);
  }

  held(delta: number): void {
    this.held_ += delta;
    if (delta < 0) this.maybeResume();
  }

  activated(stage: Stage): void {
    this.connection.owner.activated(this.connection, stage.spec);
  }
}

/** A client connection and its upstream. Created by the proxy once the upstream connection is open. */
export class Connection {
  private readonly upstreamLink: Link;
  private readonly downstreamLink: Link;
  private open = 2;
  private closing = false;

  constructor(
    readonly owner: ConnectionOwner,
    /** The connection's number within its proxy, from 1 (names its random streams). */
    readonly id: number,
    readonly client: Socket,
    readonly upstream: Socket,
  ) {
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    this.upstreamLink = new Link(this, client, upstream, 'upstream');
    this.downstreamLink = new Link(this, upstream, client, 'downstream');
    const onClose = () => {
      if (--this.open === 0) this.finish();
    };
    client.once('close', onClose);
    upstream.once('close', onClose);
    // A reset on one side is passed on as a reset; any other failure closes the other side.
    client.on('error', (error: NodeJS.ErrnoException) => Connection.abort(upstream, error));
    upstream.on('error', (error: NodeJS.ErrnoException) => Connection.abort(client, error));
    this.upstreamLink.setChain(owner.toxics('upstream'));
    this.downstreamLink.setChain(owner.toxics('downstream'));
  }

  private static abort(other: Socket, error: NodeJS.ErrnoException): void {
    if (other.destroyed) return;
    if (error.code === 'ECONNRESET') resetSocket(other);
    else other.destroy();
  }

  get isClosed(): boolean {
    return this.closing;
  }

  /** Re-reads the proxy's toxics of `stream` (a toxic was added, updated or removed). */
  toxicsChanged(stream: ToxicStream): void {
    if (this.closing) return;
    (stream === 'upstream' ? this.upstreamLink : this.downstreamLink).setChain(this.owner.toxics(stream));
  }

  /** Closes both sides (FIN), dropping what toxics still hold. */
  close(_reason: string): void {
    if (this.closing) return;
    this.closing = true;
    this.upstreamLink.dispose();
    this.downstreamLink.dispose();
    this.client.destroySoon();
    this.upstream.destroySoon();
  }

  /** Resets both sides (RST). */
  reset(_reason: string): void {
    if (this.closing) return;
    this.closing = true;
    this.upstreamLink.dispose();
    this.downstreamLink.dispose();
    resetSocket(this.client);
    resetSocket(this.upstream);
  }

  /** Destroys both sockets at once (the proxy is stopping). */
  destroy(): void {
    this.closing = true;
    this.upstreamLink.dispose();
    this.downstreamLink.dispose();
    this.client.destroy();
    this.upstream.destroy();
  }

  private finish(): void {
    this.closing = true;
    this.upstreamLink.dispose();
    this.downstreamLink.dispose();
    this.owner.closed(this);
  }
}

function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  try {
    socket.resetAndDestroy();
  } catch {
    // Not connected (yet or any more): there is no TCP connection to reset.
    socket.destroy();
  }
}
