import { GraphQLError, type ExecutionResult, type GraphQLFormattedError } from 'graphql';
import type { Logger } from 'pino';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';
import { fromFastifyError } from '../ops/http-error.filter.ts';

interface FormatterContext {
  reply?: { request: { id: string } };
}

const LIMIT_MESSAGE = /exceeds the query depth limit|maximum complexity/i;

/**
 * Every GraphQL error leaves with a stable `extensions.code`: our own errors keep theirs; parse,
 * validation and variable errors become BAD_REQUEST (QUERY_TOO_COMPLEX for the depth and
 * complexity limits); anything else is an unexpected failure, logged in full and answered as
 * INTERNAL with the request ID only (no stack, no SQL, no internals leak to the caller).
 */
export function createGraphqlErrorFormatter(logger: Logger) {
  return (execution: ExecutionResult & { errors: readonly GraphQLError[]; statusCode?: number }, context: FormatterContext): { statusCode: number; response: ExecutionResult } => {
    const requestId = context.reply?.request.id ?? 'unknown';
    const errors: GraphQLFormattedError[] = [];
    let badRequest = false;
    let status: number | null = null;
    for (const error of execution.errors) {
      const original = error.originalError as (Error & { errors?: unknown }) | undefined;
      // mercurius wraps the spec's validation errors (and the depth limit) in one error
      const nested = Array.isArray(original?.errors) ? (original.errors as GraphQLError[]) : null;
      for (const err of nested ?? [error]) {
        const inner = err.originalError;
        const http = fromFastifyError(inner);
        if (http != null) {
          // the request itself was unusable (bad JSON, too large): answer with its HTTP status
          status = http.httpStatus;
          errors.push({ message: http.message, extensions: http.extensions });
        } else if (inner instanceof ControlPlaneError) {
          errors.push({ message: inner.message, ...where(err), extensions: inner.extensions });
        } else if (inner == null || inner instanceof GraphQLError || nested != null) {
          badRequest = true;
          const code = LIMIT_MESSAGE.test(err.message) ? ControlPlaneErrorCode.QueryTooComplex : ControlPlaneErrorCode.BadRequest;
          errors.push({ message: err.message, ...where(err), extensions: { code } });
        } else {
          logger.error({ err: inner, requestId, path: err.path }, 'unexpected error in a GraphQL resolver');
          errors.push({ message: `internal error (request ${requestId})`, ...where(err), extensions: { code: ControlPlaneErrorCode.Internal } });
        }
      }
    }
    const statusCode = status ?? (execution.data != null ? 200 : badRequest ? 400 : (execution.statusCode ?? 200));
    return { statusCode, response: { data: execution.data ?? null, errors: errors as unknown as GraphQLError[] } };
  };
}

function where(err: GraphQLError): Pick<GraphQLFormattedError, 'locations' | 'path'> {
  return { ...(err.locations == null ? {} : { locations: err.locations }), ...(err.path == null ? {} : { path: err.path }) };
}
