/**
 * Toxics: what a proxy does to the bytes of one direction of a connection. The definitions follow
 * Toxiproxy 2.x (names, attributes, units, defaults); each becomes a *stage* per connection direction,
 * a transform that holds, delays, splits, drops or cuts the chunks flowing through it.
 *
 * Toxicity is decided per connection (Toxiproxy's way: once, when the toxic meets the connection) or per
 * chunk (`toxicity_mode: 'per_request'`: on a request/response protocol each request is one chunk), from a
 * random stream forked per toxic and per connection number, so a seed reproduces every decision whatever
 * order connections interleave in.
 */
import type { Clock, Timer } from '../../core/clock.js';
import type { Random } from '../../core/random.js';

/** The toxics a TCP proxy implements (Toxiproxy's names). */
export const TCP_TOXIC_TYPES = [
  'latency',
  'bandwidth',
  'timeout',
  'reset_peer',
  'slow_close',
  'limit_data',
  'slicer',
] as const;

/**
 * The toxics an HTTP-mode proxy implements, per request: `latency` delays it, `timeout` never answers
 * (closing after `timeout` ms unless 0), `reset_peer` resets the connection, `limit_data` cuts the
 * response body after `bytes`, and Bulwark's `http_status` answers `status` (with `Retry-After:
 * retry_after` seconds when > 0) without reaching the upstream.
 */
export const HTTP_TOXIC_TYPES = ['latency', 'timeout', 'reset_peer', 'limit_data', 'http_status'] as const;

/** Every toxic type, TCP and HTTP. */
export const TOXIC_TYPES = [...TCP_TOXIC_TYPES, 'http_status'] as const;

export type ToxicType = (typeof TOXIC_TYPES)[number];
export type TcpToxicType = (typeof TCP_TOXIC_TYPES)[number];

/** Which requests an HTTP-mode toxic applies to (Bulwark's extension; every field optional). */
export interface ToxicMatch {
  /** Host name (from the Host header), `host:port`, or `*.example.com`. */
  host?: string;
  /** Method, any case. */
  method?: string;
  /** Exact path, or a prefix ending in `*`. */
  path?: string;
}

/** Which way the bytes a toxic acts on flow: `upstream` from client to server, `downstream` back. */
export type ToxicStream = 'upstream' | 'downstream';

/** When toxicity is drawn: once per connection (Toxiproxy) or for every chunk/request. */
export type ToxicityMode = 'per_connection' | 'per_request';

/** Attributes by toxic type, in Toxiproxy's units. */
export interface ToxicAttributes {
  /** Adds `latency` ms ± `jitter` ms to every chunk. */
  latency: { latency: number; jitter: number };
  /** Limits the rate to `rate` KB/s (0: unlimited). */
  bandwidth: { rate: number };
  /** Stops all data; closes the connection after `timeout` ms (0: never). */
  timeout: { timeout: number };
  /** Resets the connection (TCP RST) `timeout` ms after the first data. */
  reset_peer: { timeout: number };
  /** Delays the close (FIN) by `delay` ms. */
  slow_close: { delay: number };
  /** Closes the connection once `bytes` bytes have passed. */
  limit_data: { bytes: number };
  /** Splits chunks into pieces of `average_size` ± `size_variation` bytes, `delay` µs apart. */
  slicer: { average_size: number; size_variation: number; delay: number };
  /** HTTP mode: answers `status`, with `Retry-After: retry_after` (seconds) when > 0. */
  http_status: { status: number; retry_after: number };
}

/** A toxic as the Toxiproxy API shows it (plus Bulwark's `toxicity_mode` when it is not the default). */
export interface ToxicJson {
  attributes: Record<string, number>;
  name: string;
  type: ToxicType;
  stream: ToxicStream;
  toxicity: number;
  toxicity_mode?: ToxicityMode;
  match?: ToxicMatch;
}

/** A validated toxic definition (immutable; updating a toxic replaces it). */
export interface ToxicSpec<T extends ToxicType = ToxicType> {
  readonly name: string;
  readonly type: T;
  readonly stream: ToxicStream;
  readonly toxicity: number;
  readonly mode: ToxicityMode;
  readonly attributes: Readonly<ToxicAttributes[T]>;
  /** HTTP mode: the requests it applies to (all when undefined). */
  readonly match: Readonly<ToxicMatch> | undefined;
}

const DEFAULTS: { [K in ToxicType]: ToxicAttributes[K] } = {
  latency: { latency: 0, jitter: 0 },
  bandwidth: { rate: 0 },
  timeout: { timeout: 0 },
  reset_peer: { timeout: 0 },
  slow_close: { delay: 0 },
  limit_data: { bytes: 0 },
  slicer: { average_size: 0, size_variation: 0, delay: 0 },
  http_status: { status: 503, retry_after: 0 },
};

/** A problem with a toxic definition; `field` is where (e.g. `attributes.latency`). */
export class ToxicDefinitionError extends Error {
  override readonly name = 'ToxicDefinitionError';
  constructor(
    readonly kind: 'invalid_type' | 'invalid_stream' | 'bad_value',
    message: string,
  ) {
    super(message);
  }
}

function show(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

/**
 * Validates a toxic as posted to the API (or written in a config file). Unknown keys are ignored, as Go's
 * JSON decoder does; missing ones take Toxiproxy's defaults (downstream, toxicity 1, attributes 0, the
 * name `<type>_<stream>`). `previous` is the toxic being updated: its values are the defaults then.
 */
export function parseToxic(input: unknown, previous?: ToxicSpec): ToxicSpec {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ToxicDefinitionError('bad_value', 'expected a JSON object');
  }
  const body = input as Record<string, unknown>;
  // Checked in Toxiproxy's order: the stream, then the type.
  const stream = previous?.stream ?? body.stream ?? 'downstream';
  if (stream !== 'upstream' && stream !== 'downstream') {
    throw new ToxicDefinitionError('invalid_stream', `invalid stream ${show(stream)}`);
  }
  const type = previous?.type ?? body.type;
  if (typeof type !== 'string' || !(TOXIC_TYPES as readonly string[]).includes(type)) {
    throw new ToxicDefinitionError('invalid_type', `invalid toxic type ${show(type)}`);
  }
  const name =
    previous?.name ?? (body.name === undefined || body.name === '' ? `${type}_${stream}` : body.name);
  if (typeof name !== 'string')
    throw new ToxicDefinitionError('bad_value', `name must be a string, got ${show(name)}`);
  const toxicity = body.toxicity ?? previous?.toxicity ?? 1;
  if (typeof toxicity !== 'number' || !(toxicity >= 0 && toxicity <= 1)) {
    throw new ToxicDefinitionError('bad_value', `toxicity must be a number in [0, 1], got ${show(toxicity)}`);
  }
  const mode = body.toxicity_mode ?? previous?.mode ?? 'per_connection';
  if (mode !== 'per_connection' && mode !== 'per_request') {
    throw new ToxicDefinitionError(
      'bad_value',
      `toxicity_mode must be "per_connection" or "per_request", got ${show(mode)}`,
    );
  }
  const given = body.attributes ?? {};
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    throw new ToxicDefinitionError('bad_value', `attributes must be an object, got ${show(given)}`);
  }
  const attributes: Record<string, number> = { ...(previous?.attributes ?? DEFAULTS[type as ToxicType]) };
  for (const key of Object.keys(attributes)) {
    const value = (given as Record<string, unknown>)[key];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      throw new ToxicDefinitionError(
        'bad_value',
        `attributes.${key} must be an integer >= 0, got ${show(value)}`,
      );
    }
    attributes[key] = value;
  }
  if (type === 'http_status') {
    const { status } = attributes as ToxicAttributes['http_status'];
    if (status < 100 || status > 599) {
      throw new ToxicDefinitionError(
        'bad_value',
        `attributes.status must be an HTTP status from 100 to 599, got ${status}`,
      );
    }
  }
  const match = parseMatch(body.match, previous?.match);
  if (type === 'slicer') {
    const { average_size, size_variation } = attributes as ToxicAttributes['slicer'];
    if (average_size < 1) {
      throw new ToxicDefinitionError(
        'bad_value',
        `attributes.average_size must be >= 1, got ${average_size}`,
      );
    }
    if (size_variation >= average_size) {
      throw new ToxicDefinitionError(
        'bad_value',
        `attributes.size_variation must be less than average_size (${average_size}), got ${size_variation}`,
      );
    }
  }
  return Object.freeze({
    name,
    type: type as ToxicType,
    stream,
    toxicity,
    mode,
    attributes: Object.freeze(attributes) as ToxicSpec['attributes'],
    match,
  });
}

function parseMatch(
  value: unknown,
  previous: Readonly<ToxicMatch> | undefined,
): Readonly<ToxicMatch> | undefined {
  if (value === undefined) return previous;
  if (value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ToxicDefinitionError(
      'bad_value',
      `match must be an object { host, method, path }, got ${show(value)}`,
    );
  }
  const match: ToxicMatch = {};
  for (const [key, field] of Object.entries(value)) {
    if (key !== 'host' && key !== 'method' && key !== 'path') {
      throw new ToxicDefinitionError('bad_value', `match.${key} is unknown; match takes host, method, path`);
    }
    if (typeof field !== 'string' || field === '') {
      throw new ToxicDefinitionError(
        'bad_value',
        `match.${key} must be a non-empty string, got ${show(field)}`,
      );
    }
    if (key === 'path' && !field.startsWith('/')) {
      throw new ToxicDefinitionError('bad_value', `match.path must start with "/", got ${show(field)}`);
    }
    match[key] = field;
  }
  return Object.freeze(match);
}

/** The API's view of a toxic. */
export function toxicJson(spec: ToxicSpec): ToxicJson {
  const json: ToxicJson = {
    attributes: { ...(spec.attributes as unknown as Record<string, number>) },
    name: spec.name,
    type: spec.type,
    stream: spec.stream,
    toxicity: spec.toxicity,
  };
  if (spec.mode !== 'per_connection') json.toxicity_mode = spec.mode;
  if (spec.match !== undefined) json.match = { ...spec.match };
  return json;
}

// ---------------------------------------------------------------------------------------------
// stages

/** Where a stage sends what it lets through. */
export interface StageSink {
  write(chunk: Buffer): void;
  end(): void;
}

/** What a stage may do to the whole connection. */
export interface StageHost {
  readonly clock: Clock;
  /** Closes both sides gracefully (FIN). */
  close(reason: string): void;
  /** Resets both sides (RST). */
  reset(reason: string): void;
  /** A stage's held byte count changed by `delta` (for backpressure). */
  held(delta: number): void;
  /** The toxic fired (an activation: reported as an event). */
  activated(stage: Stage): void;
}

const END = Symbol('end');
type Item = { data: Buffer | typeof END; at: number };

/**
 * One toxic on one direction of one connection. `write`/`end` come from the previous stage; `flush`
 * releases everything held at once (the toxic is being removed: no data is dropped on the floor).
 */
export abstract class Stage implements StageSink {
  next: StageSink;
  private readonly queue: Item[] = [];
  private head = 0;
  private timer: Timer | undefined;
  private lastAt = 0;
  private heldBytes = 0;
  private decided: boolean | undefined;
  protected ended = false;
  protected disposed = false;

  constructor(
    readonly spec: ToxicSpec,
    protected readonly host: StageHost,
    protected readonly random: Random,
    next: StageSink,
  ) {
    this.next = next;
  }

  /** Called once the stage is in place: per-connection toxicity is drawn now. */
  start(): void {
    if (this.spec.mode === 'per_connection') {
      this.decided = this.draw();
      if (this.decided) {
        this.host.activated(this);
        this.onActive();
      }
    }
  }

  /** Whether the toxic acts on this chunk (and reports the activation when drawn per request). */
  protected subject(): boolean {
    if (this.decided !== undefined) return this.decided;
    const fired = this.draw();
    if (fired) this.host.activated(this);
    return fired;
  }

  private draw(): boolean {
    const p = this.spec.toxicity;
    // Always one draw, so the stream's position depends only on how many decisions were made.
    const x = this.random.next();
    return p >= 1 || x < p;
  }

  /** A per-connection toxic became active on this connection. */
  protected onActive(): void {}

  abstract write(chunk: Buffer): void;

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.enqueue(END, this.lastAt);
  }

  /** Releases held data now, in order, and stops every timer. */
  flush(): void {
    this.cancelTimer();
    while (this.head < this.queue.length) this.release(this.queue[this.head++] as Item);
    this.queue.length = 0;
    this.head = 0;
    this.dispose();
  }

  /** Stops timers and drops held data (the connection is gone). */
  dispose(): void {
    this.disposed = true;
    this.cancelTimer();
    if (this.heldBytes > 0) this.host.held(-this.heldBytes);
    this.heldBytes = 0;
    this.queue.length = 0;
    this.head = 0;
  }

  /** Passes `data` on at clock time `at` (never before what was queued earlier). */
  protected enqueue(data: Buffer | typeof END, at: number): void {
    if (this.disposed) return;
    const when = Math.max(at, this.lastAt);
    this.lastAt = when;
    if (this.head === this.queue.length && when <= this.host.clock.now()) {
      this.release({ data, at: when });
      return;
    }
    if (data !== END) {
      this.heldBytes += data.length;
      this.host.held(data.length);
    }
    this.queue.push({ data, at: when });
    if (this.timer === undefined) this.arm();
  }

  private arm(): void {
    const item = this.queue[this.head];
    if (item === undefined) return;
    const clock = this.host.clock;
    this.timer = clock.setTimer(item.at - clock.now(), Stage.onTimer, this);
  }

  private static onTimer(stage: Stage): void {
    stage.timer = undefined;
    const now = stage.host.clock.now();
    const queue = stage.queue;
    while (stage.head < queue.length && !stage.disposed) {
      const item = queue[stage.head] as Item;
      // 1 ms of slack: Node timers fire on whole milliseconds.
      if (item.at > now + 1) break;
      stage.head++;
      stage.release(item);
    }
    if (stage.head === queue.length) {
      queue.length = 0;
      stage.head = 0;
    } else if (!stage.disposed) {
      stage.arm();
    }
  }

  private release(item: Item): void {
    if (item.data === END) {
      this.next.end();
      return;
    }
    if (this.heldBytes > 0) {
      this.heldBytes -= item.data.length;
      this.host.held(-item.data.length);
    }
    this.next.write(item.data);
  }

  private cancelTimer(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** When the last data queued will be released (new data goes out no earlier). */
  protected get releaseAt(): number {
    return Math.max(this.lastAt, this.host.clock.now());
  }
}

class LatencyStage extends Stage {
  write(chunk: Buffer): void {
    if (!this.subject()) {
      this.enqueue(chunk, 0);
      return;
    }
    const { latency, jitter } = this.spec.attributes as ToxicAttributes['latency'];
    // Toxiproxy's distribution: uniform in [latency - jitter, latency + jitter).
    const delay = jitter > 0 ? latency + this.random.int(-jitter, jitter - 1) : latency;
    this.enqueue(chunk, this.host.clock.now() + Math.max(0, delay));
  }
}

class BandwidthStage extends Stage {
  write(chunk: Buffer): void {
    const { rate } = this.spec.attributes as ToxicAttributes['bandwidth'];
    if (rate <= 0 || !this.subject()) {
      this.enqueue(chunk, 0);
      return;
    }
    // Pieces of at most 100 ms worth of bytes, each released when the link would have sent it.
    const bytesPerMs = (rate * 1024) / 1000;
    const piece = Math.max(1, Math.floor(bytesPerMs * 100));
    let at = this.releaseAt;
    for (let offset = 0; offset < chunk.length; offset += piece) {
      const part = chunk.subarray(offset, offset + piece);
      at += part.length / bytesPerMs;
      this.enqueue(part, at);
    }
  }
}

class SlicerStage extends Stage {
  write(chunk: Buffer): void {
    if (!this.subject()) {
      this.enqueue(chunk, 0);
      return;
    }
    const { delay } = this.spec.attributes as ToxicAttributes['slicer'];
    const cuts: number[] = [];
    this.cut(0, chunk.length, cuts);
    let at = this.releaseAt;
    let start = 0;
    for (const end of cuts) {
      this.enqueue(chunk.subarray(start, end), at);
      at += delay / 1000;
      start = end;
    }
  }

  /** Halves [start, end) around a varied midpoint until pieces are within average ± variation. */
  private cut(start: number, end: number, cuts: number[]): void {
    const { average_size, size_variation } = this.spec.attributes as ToxicAttributes['slicer'];
    if (end - start - average_size <= size_variation) {
      cuts.push(end);
      return;
    }
    const vary = size_variation > 0 ? this.random.int(-size_variation, size_variation - 1) : 0;
    const mid = Math.min(end - 1, Math.max(start + 1, start + Math.floor((end - start) / 2) + vary));
    this.cut(start, mid, cuts);
    this.cut(mid, end, cuts);
  }
}

class TimeoutStage extends Stage {
  private stalled = false;
  private closeTimer: Timer | undefined;

  protected override onActive(): void {
    this.stall();
  }

  private stall(): void {
    if (this.stalled) return;
    this.stalled = true;
    const { timeout } = this.spec.attributes as ToxicAttributes['timeout'];
    if (timeout > 0) {
      this.closeTimer = this.host.clock.setTimer(timeout, (stage: TimeoutStage) => stage.fire(), this);
    }
  }

  private fire(): void {
    this.closeTimer = undefined;
    if (!this.disposed) this.host.close('timeout');
  }

  write(chunk: Buffer): void {
    if (this.stalled) return;
    if (this.spec.mode === 'per_request' && this.subject()) {
      this.stall();
      return;
    }
    this.enqueue(chunk, 0);
  }

  override end(): void {
    // A stalled stream swallows the close too: the peer sees nothing until the timeout closes it.
    if (!this.stalled) super.end();
  }

  override dispose(): void {
    this.closeTimer?.cancel();
    this.closeTimer = undefined;
    super.dispose();
  }
}

class ResetPeerStage extends Stage {
  private armed = false;
  private active = false;
  private resetTimer: Timer | undefined;

  protected override onActive(): void {
    this.active = true;
  }

  write(chunk: Buffer): void {
    if (this.armed) return;
    if (this.active || (this.spec.mode === 'per_request' && this.subject())) {
      // As Toxiproxy: the first chunk is dropped, and the connection is reset `timeout` ms later.
      this.armed = true;
      const { timeout } = this.spec.attributes as ToxicAttributes['reset_peer'];
      this.resetTimer = this.host.clock.setTimer(timeout, (stage: ResetPeerStage) => stage.fire(), this);
      return;
    }
    this.enqueue(chunk, 0);
  }

  private fire(): void {
    this.resetTimer = undefined;
    if (!this.disposed) this.host.reset('reset_peer');
  }

  override dispose(): void {
    this.resetTimer?.cancel();
    this.resetTimer = undefined;
    super.dispose();
  }
}

class SlowCloseStage extends Stage {
  write(chunk: Buffer): void {
    this.enqueue(chunk, 0);
  }

  override end(): void {
    if (this.ended) return;
    if (!this.subject()) {
      super.end();
      return;
    }
    this.ended = true;
    const { delay } = this.spec.attributes as ToxicAttributes['slow_close'];
    // Through the queue, so that data still held is released before the delayed close.
    this.enqueue(END, this.host.clock.now() + delay);
  }
}

class LimitDataStage extends Stage {
  private passed = 0;
  private done = false;

  write(chunk: Buffer): void {
    if (this.done) return;
    const { bytes } = this.spec.attributes as ToxicAttributes['limit_data'];
    const room = bytes - this.passed;
    if (chunk.length < room || !this.subject()) {
      this.passed += chunk.length;
      this.enqueue(chunk, 0);
      return;
    }
    this.done = true;
    if (room > 0) this.enqueue(chunk.subarray(0, room), 0);
    this.passed = bytes;
    this.host.close('limit_data');
  }
}

const STAGES: {
  [K in TcpToxicType]: new (
    spec: ToxicSpec,
    host: StageHost,
    random: Random,
    next: StageSink,
  ) => Stage;
} = {
  latency: LatencyStage,
  bandwidth: BandwidthStage,
  timeout: TimeoutStage,
  reset_peer: ResetPeerStage,
  slow_close: SlowCloseStage,
  limit_data: LimitDataStage,
  slicer: SlicerStage,
};

/** Builds the stage of `spec` for one connection direction. */
export function createStage(spec: ToxicSpec, host: StageHost, random: Random, next: StageSink): Stage {
  if (spec.type === 'http_status') throw new TypeError('http_status is a toxic of HTTP-mode proxies only');
  return new STAGES[spec.type](spec, host, random, next);
}
