import { Args, Int, Query, Resolver } from '@nestjs/graphql';
import { RequirePermission } from '../access/require-permission.decorator.ts';
import type { Principal } from '../auth/principal.ts';
import { Caller } from '../auth/request-context.ts';
import { Snapshot, SnapshotConnection, SnapshotFilter } from './snapshot.types.ts';
import { SnapshotService } from './snapshot.service.ts';

@Resolver(() => Snapshot)
export class SnapshotResolver {
  private readonly catalog: SnapshotService;

  constructor(catalog: SnapshotService) {
    this.catalog = catalog;
  }

  @Query(() => SnapshotConnection, { description: 'The snapshot catalog, newest first (metadata only: sizes and counts, never file names)' })
  @RequirePermission('read', 'Store')
  snapshots(
    @Caller() caller: Principal,
    @Args('first', { type: () => Int, nullable: true }) first?: number,
    @Args('after', { nullable: true }) after?: string,
    @Args('filter', { type: () => SnapshotFilter, nullable: true }) filter?: SnapshotFilter,
  ): Promise<SnapshotConnection> {
    return this.catalog.list(caller, { first, after, filter });
  }
}
