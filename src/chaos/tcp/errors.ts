/**
 * The proxy's errors. Each carries the HTTP status and message Toxiproxy's API answers with, so the API
 * serves them as Toxiproxy would (`{"error": message, "status": status}`) and library callers get a
 * `BulwarkError` with a stable code.
 */
import { BulwarkError, type BulwarkErrorCode } from '../../core/errors.js';

/** A proxy operation that failed; `status` and `message` are what Toxiproxy's API would answer. */
export class ProxyApiError extends BulwarkError {
  override readonly name = 'ProxyApiError';
  /** The HTTP status of the API's answer (400, 404, 409 or 500). */
  readonly status: number;

  constructor(code: BulwarkErrorCode, message: string, status: number, cause?: unknown) {
    super(code, message, { retryable: false, ...(cause === undefined ? {} : { cause }) });
    this.status = status;
  }

  static badRequest(detail: string): ProxyApiError {
    return new ProxyApiError('PROXY_BAD_REQUEST', `bad request body: ${detail}`, 400);
  }
  static missingField(field: string): ProxyApiError {
    return new ProxyApiError('PROXY_BAD_REQUEST', `missing required field: ${field}`, 400);
  }
  static invalidStream(): ProxyApiError {
    return new ProxyApiError(
      'PROXY_BAD_REQUEST',
      'stream was invalid, can be either upstream or downstream',
      400,
    );
  }
  static invalidToxicType(): ProxyApiError {
    return new ProxyApiError('PROXY_BAD_REQUEST', 'invalid toxic type', 400);
  }
  static proxyNotFound(): ProxyApiError {
    return new ProxyApiError('PROXY_NOT_FOUND', 'proxy not found', 404);
  }
  static proxyExists(): ProxyApiError {
    return new ProxyApiError('PROXY_EXISTS', 'proxy already exists', 409);
  }
  static toxicNotFound(): ProxyApiError {
    return new ProxyApiError('TOXIC_NOT_FOUND', 'toxic not found', 404);
  }
  static toxicExists(): ProxyApiError {
    return new ProxyApiError('TOXIC_EXISTS', 'toxic already exists', 409);
  }
}
