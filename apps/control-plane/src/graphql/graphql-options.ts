import type { MercuriusDriverConfig } from '@nestjs/mercurius';
import { MercuriusDriver } from '@nestjs/mercurius';
import { fieldExtensionsEstimator, getComplexity, simpleEstimator, type ComplexityEstimator } from 'graphql-query-complexity';
import { Kind, type DocumentNode, type GraphQLSchema } from 'graphql';
import type { Logger } from 'pino';
import type { ControlPlaneConfig } from '../config/control-plane-config.ts';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';
import { createGraphqlErrorFormatter } from './graphql-error-formatter.ts';

export const GRAPHQL_PATH = '/graphql';

/** A connection's cost is its page size times what each node asks for. */
const pageEstimator: ComplexityEstimator = ({ args, childComplexity }) =>
  typeof args.first === 'number' ? 1 + childComplexity * Math.max(1, args.first) : undefined;
const ESTIMATORS = [fieldExtensionsEstimator(), pageEstimator, simpleEstimator({ defaultComplexity: 1 })];

/**
 * Complexity of a document without variables, per parsed document: Mercurius reuses the parsed
 * document of a query it has seen (its LRU cache), so a repeated query is not walked again.
 * With variables, page sizes may change between requests: computed every time.
 */
const fixedComplexity = new WeakMap<GraphQLSchema, WeakMap<DocumentNode, number>>();

function complexityOf(schema: GraphQLSchema, document: DocumentNode, variables: Record<string, unknown> | undefined): number {
  const fixed = !document.definitions.some((d) => d.kind === Kind.OPERATION_DEFINITION && (d.variableDefinitions?.length ?? 0) > 0);
  if (!fixed) return getComplexity({ schema, query: document, variables: variables ?? {}, estimators: ESTIMATORS });
  let bySchema = fixedComplexity.get(schema);
  if (bySchema == null) fixedComplexity.set(schema, bySchema = new WeakMap());
  let complexity = bySchema.get(document);
  if (complexity == null) {
    complexity = getComplexity({ schema, query: document, variables: {}, estimators: ESTIMATORS });
    bySchema.set(document, complexity);
  }
  return complexity;
}

/**
 * Mercurius on Fastify (docs/control-plane.md explains the choice over Apollo): code-first schema
 * built in memory, no GraphiQL, the depth limit as a validation rule, the complexity limit before
 * execution, and our error formatter.
 */
export function graphqlOptions(config: ControlPlaneConfig, logger: Logger): MercuriusDriverConfig {
  return {
    driver: MercuriusDriver,
    path: GRAPHQL_PATH,
    autoSchemaFile: true,
    sortSchema: true,
    graphiql: false,
    // guards run for field resolvers too, so a @ResolveField's own permission is enforced
    fieldResolverEnhancers: ['guards', 'interceptors'],
    queryDepth: config.graphql.maxDepth,
    // graphql-jit compiles a query after its first run (Mercurius caches it with the parsed
    // document): less work per request than graphql-js's generic executor
    jit: 1,
    hooks: {
      // complexity depends on variables (page sizes), so it is checked before execution rather
      // than as a validation rule: mercurius caches validated documents, not their variables
      preExecution: [
        (schema, document, _context, variables) => {
          const complexity = complexityOf(schema, document, variables);
          if (complexity > config.graphql.maxComplexity) {
            throw new ControlPlaneError(
              ControlPlaneErrorCode.QueryTooComplex,
              `the query's complexity ${complexity} exceeds the maximum complexity of ${config.graphql.maxComplexity}: ask for fewer fields or smaller pages`,
            );
          }
        },
      ],
    },
    context: (request, reply) => ({ req: request, reply }),
    // subscriptions (jobProgress) over WebSocket: the upgrade request authenticates, like any
    // other request, and the permission guard runs on subscribe
    subscription: { context: (_socket, request) => ({ req: request }) },
    errorFormatter: createGraphqlErrorFormatter(logger) as unknown as MercuriusDriverConfig['errorFormatter'],
  };
}
