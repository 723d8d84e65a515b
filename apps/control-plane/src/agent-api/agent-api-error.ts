import type { Logger } from '@nestjs/common';
import { AGENT_API_MAX_BODY_BYTES, AgentApiErrorCode } from '@arca/contracts';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';
import { LeaseLostError } from '../jobs/job-queue.service.ts';
import { fromFastifyError } from '../ops/http-error.filter.ts';

const STATUS: Record<AgentApiErrorCode, number> = {
  AGENT_UNAUTHENTICATED: 401,
  AGENT_DISABLED: 403,
  AGENT_REMOVED: 410,
  LEASE_LOST: 409,
  NOT_FOUND: 404,
  BAD_REQUEST: 400,
  TOO_LARGE: 413,
  UNAVAILABLE: 503,
};

/** An answer of the agent API (docs/fleet.md §2-3): `{ error: { code, message } }` with the code's HTTP status. */
export class AgentApiError extends Error {
  readonly code: AgentApiErrorCode;

  constructor(code: AgentApiErrorCode, message: string) {
    super(message);
    this.name = 'AgentApiError';
    this.code = code;
  }

  get httpStatus(): number {
    return STATUS[this.code];
  }
}

/** One message for every authentication failure, so a caller learns nothing about which check failed. */
export const UNAUTHENTICATED_MESSAGE = 'the agent could not be authenticated: check its credential, key and clock, or enroll it again';

export function unauthenticated(): AgentApiError {
  return new AgentApiError(AgentApiErrorCode.Unauthenticated, UNAUTHENTICATED_MESSAGE);
}

/** Maps what a handler threw to the agent API's codes; unexpected errors are logged and answered 500 with the request ID only. */
export function toAgentApiError(exception: unknown, requestId: string, logger: Pick<Logger, 'error'>): { status: number; body: { error: { code: string; message: string } } } {
  const answer = (status: number, code: string, message: string) => ({ status, body: { error: { code, message } } });
  if (exception instanceof AgentApiError) return answer(exception.httpStatus, exception.code, exception.message);
  if (exception instanceof LeaseLostError) return answer(409, AgentApiErrorCode.LeaseLost, exception.message);
  const known = exception instanceof ControlPlaneError ? exception : fromFastifyError(exception);
  if (known != null) {
    switch (known.code) {
      case ControlPlaneErrorCode.PayloadTooLarge:
        return answer(413, AgentApiErrorCode.TooLarge, `the request body is larger than the agent API accepts (${AGENT_API_MAX_BODY_BYTES} bytes)`);
      case ControlPlaneErrorCode.BadRequest:
      case ControlPlaneErrorCode.InvalidInput:
        return answer(400, AgentApiErrorCode.BadRequest, known.message);
      case ControlPlaneErrorCode.NotFound:
        return answer(404, AgentApiErrorCode.NotFound, known.message);
      case ControlPlaneErrorCode.Unauthenticated:
        return answer(401, AgentApiErrorCode.Unauthenticated, UNAUTHENTICATED_MESSAGE);
      case ControlPlaneErrorCode.Unavailable:
        return answer(503, AgentApiErrorCode.Unavailable, known.message);
      default:
        break;
    }
  }
  logger.error({ msg: 'unexpected error in the agent API', err: exception, requestId });
  return answer(500, 'INTERNAL', `internal error (request ${requestId})`);
}
