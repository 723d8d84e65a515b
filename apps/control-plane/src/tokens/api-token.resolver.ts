import { Args, ID, Mutation, Query, Resolver } from '@nestjs/graphql';
import { RequirePermission } from '../access/require-permission.decorator.ts';
import type { Principal } from '../auth/principal.ts';
import { Caller, RequestId } from '../auth/request-context.ts';
import { ApiToken, CreateApiTokenInput, CreateApiTokenPayload } from './api-token.types.ts';
import { ApiTokenService } from './api-token.service.ts';

@Resolver(() => ApiToken)
export class ApiTokenResolver {
  private readonly tokens: ApiTokenService;

  constructor(tokens: ApiTokenService) {
    this.tokens = tokens;
  }

  @Query(() => [ApiToken], { description: 'API tokens you may see (your own; all of them for admins and auditors)' })
  @RequirePermission('read', 'ApiToken')
  apiTokens(@Caller() caller: Principal): Promise<ApiToken[]> {
    return this.tokens.list(caller);
  }

  @Mutation(() => CreateApiTokenPayload, { description: 'Creates a token for yourself; the token is in the answer and nowhere else' })
  @RequirePermission('create', 'ApiToken')
  createApiToken(@Caller() caller: Principal, @RequestId() requestId: string, @Args('input') input: CreateApiTokenInput): Promise<CreateApiTokenPayload> {
    return this.tokens.create(caller, input, requestId);
  }

  @Mutation(() => ApiToken, { description: 'Revokes a token at once' })
  @RequirePermission('delete', 'ApiToken')
  revokeApiToken(@Caller() caller: Principal, @RequestId() requestId: string, @Args('id', { type: () => ID }) id: string): Promise<ApiToken> {
    return this.tokens.revoke(caller, id, requestId);
  }
}
