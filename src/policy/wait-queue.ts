/**
 * The FIFO of callers waiting for capacity (bulkhead permits, rate-limit tokens, resource units): an
 * intrusive doubly linked list, so enqueue, dequeue and removing a waiter that gave up are all O(1) and
 * allocate nothing beyond the waiter itself.
 */

/** The links a waiter carries; a waiter class declares these three fields. */
export interface Linked<N> {
  prev: N | undefined;
  next: N | undefined;
  /** True while the waiter is in a queue. */
  queued: boolean;
}

export class WaitQueue<N extends Linked<N>> {
  head: N | undefined = undefined;
  tail: N | undefined = undefined;
  size = 0;

  push(node: N): void {
    const tail = this.tail;
    node.prev = tail;
    node.next = undefined;
    if (tail === undefined) this.head = node;
    else tail.next = node;
    this.tail = node;
    node.queued = true;
    this.size++;
  }

  /** Takes `node` out of the queue (it must be in it). */
  remove(node: N): void {
    const { prev, next } = node;
    if (prev === undefined) this.head = next;
    else prev.next = next;
    if (next === undefined) this.tail = prev;
    else next.prev = prev;
    node.prev = undefined;
    node.next = undefined;
    node.queued = false;
    this.size--;
  }
}
