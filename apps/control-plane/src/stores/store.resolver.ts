import { Args, ID, Mutation, Query, Resolver } from '@nestjs/graphql';
import { RequirePermission } from '../access/require-permission.decorator.ts';
import type { Principal } from '../auth/principal.ts';
import { Caller, RequestId } from '../auth/request-context.ts';
import { CreateStoreInput, Store, UpdateStoreInput } from './store.types.ts';
import { StoreService } from './store.service.ts';

@Resolver(() => Store)
export class StoreResolver {
  private readonly stores: StoreService;

  constructor(stores: StoreService) {
    this.stores = stores;
  }

  @Query(() => [Store], { name: 'stores', description: 'Stores you may see' })
  @RequirePermission('read', 'Store')
  listStores(@Caller() caller: Principal): Promise<Store[]> {
    return this.stores.list(caller);
  }

  @Query(() => Store)
  @RequirePermission('read', 'Store')
  store(@Caller() caller: Principal, @Args('id', { type: () => ID }) id: string): Promise<Store> {
    return this.stores.get(caller, id);
  }

  @Mutation(() => Store, { description: 'Registers a store and queues its init job on `initAgentId`; the store is ready once that job succeeds' })
  @RequirePermission('create', 'Store')
  createStore(@Caller() caller: Principal, @RequestId() requestId: string, @Args('input') input: CreateStoreInput): Promise<Store> {
    return this.stores.create(caller, input, requestId);
  }

  @Mutation(() => Store, { description: 'Changes labels, rotates or clears credentials, or makes the store immutable' })
  @RequirePermission('update', 'Store')
  updateStore(@Caller() caller: Principal, @RequestId() requestId: string, @Args('input') input: UpdateStoreInput): Promise<Store> {
    return this.stores.update(caller, input, requestId);
  }
}
