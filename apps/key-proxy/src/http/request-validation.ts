import type { IncomingHttpHeaders } from 'node:http';
import type { z } from 'zod';
import { KeyProxyError, KeyProxyErrorCode } from '../errors/key-proxy-error.ts';

/** INVALID_REQUEST with one entry per invalid field (returned as `error.fields`). */
export class InvalidRequestError extends KeyProxyError {
  readonly fields: Array<{ path: string; message: string }>;

  constructor(message: string, fields: Array<{ path: string; message: string }> = []) {
    super(KeyProxyErrorCode.InvalidRequest, message);
    this.fields = fields;
  }
}

const MAX_FIELD_ERRORS = 20;

export function requireJsonContentType(headers: IncomingHttpHeaders): void {
  const type = headers['content-type'];
  if (typeof type !== 'string' || !/^application\/json\s*(;|$)/i.test(type)) {
    throw new InvalidRequestError('the request body must be JSON, sent with "content-type: application/json"');
  }
}

/** JSON.parse + zod: INVALID_REQUEST naming every bad field (the first 20). */
export function parseJsonBody<S extends z.ZodType>(body: Buffer, schema: S): z.output<S> {
  let json: unknown;
  try {
    json = JSON.parse(body.length === 0 ? '{}' : body.toString('utf8'));
  } catch {
    throw new InvalidRequestError('the request body is not valid JSON');
  }
  const parsed = schema.safeParse(json);
  if (parsed.success) return parsed.data;
  const fields = parsed.error.issues.slice(0, MAX_FIELD_ERRORS).map((issue) => ({
    path: issue.path.length === 0 ? '(body)' : issue.path.map(String).join('.'),
    message: issue.message,
  }));
  const more = parsed.error.issues.length - fields.length;
  const summary = fields.map((f) => `${f.path}: ${f.message}`).join('; ');
  throw new InvalidRequestError(`invalid request: ${summary}${more > 0 ? `; and ${more} more` : ''}`, fields);
}
