/**
 * Email through SMTP with nodemailer. The subject is Alertmanager's (`[FIRING:2] …`); the body lists the
 * alerts as text and HTML. SMTP errors are reported by their response code, never with the credentials.
 */
import { createTransport, type Transporter } from 'nodemailer';
import { invalid, knownKeys } from '../../../policy/options.js';
import { formatLabels } from '../labels.js';
import { DeliveryError, type Notification, type Receiver, rfc3339, split, title } from '../notification.js';
import { type Secret, secret } from '../secret.js';

export interface EmailReceiverOptions {
  name: string;
  /** Recipients, e.g. `'oncall@example.com'` or a list. */
  to: string | readonly string[];
  from: string;
  /** SMTP server host. */
  host: string;
  /** @defaultValue `587` (`465` when `secure`) */
  port?: number;
  /** TLS from the start (port 465); otherwise STARTTLS when the server offers it. @defaultValue `false` */
  secure?: boolean;
  /** Refuse to send without STARTTLS. @defaultValue `false` */
  requireTLS?: boolean;
  /** SMTP login. */
  auth?: { user: string; pass: string | Secret };
  /** Accept self-signed certificates (test servers only). @defaultValue `false` */
  allowSelfSigned?: boolean;
  /** @defaultValue `true` */
  sendResolved?: boolean;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The subject, text and HTML of the email for a notification. */
export function emailContent(notification: Notification): { subject: string; text: string; html: string } {
  const { firing, resolved } = split(notification);
  const subject = title(notification);
  const section = (label: string, alerts: typeof firing) =>
    alerts.length === 0
      ? { text: '', html: '' }
      : {
          text: `${label}\n${alerts
            .map(
              (a) =>
                `- ${a.annotations.summary ?? a.labels.alertname ?? ''} ${formatLabels(a.labels)}\n  since ${rfc3339(a.startsAt)}${a.endsAt === undefined ? '' : `, resolved ${rfc3339(a.endsAt)}`}${a.annotations.description === undefined ? '' : `\n  ${a.annotations.description}`}`,
            )
            .join('\n')}\n`,
          html: `<h3>${escapeHtml(label)}</h3><ul>${alerts
            .map(
              (a) =>
                `<li><b>${escapeHtml(a.annotations.summary ?? a.labels.alertname ?? '')}</b> <code>${escapeHtml(formatLabels(a.labels))}</code><br>since ${rfc3339(a.startsAt)}${a.endsAt === undefined ? '' : `, resolved ${rfc3339(a.endsAt)}`}${a.annotations.description === undefined ? '' : `<br>${escapeHtml(a.annotations.description)}`}</li>`,
            )
            .join('')}</ul>`,
        };
  const f = section(`Firing (${firing.length})`, firing);
  const r = section(`Resolved (${resolved.length})`, resolved);
  return {
    subject,
    text: `${subject}\n\n${f.text}${r.text}\ngroup: ${notification.groupKey}\n`,
    html: `<h2 style="color:${notification.status === 'firing' ? '#E01E5A' : '#2EB67D'}">${escapeHtml(subject)}</h2>${f.html}${r.html}<p><small>group ${escapeHtml(notification.groupKey)}</small></p>`,
  };
}

/** What nodemailer's SMTP errors carry. */
interface SmtpError {
  code?: unknown;
  responseCode?: unknown;
}

/** A receiver with a `close()` for its SMTP connection pool. */
export interface EmailReceiver extends Receiver {
  close(): void;
}

/**
 * A receiver that emails each notification through SMTP.
 * @example
 * emailReceiver({ name: 'oncall-mail', host: 'smtp.example.com', port: 587, from: 'bulwark@example.com',
 *                 to: 'oncall@example.com', auth: { user: 'bulwark', pass: process.env.SMTP_PASSWORD! } })
 */
export function emailReceiver(options: EmailReceiverOptions): EmailReceiver {
  const where = 'emailReceiver';
  knownKeys(where, options, [
    'to',
    'from',
    'host',
    'port',
    'secure',
    'requireTLS',
    'auth',
    'allowSelfSigned',
    'sendResolved',
  ]);
  if (typeof options.name !== 'string' || options.name === '')
    throw invalid(where, 'name', options.name, 'a non-empty string');
  if (typeof options.host !== 'string' || options.host === '')
    throw invalid(where, 'host', options.host, 'a host name');
  if (typeof options.from !== 'string' || !options.from.includes('@'))
    throw invalid(where, 'from', options.from, 'an email address');
  const to = typeof options.to === 'string' ? [options.to] : options.to;
  if (!Array.isArray(to) || to.length === 0 || to.some((t) => typeof t !== 'string' || !t.includes('@'))) {
    throw invalid(where, 'to', options.to, 'an email address or a non-empty list of them');
  }
  const secure = options.secure ?? false;
  const port = options.port ?? (secure ? 465 : 587);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw invalid(where, 'port', port, 'an integer from 1 to 65535');
  const pass = options.auth === undefined ? undefined : secret(options.auth.pass);
  const transport: Transporter = createTransport({
    host: options.host,
    port,
    secure,
    requireTLS: options.requireTLS ?? false,
    ...(options.auth === undefined || pass === undefined
      ? {}
      : { auth: { user: options.auth.user, pass: pass.reveal() } }),
    tls: { rejectUnauthorized: !(options.allowSelfSigned ?? false) },
    // Nodemailer's own logger stays off: it would print the AUTH exchange.
    logger: false,
    debug: false,
  });
  const name = options.name;
  return {
    name,
    sendResolved: options.sendResolved ?? true,
    async send(notification, signal) {
      const content = emailContent(notification);
      const sending = transport.sendMail({ from: options.from, to: [...to], ...content });
      let onAbort: (() => void) | undefined;
      const aborted = new Promise<never>((_, reject) => {
        onAbort = () => reject(signal.reason);
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort, { once: true });
      });
      try {
        await Promise.race([sending, aborted]);
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        const { code, responseCode } = (error ?? {}) as SmtpError;
        const status = typeof responseCode === 'number' ? responseCode : undefined;
        // 5xx SMTP replies are permanent (bad recipient, auth refused); everything else may pass later.
        const permanent = status !== undefined && status >= 500 && status < 600;
        // Nodemailer reports a refused connection as ESOCKET; the system error code sits in its message
        // (which is not repeated: it may name addresses).
        const text = error instanceof Error ? error.message : '';
        const system = /\b(E[A-Z]{3,})\b/.exec(text)?.[1];
        const kind =
          typeof code === 'string'
            ? system !== undefined && system !== code
              ? `${code} (${system})`
              : code
            : 'error';
        throw new DeliveryError(`receiver "${name}": SMTP ${status ?? kind}`, { retryable: !permanent });
      } finally {
        if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
        // A send that lost the race still settles; its outcome no longer matters.
        sending.catch(() => undefined);
      }
    },
    close() {
      transport.close();
    },
  };
}
