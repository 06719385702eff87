import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Linked, WaitQueue } from './wait-queue.js';

class Node implements Linked<Node> {
  prev: Node | undefined = undefined;
  next: Node | undefined = undefined;
  queued = false;
  constructor(readonly id: number) {}
}

function ids(queue: WaitQueue<Node>): number[] {
  const out: number[] = [];
  for (let n = queue.head; n !== undefined; n = n.next) out.push(n.id);
  return out;
}

describe('WaitQueue', () => {
  it('keeps FIFO order and removes from anywhere in O(1)', () => {
    const q = new WaitQueue<Node>();
    const nodes = [0, 1, 2, 3].map((i) => new Node(i));
    for (const n of nodes) q.push(n);
    expect(ids(q)).toEqual([0, 1, 2, 3]);
    q.remove(nodes[1] as Node);
    q.remove(nodes[3] as Node);
    expect(ids(q)).toEqual([0, 2]);
    expect(q.tail?.id).toBe(2);
    expect(q.size).toBe(2);
    expect(nodes[1]?.queued).toBe(false);
    q.remove(nodes[0] as Node);
    q.remove(nodes[2] as Node);
    expect(q.head).toBeUndefined();
    expect(q.tail).toBeUndefined();
    expect(q.size).toBe(0);
  });

  it('property: behaves like an array with splice', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.constant(-1), fc.nat(50)), { maxLength: 200 }), (ops) => {
        const q = new WaitQueue<Node>();
        const model: Node[] = [];
        let next = 0;
        for (const op of ops) {
          if (op < 0 || model.length === 0) {
            const n = new Node(next++);
            q.push(n);
            model.push(n);
          } else {
            const [n] = model.splice(op % model.length, 1);
            q.remove(n as Node);
          }
          expect(ids(q)).toEqual(model.map((n) => n.id));
          expect(q.size).toBe(model.length);
        }
      }),
    );
  });
});
