/**
 * POSTs JSON for the HTTP receivers. Errors name the receiver and the status or the network error code,
 * never the URL (a Slack webhook URL is a credential).
 */
import { DeliveryError } from '../notification.js';
import type { Secret } from '../secret.js';

/** A `Retry-After` header (seconds, or an HTTP date relative to `now`) in ms; undefined when absent or bad. */
export function parseRetryAfter(header: string | null, now: number): number | undefined {
  if (header === null) return undefined;
  const text = header.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function networkCode(error: unknown): string {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && typeof current === 'object' && current !== null; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return 'network error';
}

export async function postJson(
  receiver: string,
  url: Secret,
  body: unknown,
  signal: AbortSignal,
  now: () => number,
  headers: Readonly<Record<string, string>> = {},
): Promise<void> {
  let response: Response;
  try {
    response = await fetch(url.reveal(), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
      signal,
      redirect: 'error',
    });
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    throw new DeliveryError(`receiver "${receiver}": request failed (${networkCode(error)})`, {
      retryable: true,
    });
  }
  // The body is read (and dropped) so the connection can be reused.
  await response.arrayBuffer().catch(() => undefined);
  if (response.ok) return;
  const status = response.status;
  if (status === 429) {
    const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'), now());
    throw new DeliveryError(`receiver "${receiver}": HTTP 429 (rate limited)`, {
      retryable: true,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    });
  }
  throw new DeliveryError(`receiver "${receiver}": HTTP ${status}`, {
    retryable: status >= 500 || status === 408,
  });
}
