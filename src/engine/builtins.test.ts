import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createRuntime, virtualRuntime } from '../core/runtime.js';
import type { QueueAddOptions, QueueLike } from './builtins.js';
import { Engine } from './engine.js';
import { MemoryJournal } from './journal.js';
import { definePlan } from './plan.js';

const ref = (path: string): string => `\${${path}}`;

/** A loopback HTTP server that records every request it sees. */
let server: Server;
let base = '';
const seen: { method: string; url: string; body: string }[] = [];
let failNext = 0;
const seenHeaders: Record<string, string>[] = [];

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => {
      body += chunk.toString();
    });
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', body });
      seenHeaders.push(req.headers as Record<string, string>);
      if (failNext > 0) {
        failNext--;
        res.writeHead(503).end('busy');
        return;
      }
      if (req.url === '/missing') {
        res.writeHead(404).end('no');
        return;
      }
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ id: 'u-17', echo: body }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

let root = '';
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'bulwark-engine-'));
  seen.length = 0;
  failNext = 0;
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** An engine on real time (real I/O), seeded. */
function engine(options: ConstructorParameters<typeof Engine>[0] = {}) {
  const lines: string[] = [];
  const e = new Engine({
    runtime: createRuntime({ seed: 1 }),
    journal: new MemoryJournal(),
    root,
    log: (line) => lines.push(line),
    ...options,
  });
  return { engine: e, lines };
}

async function tree(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).sort();
}

describe('fs tools', () => {
  it('write, read and remove files inside the root, with references between them', async () => {
    const { engine: e } = engine();
    const result = await e.run(
      definePlan({
        name: 'files',
        steps: [
          { id: 'write', tool: 'fs.write', params: { path: 'out/a.txt', content: 'hello' } },
          { id: 'read', tool: 'fs.read', params: { path: ref('steps.write.output.path') } },
          {
            id: 'copy',
            tool: 'fs.write',
            params: { path: 'b.txt', content: `${ref('steps.read.output.content')}!` },
          },
          { id: 'remove', tool: 'fs.remove', params: { path: 'out/a.txt' }, dependsOn: ['copy'] },
        ],
      }),
    );
    expect(result.status).toBe('succeeded');
    expect(result.outputs).toEqual({
      write: { path: join('out', 'a.txt'), bytes: 5 },
      read: { path: join('out', 'a.txt'), content: 'hello', bytes: 5 },
      copy: { path: 'b.txt', bytes: 6 },
      remove: { path: join('out', 'a.txt'), removed: true },
    });
    expect(await readFile(join(root, 'b.txt'), 'utf8')).toBe('hello!');
    expect(await tree(root)).toEqual(['b.txt', 'out']);
  });

  it('fs.read refuses a file larger than maxBytes (its content would go to the journal)', async () => {
    await writeFile(join(root, 'big.txt'), 'x'.repeat(100));
    const { engine: e } = engine();
    const result = await e.run(
      definePlan({
        name: 'big',
        steps: [
          {
            id: 'read',
            tool: 'fs.read',
            params: { path: 'big.txt', maxBytes: 10 },
            retry: { maxAttempts: 3 },
          },
        ],
      }),
    );
    expect(result.record.steps[0]?.error?.message).toBe('big.txt is 100 bytes, more than maxBytes (10)');
    expect(result.record.steps[0]?.attempts).toBe(1);
  });

  it('refuses paths that escape the root: .., absolute, through a symlink', async () => {
    const outside = await mkdtemp(join(tmpdir(), 'bulwark-outside-'));
    try {
      await symlink(outside, join(root, 'link'));
      const { engine: e } = engine();
      const result = await e.run(
        definePlan({
          name: 'escape',
          steps: ['../x.txt', join(outside, 'abs.txt'), 'link/x.txt', '.'].map((path, i) => ({
            id: `s${i}`,
            tool: 'fs.write',
            params: { path, content: 'x' },
            continueOnError: true,
          })),
        }),
      );
      expect(result.record.steps.map((s) => s.error?.code)).toEqual([
        'PATH_ESCAPE',
        'PATH_ESCAPE',
        'PATH_ESCAPE',
        'PATH_ESCAPE',
      ]);
      expect(result.record.steps[0]?.error?.message).toMatch(/^path "\.\.\/x\.txt" is outside the root /);
      expect(await readdir(outside)).toEqual([]);
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });

  it('rolls back: a new file is removed, an overwritten one restored, a removed one put back', async () => {
    await writeFile(join(root, 'keep.txt'), 'original');
    await writeFile(join(root, 'gone.txt'), 'was here');
    const { engine: e } = engine();
    const result = await e.run(
      definePlan({
        name: 'undo',
        steps: [
          { id: 'new', tool: 'fs.write', params: { path: 'dir/new.txt', content: 'n' } },
          { id: 'over', tool: 'fs.write', params: { path: 'keep.txt', content: 'changed' } },
          { id: 'rm', tool: 'fs.remove', params: { path: 'gone.txt' } },
          { id: 'fail', tool: 'fs.read', params: { path: 'absent.txt' }, dependsOn: ['new', 'over', 'rm'] },
        ],
      }),
    );
    expect(result.status).toBe('failed');
    expect((result.error as { code?: string }).code).toBe('ENOENT');
    expect(result.rollback?.compensated.sort()).toEqual(['new', 'over', 'rm']);
    expect(await readFile(join(root, 'keep.txt'), 'utf8')).toBe('original');
    expect(await readFile(join(root, 'gone.txt'), 'utf8')).toBe('was here');
    // dir/ was created by the write: the undo removed it too.
    expect(await tree(root)).toEqual(['gone.txt', 'keep.txt']);
  });
});

describe('http.request', () => {
  it('sends the request and returns status and parsed JSON body; retries 503 under the step retry', async () => {
    failNext = 1;
    const { engine: e } = engine();
    const result = await e.run(
      definePlan({
        name: 'http',
        steps: [
          {
            id: 'post',
            tool: 'http.request',
            params: { url: `${base}/users`, method: 'post', body: { name: 'ada' } },
            retry: { maxAttempts: 2, backoff: { constant: 1 } },
          },
          {
            id: 'missing',
            tool: 'http.request',
            params: { url: `${base}/missing` },
            retry: { maxAttempts: 3 },
            dependsOn: ['post'],
            continueOnError: true,
          },
        ],
      }),
    );
    expect(result.outputs.post).toEqual({ status: 200, body: { id: 'u-17', echo: '{"name":"ada"}' } });
    expect(result.record.steps[0]?.attempts).toBe(2);
    // A 404 is not retryable: one attempt.
    expect(result.record.steps[1]?.error).toEqual({
      name: 'HttpStatusError',
      code: 'HTTP_STATUS',
      message: `HTTP 404 from ${base}/missing`,
    });
    expect(result.record.steps[1]?.attempts).toBe(1);
    expect(seen.map((r) => `${r.method} ${r.url}`)).toEqual(['POST /users', 'POST /users', 'GET /missing']);
  });

  it('keeps secrets out of the journal: env references in the plan, secret headers redacted in the steps', async () => {
    const { engine: e } = engine({ env: { API_TOKEN: 's3cr3t' } });
    const result = await e.run(
      definePlan({
        name: 'secret',
        steps: [
          {
            id: 'call',
            tool: 'http.request',
            params: {
              url: `${base}/users`,
              headers: { authorization: `Bearer ${ref('env.API_TOKEN')}`, 'x-trace': 'abc' },
            },
          },
        ],
      }),
    );
    expect(result.status).toBe('succeeded');
    expect(result.record.steps[0]?.params).toMatchObject({
      headers: { authorization: '[redacted]', 'x-trace': 'abc' },
    });
    expect(JSON.stringify(e.journal.events(result.runId))).not.toContain('s3cr3t');
    expect(seenHeaders.at(-1)?.authorization).toBe('Bearer s3cr3t');
    const unset = await e.run(
      definePlan({ name: 'unset', steps: [{ id: 'x', tool: 'log', params: { message: ref('env.NOPE') } }] }),
    );
    expect(unset.record.steps[0]?.error?.message).toBe(
      `cannot resolve ${ref('env.NOPE')}: environment variable NOPE is not set`,
    );
  });

  it('honours ctx.signal: a step timeout aborts the request', async () => {
    const hang = createServer(() => {});
    await new Promise<void>((resolve) => hang.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(hang.address() as AddressInfo).port}/`;
      const { engine: e } = engine();
      const result = await e.run(
        definePlan({
          name: 'hang',
          steps: [{ id: 'call', tool: 'http.request', params: { url }, timeout: '200ms' }],
        }),
      );
      expect(result.status).toBe('failed');
      expect(result.record.steps[0]?.error?.code).toBe('TIMEOUT');
    } finally {
      hang.closeAllConnections();
      await new Promise<void>((resolve) => hang.close(() => resolve()));
    }
  });
});

describe('queue.add, wait and log', () => {
  it('adds to a configured queue; an unknown queue is a step failure with a did-you-mean', async () => {
    const added: { payload: unknown; opts: QueueAddOptions | undefined }[] = [];
    const emails: QueueLike = {
      async add(payload, opts) {
        added.push({ payload, opts });
        return { id: `job-${added.length}` };
      },
    };
    const rt = virtualRuntime(1);
    const e = new Engine({
      runtime: rt,
      journal: new MemoryJournal(),
      root,
      queues: { emails },
      log: () => {},
    });
    const result = await rt.clock.run(() =>
      e.run(
        definePlan({
          name: 'q',
          steps: [
            {
              id: 'send',
              tool: 'queue.add',
              params: { queue: 'emails', payload: { to: 'a@b' }, delay: '1s', jobId: 'x' },
            },
            { id: 'typo', tool: 'queue.add', params: { queue: 'email', payload: 1 }, continueOnError: true },
          ],
        }),
      ),
    );
    expect(result.outputs.send).toEqual({ queue: 'emails', id: 'job-1' });
    expect(added).toEqual([{ payload: { to: 'a@b' }, opts: { delay: 1000, jobId: 'x' } }]);
    expect(result.record.steps[1]?.error?.message).toBe(
      'queue.add: params.queue: unknown queue "email" — did you mean "emails"?; known: emails',
    );
  });

  it('waits on the runtime clock and logs through the log option', async () => {
    const rt = virtualRuntime(1);
    const lines: string[] = [];
    const e = new Engine({
      runtime: rt,
      journal: new MemoryJournal(),
      root,
      log: (line) => lines.push(line),
    });
    const result = await rt.clock.run(() =>
      e.run(
        definePlan({
          name: 'w',
          steps: [
            { id: 'pause', tool: 'wait', params: { duration: '90s' } },
            {
              id: 'say',
              tool: 'log',
              params: { message: `waited ${ref('steps.pause.output.waitedMs')}ms`, level: 'warn' },
            },
          ],
        }),
      ),
    );
    expect(result.status).toBe('succeeded');
    expect(rt.clock.now()).toBe(90_000);
    expect(lines).toEqual(['[warn] say: waited 90000ms']);
  });
});

describe('dry runs', () => {
  it('touch nothing: no file written or removed, no request sent, no job added, no log line', async () => {
    await mkdir(join(root, 'data'));
    await writeFile(join(root, 'data', 'old.txt'), 'old');
    const added: unknown[] = [];
    const { engine: e, lines } = engine({
      queues: {
        jobs: {
          async add(payload) {
            added.push(payload);
            return { id: '1' };
          },
        },
      },
    });
    const plan = definePlan({
      name: 'everything',
      steps: [
        { id: 'get', tool: 'http.request', params: { url: `${base}/users` } },
        {
          id: 'post',
          tool: 'http.request',
          params: { url: `${base}/users`, method: 'POST', body: ref('steps.get.output.body') },
        },
        { id: 'write', tool: 'fs.write', params: { path: 'data/new.txt', content: 'x' } },
        { id: 'remove', tool: 'fs.remove', params: { path: 'data/old.txt' } },
        { id: 'enqueue', tool: 'queue.add', params: { queue: 'jobs', payload: 1 } },
        { id: 'say', tool: 'log', params: { message: 'hi' } },
        { id: 'pause', tool: 'wait', params: { duration: '2s' } },
      ],
    });
    const before = await tree(root);
    const result = await e.run(plan, { dryRun: true });
    expect(result.status).toBe('succeeded');
    expect(result.record.steps.map((s) => [s.status, s.description])).toEqual([
      ['simulated', `GET ${base}/users`],
      ['simulated', `POST ${base}/users`],
      ['simulated', 'write 1 bytes to data/new.txt'],
      ['simulated', 'remove data/old.txt'],
      ['simulated', 'add a job to queue jobs'],
      ['simulated', 'log "hi"'],
      ['simulated', 'wait 2000ms'],
    ]);
    expect(result.record.estimatedMs).toBe(2000); // the longest chain: get → post (400) vs wait (2000)
    expect(await tree(root)).toEqual(before);
    expect(await readFile(join(root, 'data', 'old.txt'), 'utf8')).toBe('old');
    expect(seen).toEqual([]);
    expect(added).toEqual([]);
    expect(lines).toEqual([]);
  });
});
