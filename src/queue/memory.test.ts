import { describe } from 'vitest';
import { queueSuite } from '../../test/queue-suite.js';
import { MemoryQueue } from './memory.js';

let n = 0;
describe('MemoryQueue: the shared backend suite', () => {
  queueSuite({
    clock: 'virtual',
    leaseMs: 1000,
    create: (options) => new MemoryQueue({ name: `memory-${++n}`, ...options }),
  });
});
