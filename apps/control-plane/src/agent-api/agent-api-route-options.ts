import type { RouteOptions } from 'fastify';
import { Logger } from '@nestjs/common';
import { AGENT_API_MAX_BODY_BYTES, AGENT_API_PREFIX } from '@arca/contracts';
import { toAgentApiError } from './agent-api-error.ts';

const logger = new Logger('agent-api');

/**
 * Fastify route options for `/agent/v1` (an onRoute hook, registered before Nest adds its routes):
 * bodies of at most 1 MiB whatever ARCA_CP_MAX_BODY_BYTES allows elsewhere (docs/fleet.md §3),
 * and the agent API's error shape for what fails before a handler runs (body too large, not JSON),
 * which Nest's exception filters never see.
 */
export function agentApiRouteOptions(route: RouteOptions): void {
  if (!route.url.startsWith(`${AGENT_API_PREFIX}/`)) return;
  route.bodyLimit = Math.min(route.bodyLimit ?? AGENT_API_MAX_BODY_BYTES, AGENT_API_MAX_BODY_BYTES);
  route.errorHandler = (error, request, reply) => {
    const { status, body } = toAgentApiError(error, request.id, logger);
    void reply.status(status).send(body);
  };
}
