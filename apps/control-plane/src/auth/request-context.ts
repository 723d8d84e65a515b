import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';
import { GqlExecutionContext, type GqlContextType } from '@nestjs/graphql';
import type { FastifyRequest } from 'fastify';
import type { Principal } from './principal.ts';

/** What a request carries once authenticated (cached for the request's other resolvers). */
export interface ArcaRequest extends FastifyRequest {
  arcaPrincipal?: Promise<Principal>;
  /** set by the guard once authentication succeeded */
  principal?: Principal;
}

/** The Fastify request behind an HTTP route or a GraphQL resolver. */
export function requestOf(context: ExecutionContext): ArcaRequest {
  if (context.getType<GqlContextType>() === 'graphql') {
    return GqlExecutionContext.create(context).getContext<{ req: ArcaRequest }>().req;
  }
  return context.switchToHttp().getRequest<ArcaRequest>();
}

/** The authenticated caller (the guard has run; a handler without a principal is a bug). */
export const Caller = createParamDecorator((_data: unknown, context: ExecutionContext): Principal => {
  const principal = requestOf(context).principal;
  if (principal == null) throw new ControlPlaneError(ControlPlaneErrorCode.Internal, 'no authenticated caller on this request');
  return principal;
});

/** The request ID (x-request-id, or generated), recorded in audit entries and logs. */
export const RequestId = createParamDecorator((_data: unknown, context: ExecutionContext): string => requestOf(context).id);
