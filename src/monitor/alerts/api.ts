/**
 * A JSON API over alerting for the dashboard (or any HTTP server) to mount: the active alerts, the
 * silences, creating and expiring silences, and the outbox. Nothing it returns holds a secret.
 *
 *   GET    /api/alerts            pending and firing alerts
 *   GET    /api/silences          every silence with its state
 *   POST   /api/silences          { matchers, duration | endsAt, startsAt?, createdBy?, comment? } → { id }
 *   DELETE /api/silences/:id      expire a silence
 *   GET    /api/outbox            { pending, delivered, rejected }
 *
 * It does no authentication: mount it behind whatever guards the server (the dashboard's token).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { invalid } from '../../policy/options.js';
import type { AlertRuleEngine } from './engine.js';
import { Matchers } from './labels.js';
import type { Notifier } from './notifier.js';
import type { SilenceInput } from './silences.js';

const MAX_BODY = 64 * 1024;

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(`${JSON.stringify(body)}\n`);
}

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new TypeError(`request body larger than ${MAX_BODY} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(new TypeError('request body is not valid JSON'));
      }
    });
    req.on('error', reject);
  });
}

/**
 * Builds the handler. It returns `false` (writing nothing) for paths outside `prefix`, so it can sit in
 * front of other routes.
 * @example
 * const api = alertsApi({ notifier: alerting.notifier, engine: alerting.engine });
 * createServer((req, res) => { if (!api(req, res)) serveDashboard(req, res); });
 */
export function alertsApi(options: {
  notifier: Notifier;
  engine?: AlertRuleEngine;
  prefix?: string;
}): (req: IncomingMessage, res: ServerResponse) => boolean {
  const { notifier, engine } = options;
  const prefix = options.prefix ?? '/api';
  if (!prefix.startsWith('/') || prefix.endsWith('/'))
    throw invalid('alertsApi', 'prefix', prefix, 'a path like "/api"');
  return (req, res) => {
    const path = (req.url ?? '').split('?')[0] as string;
    if (!path.startsWith(`${prefix}/`)) return false;
    const route = path.slice(prefix.length);
    const method = req.method ?? 'GET';
    if (route === '/alerts' && method === 'GET') {
      send(res, 200, engine === undefined ? [] : engine.alerts());
    } else if (route === '/outbox' && method === 'GET') {
      send(res, 200, notifier.outbox());
    } else if (route === '/silences' && method === 'GET') {
      send(
        res,
        200,
        notifier.listSilences().map((s) => ({ ...s, matchers: new Matchers(s.matchers).toString() })),
      );
    } else if (route === '/silences' && method === 'POST') {
      readBody(req).then(
        (body) => {
          try {
            const id = notifier.createSilence(body as SilenceInput);
            send(res, 201, { id });
          } catch (error) {
            send(res, 400, { error: error instanceof Error ? error.message : String(error) });
          }
        },
        (error: unknown) => send(res, 400, { error: error instanceof Error ? error.message : String(error) }),
      );
    } else if (route.startsWith('/silences/') && method === 'DELETE') {
      const id = decodeURIComponent(route.slice('/silences/'.length));
      if (notifier.expireSilence(id)) send(res, 200, { id, state: 'expired' });
      else send(res, 404, { error: `no active or pending silence with id ${id}` });
    } else if (['/alerts', '/outbox', '/silences'].includes(route) || route.startsWith('/silences/')) {
      send(res, 405, { error: `${method} not allowed on ${prefix}${route}` });
    } else {
      return false;
    }
    return true;
  };
}
