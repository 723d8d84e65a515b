import { applyDecorators, SetMetadata } from '@nestjs/common';
import { Extensions } from '@nestjs/graphql';
import type { Action, SubjectType } from './permissions.ts';

/**
 * Every GraphQL resolver and HTTP route states what it needs. The guard refuses a handler without
 * a declaration (fail closed), and a test walks the GraphQL schema for the `permission` extension.
 */
export type PermissionDeclaration =
  | { kind: 'permission'; action: Action; subject: SubjectType }
  /** any signed-in caller (e.g. `viewer`: who am I) */
  | { kind: 'authenticated' }
  /** no credentials (health, metrics) — HTTP routes only */
  | { kind: 'public' }
  /** a service credential, not a user (the key proxy's audit ingestion) */
  | { kind: 'service'; service: 'key-proxy' };

export const PERMISSION_METADATA = 'arca:permission';
/** The key under which a schema field or type carries its permission (schema-walk test, docs). */
export const PERMISSION_EXTENSION = 'permission';

export function describePermission(declaration: PermissionDeclaration): string {
  switch (declaration.kind) {
    case 'permission':
      return `${declaration.action}:${declaration.subject}`;
    case 'service':
      return `service:${declaration.service}`;
    default:
      return declaration.kind;
  }
}

function declare(declaration: PermissionDeclaration): MethodDecorator & ClassDecorator {
  return applyDecorators(
    SetMetadata(PERMISSION_METADATA, declaration),
    Extensions({ [PERMISSION_EXTENSION]: describePermission(declaration) }),
  );
}

/** Query, mutation or field resolver allowed when the caller's ability has `action` on `subject`. */
export const RequirePermission = (action: Action, subject: SubjectType): MethodDecorator & ClassDecorator =>
  declare({ kind: 'permission', action, subject });

export const RequireAuthenticated = (): MethodDecorator & ClassDecorator => declare({ kind: 'authenticated' });

/** HTTP routes only (GraphQL has no public fields). */
export const PublicRoute = (): MethodDecorator & ClassDecorator => SetMetadata(PERMISSION_METADATA, { kind: 'public' } satisfies PermissionDeclaration);

export const RequireServiceCredential = (service: 'key-proxy'): MethodDecorator & ClassDecorator =>
  SetMetadata(PERMISSION_METADATA, { kind: 'service', service } satisfies PermissionDeclaration);

/**
 * On an @ObjectType: its fields are readable by whoever may `action` the `subject` — every
 * resolver returning the type checks that first. A field needing more carries its own
 * RequirePermission (field resolver).
 */
export const TypePermission = (action: Action, subject: SubjectType): ClassDecorator =>
  Extensions({ [PERMISSION_EXTENSION]: `${action}:${subject}` }) as ClassDecorator;
