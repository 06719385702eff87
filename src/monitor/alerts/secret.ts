/**
 * A secret (a webhook URL, an SMTP password) that never prints: `String()`, JSON, `util.inspect` and
 * template strings all give `[secret]`. Only {@link Secret.reveal} returns the value, at the point of use.
 */
import { inspect } from 'node:util';

const REDACTED = '[secret]';

export class Secret {
  readonly #value: string;

  constructor(value: string) {
    if (typeof value !== 'string' || value === '') {
      throw new TypeError('Secret: value must be a non-empty string');
    }
    this.#value = value;
  }

  /** The secret's value; call it only where the value is used (the request, the SMTP login). */
  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }
}

/** Wraps a plain string in a {@link Secret} (a Secret is returned as is). */
export function secret(value: string | Secret): Secret {
  return value instanceof Secret ? value : new Secret(value);
}
