import type { CallOutcome, EventSink } from '../core/events.js';

/**
 * Emits a policy's `call` event when someone wants it (a listener or a meter): one shape for every
 * policy, and a success carries no `error` field.
 */
export function emitCall(
  events: EventSink,
  source: string,
  kind: string,
  at: number,
  outcome: CallOutcome,
  durationMs: number,
  error: unknown,
): void {
  if (events.wants('call')) events.emitCall(source, at, kind, outcome, durationMs, error);
}
