import { Field, ObjectType } from '@nestjs/graphql';
import { z } from 'zod';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';
import { TypeRequiresAuthentication } from '../access/type-permissions.ts';

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 200;

@ObjectType({ description: 'Relay page information' })
@TypeRequiresAuthentication()
export class PageInfo {
  @Field()
  hasNextPage!: boolean;

  @Field()
  hasPreviousPage!: boolean;

  @Field(() => String, { nullable: true })
  startCursor!: string | null;

  @Field(() => String, { nullable: true })
  endCursor!: string | null;
}

/**
 * Opaque cursors: base64url of the JSON keyset position ([sort value, unique tiebreaker]).
 * Keyset (not offset) pagination: stable under concurrent inserts and O(page) on large logs.
 */
export function encodeCursor(position: readonly unknown[]): string {
  return Buffer.from(JSON.stringify(position)).toString('base64url');
}

export function decodeCursor<T extends readonly unknown[]>(cursor: string, schema: z.ZodType<T>): T {
  try {
    return schema.parse(JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')));
  } catch {
    throw new ControlPlaneError(ControlPlaneErrorCode.InvalidInput, 'the cursor is not valid: pass a cursor returned by this query', {
      fields: [{ path: 'after', message: 'not a cursor of this connection' }],
    });
  }
}

export function pageSize(first: number | null | undefined): number {
  const n = first ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE_SIZE) {
    throw new ControlPlaneError(ControlPlaneErrorCode.InvalidInput, `first must be between 1 and ${MAX_PAGE_SIZE}`, {
      fields: [{ path: 'first', message: `between 1 and ${MAX_PAGE_SIZE}` }],
    });
  }
  return n;
}

/** Builds edges and pageInfo from `limit + 1` fetched rows (the extra row says there is more). */
export function toConnection<T, E>(rows: T[], limit: number, hasPrevious: boolean, cursorOf: (row: T) => string, edge: (node: T, cursor: string) => E): { edges: E[]; pageInfo: PageInfo } {
  const page = rows.slice(0, limit);
  const edges = page.map((row) => edge(row, cursorOf(row)));
  const pageInfo: PageInfo = {
    hasNextPage: rows.length > limit,
    hasPreviousPage: hasPrevious,
    startCursor: page.length > 0 ? cursorOf(page[0]!) : null,
    endCursor: page.length > 0 ? cursorOf(page[page.length - 1]!) : null,
  };
  return { edges, pageInfo };
}

