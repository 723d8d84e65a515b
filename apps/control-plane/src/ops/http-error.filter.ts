import { Catch, HttpException, Logger, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';

/**
 * REST routes answer `{ "error": { "code", "message", "fields"? } }` like the key proxy does.
 * Unexpected errors are logged and answered as INTERNAL with the request ID only.
 */
@Catch()
export class HttpErrorFilter implements ExceptionFilter {
  private readonly logger = new Logger('http');

  catch(exception: unknown, host: ArgumentsHost): unknown {
    // GraphQL errors are formatted by the GraphQL error formatter: hand them back unchanged
    if (host.getType() !== 'http') return exception;
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    const request = host.switchToHttp().getRequest<FastifyRequest>();
    const error = toControlPlaneError(exception, request.id, this.logger);
    void reply.status(error.httpStatus).send(error.toJSON());
    return undefined;
  }
}

export function toControlPlaneError(exception: unknown, requestId: string, logger: Pick<Logger, 'error'>): ControlPlaneError {
  if (exception instanceof ControlPlaneError) return exception;
  if (exception instanceof HttpException && exception.getStatus() === 404) {
    return new ControlPlaneError(ControlPlaneErrorCode.NotFound, 'no such route');
  }
  const fromFastify = fromFastifyError(exception);
  if (fromFastify != null) return fromFastify;
  logger.error({ msg: 'unexpected error in an HTTP route', err: exception, requestId });
  return new ControlPlaneError(ControlPlaneErrorCode.Internal, `internal error (request ${requestId})`);
}

/** Fastify's own errors (body parsing and limits) as our codes; null for anything else. */
export function fromFastifyError(exception: unknown): ControlPlaneError | null {
  const fastifyError = exception as { code?: unknown; statusCode?: unknown; message?: unknown } | null;
  switch (fastifyError?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ControlPlaneError(ControlPlaneErrorCode.PayloadTooLarge, 'the request body is larger than this server accepts (ARCA_CP_MAX_BODY_BYTES)');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ControlPlaneError(ControlPlaneErrorCode.BadRequest, 'unsupported content type: send application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ControlPlaneError(ControlPlaneErrorCode.BadRequest, 'the JSON body is empty');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new ControlPlaneError(ControlPlaneErrorCode.BadRequest, 'the body is not valid JSON');
    default:
      if (fastifyError?.statusCode === 413) return new ControlPlaneError(ControlPlaneErrorCode.PayloadTooLarge, 'the request body is too large');
      if (fastifyError?.statusCode === 400 || fastifyError?.statusCode === 415 || exception instanceof SyntaxError) {
        return new ControlPlaneError(ControlPlaneErrorCode.BadRequest, `malformed request: ${String(fastifyError?.message)}`);
      }
      return null;
  }
}
