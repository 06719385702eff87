/**
 * Real services the integration tests use, and the rule for when one is missing: outside CI the tests
 * that need it are skipped with a message saying so; in CI (`CI=true`) a missing service is a failure.
 *
 * @example
 * const redis = await service('redis');
 * redis.describe('bullmq backend', () => { it('…', async () => { … redis.url … }); });
 */
import { accessSync, constants } from 'node:fs';
import { connect } from 'node:net';
import { delimiter, join } from 'node:path';
import { describe, it } from 'vitest';

export type ServiceName = 'redis' | 'postgres' | 'chromium' | 'promtool';

export interface Service {
  readonly name: ServiceName;
  readonly available: boolean;
  /** Why it is unavailable (empty when available). */
  readonly reason: string;
  /** `redis://127.0.0.1:6379`, `postgres://postgres@127.0.0.1:5432/test`, or the executable's path. */
  readonly url: string;
  /** `describe` when available; otherwise a skipped block (outside CI) or a failing one (CI). */
  describe(title: string, body: () => void): void;
}

const inCI = process.env.CI === 'true' || process.env.CI === '1';

export const REDIS_HOST = '127.0.0.1';
export const REDIS_PORT = 6379;
export const POSTGRES_URL = process.env.BULWARK_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Probes a service once (a Redis PING, a TCP connect to PostgreSQL, Chromium or promtool on the PATH). */
export async function service(name: ServiceName): Promise<Service> {
  let url: string;
  let reason = '';
  if (name === 'redis') {
    url = `redis://${REDIS_HOST}:${REDIS_PORT}`;
    if (!(await exchange(REDIS_HOST, REDIS_PORT, 'PING\r\n', '+PONG'))) {
      reason = `Redis is not answering PING at ${REDIS_HOST}:${REDIS_PORT}`;
    }
  } else if (name === 'postgres') {
    url = POSTGRES_URL;
    const { hostname, port } = new URL(POSTGRES_URL);
    if (!(await exchange(hostname, Number(port || 5432)))) {
      reason = `PostgreSQL is not accepting connections at ${hostname}:${port || 5432}`;
    }
  } else if (name === 'chromium') {
    url = findExecutable(['chromium', 'chromium-browser']) ?? '';
    if (url === '') reason = 'Chromium is not installed (Debian package "chromium")';
  } else {
    url = process.env.BULWARK_PROMTOOL || (findExecutable(['promtool']) ?? '');
    if (url === '') reason = "promtool is not on the PATH (Debian's prometheus package has it)";
  }
  const available = reason === '';
  return {
    name,
    available,
    reason,
    url,
    describe(title, body) {
      if (available) {
        describe(title, body);
      } else if (inCI) {
        describe(title, () => {
          it(`needs ${name}`, () => {
            throw new Error(`${reason}; CI requires it (.ci/services starts it)`);
          });
        });
      } else {
        process.stderr.write(`[skip] ${title}: ${reason}\n`);
        describe.skip(`${title} (skipped: ${reason})`, body);
      }
    },
  };
}

function exchange(host: string, port: number, send?: string, expect?: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    let received = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => {
      if (send === undefined || expect === undefined) return done(true);
      socket.write(send);
    });
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      if (expect !== undefined && received.startsWith(expect)) done(true);
    });
  });
}

function findExecutable(names: readonly string[]): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    for (const name of names) {
      const candidate = join(dir, name);
      try {
        accessSync(candidate, constants.X_OK);
        return candidate;
      } catch {}
    }
  }
  return undefined;
}
