import { IntrinsicException } from '@nestjs/common';

/**
 * One exception class for the control plane, with a stable code per failure. GraphQL clients see
 * the code as `extensions.code` and REST clients as `error.code`; messages say what happened and
 * what to do, and never contain tokens, secrets or another tenant's data. It extends Nest's
 * IntrinsicException so expected refusals (403, 404) are not logged as server errors.
 */
export const ControlPlaneErrorCode = {
  /** no credentials, or credentials that are malformed, unknown, expired or revoked */
  Unauthenticated: 'UNAUTHENTICATED',
  /** authenticated, but the role or token scopes do not allow the operation */
  Forbidden: 'FORBIDDEN',
  /** a session-cookie request without its CSRF header, or from another Origin */
  CsrfRejected: 'CSRF_REJECTED',
  NotFound: 'NOT_FOUND',
  /** input failed validation (GraphQL arguments, REST bodies) */
  InvalidInput: 'INVALID_INPUT',
  /** a unique name or email is taken, or a role is still in use */
  Conflict: 'CONFLICT',
  /** malformed request: bad JSON, unknown GraphQL field, wrong content type */
  BadRequest: 'BAD_REQUEST',
  /** body larger than ARCA_CP_MAX_BODY_BYTES */
  PayloadTooLarge: 'PAYLOAD_TOO_LARGE',
  /** GraphQL query deeper or more complex than the configured limits */
  QueryTooComplex: 'QUERY_TOO_COMPLEX',
  /** start-up configuration is invalid */
  ConfigInvalid: 'CONFIG_INVALID',
  /** an endpoint that is switched off by configuration */
  Disabled: 'DISABLED',
  /** a dependency (the identity provider) cannot be reached; retry later */
  Unavailable: 'UNAVAILABLE',
  Internal: 'INTERNAL',
} as const;
export type ControlPlaneErrorCode = (typeof ControlPlaneErrorCode)[keyof typeof ControlPlaneErrorCode];

const HTTP_STATUS: Record<ControlPlaneErrorCode, number> = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  CSRF_REJECTED: 403,
  NOT_FOUND: 404,
  INVALID_INPUT: 400,
  CONFLICT: 409,
  BAD_REQUEST: 400,
  PAYLOAD_TOO_LARGE: 413,
  QUERY_TOO_COMPLEX: 400,
  CONFIG_INVALID: 500,
  DISABLED: 404,
  UNAVAILABLE: 503,
  INTERNAL: 500,
};

export interface FieldProblem {
  path: string;
  message: string;
}

export class ControlPlaneError extends IntrinsicException {
  readonly code: ControlPlaneErrorCode;
  /** INVALID_INPUT / CONFIG_INVALID: one entry per bad field or variable */
  readonly fields: FieldProblem[] | undefined;

  constructor(code: ControlPlaneErrorCode, message: string, options: { cause?: unknown; fields?: FieldProblem[] } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ControlPlaneError';
    this.code = code;
    this.fields = options.fields;
  }

  get httpStatus(): number {
    return HTTP_STATUS[this.code];
  }

  /** graphql-js copies an original error's `extensions` into the GraphQL error it reports. */
  get extensions(): Record<string, unknown> {
    return this.fields === undefined ? { code: this.code } : { code: this.code, fields: this.fields };
  }

  toJSON(): { error: { code: string; message: string; fields?: FieldProblem[] } } {
    return { error: { code: this.code, message: this.message, ...(this.fields === undefined ? {} : { fields: this.fields }) } };
  }
}

export function isControlPlaneError(err: unknown, code?: ControlPlaneErrorCode): err is ControlPlaneError {
  return err instanceof ControlPlaneError && (code === undefined || err.code === code);
}
