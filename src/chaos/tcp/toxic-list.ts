import { ProxyApiError } from './errors.js';
import type { ToxicSpec, ToxicStream } from './toxics.js';

/**
 * A proxy's toxics in order, with Toxiproxy's add/replace/remove/reset semantics and errors. The TCP and
 * HTTP proxies differ only in what a change does: re-chain the live connections, or recompile the rules.
 */
export abstract class ToxicList {
  protected toxicList: readonly ToxicSpec[] = [];

  /** Called after the toxics of `stream` changed. */
  protected abstract toxicsChanged(stream: ToxicStream): void;

  toxics(stream?: ToxicStream): readonly ToxicSpec[] {
    return stream === undefined ? this.toxicList : this.toxicList.filter((t) => t.stream === stream);
  }

  getToxic(name: string): ToxicSpec | undefined {
    return this.toxicList.find((t) => t.name === name);
  }

  /** Adds a toxic at the end of its stream's chain. */
  addToxic(spec: ToxicSpec): void {
    if (this.getToxic(spec.name) !== undefined) throw ProxyApiError.toxicExists();
    this.toxicList = [...this.toxicList, spec];
    this.toxicsChanged(spec.stream);
  }

  /** Replaces the toxic of the same name, in place. */
  replaceToxic(spec: ToxicSpec): void {
    const index = this.toxicList.findIndex((t) => t.name === spec.name);
    if (index < 0) throw ProxyApiError.toxicNotFound();
    this.toxicList = this.toxicList.map((t, i) => (i === index ? spec : t));
    this.toxicsChanged(spec.stream);
  }

  removeToxic(name: string): void {
    const spec = this.getToxic(name);
    if (spec === undefined) throw ProxyApiError.toxicNotFound();
    this.toxicList = this.toxicList.filter((t) => t !== spec);
    this.toxicsChanged(spec.stream);
  }

  /** Removes every toxic (`POST /reset`). */
  resetToxics(): void {
    if (this.toxicList.length === 0) return;
    this.toxicList = [];
    this.toxicsChanged('upstream');
    this.toxicsChanged('downstream');
  }
}
