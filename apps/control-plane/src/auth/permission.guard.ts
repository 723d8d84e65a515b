import { createHash, timingSafeEqual } from 'node:crypto';
import { Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AccessService } from '../access/access.service.ts';
import { PERMISSION_METADATA, type PermissionDeclaration } from '../access/require-permission.decorator.ts';
import type { ControlPlaneConfig } from '../config/control-plane-config.ts';
import { CONFIG } from '../database/database.tokens.ts';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';
import { AuthService } from './auth.service.ts';
import { requestOf } from './request-context.ts';

/**
 * The global guard (APP_GUARD; also run for GraphQL field resolvers). It reads the handler's
 * permission declaration and refuses handlers that have none, so a forgotten decorator fails
 * closed rather than open. It authenticates once per request and checks the declared
 * permission at the type level; services then check conditions on the objects themselves.
 */
@Injectable()
export class PermissionGuard implements CanActivate {
  private readonly reflector: Reflector;
  private readonly auth: AuthService;
  private readonly access: AccessService;
  private readonly serviceTokenHashes: Buffer[];

  constructor(reflector: Reflector, auth: AuthService, access: AccessService, @Inject(CONFIG) config: ControlPlaneConfig) {
    this.reflector = reflector;
    this.auth = auth;
    this.access = access;
    this.serviceTokenHashes = config.keyProxyAuditTokenSha256.map((hex) => Buffer.from(hex, 'hex'));
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const declaration = this.reflector.getAllAndOverride<PermissionDeclaration | undefined>(PERMISSION_METADATA, [context.getHandler(), context.getClass()]);
    if (declaration == null) {
      throw new ControlPlaneError(ControlPlaneErrorCode.Internal, `${context.getClass().name}.${context.getHandler().name} declares no permission`);
    }
    if (declaration.kind === 'public') return true;
    const request = requestOf(context);
    if (declaration.kind === 'service') return this.checkServiceCredential(request.headers.authorization);

    request.arcaPrincipal ??= this.auth.authenticate(request);
    const principal = await request.arcaPrincipal;
    request.principal = principal;
    if (declaration.kind === 'authenticated') return true;
    try {
      this.access.require(principal, declaration.action, declaration.subject, undefined, request.id);
    } catch (err) {
      await this.access.recordDenial(err);
      throw err;
    }
    return true;
  }

  /** Bearer token whose SHA-256 is one of ARCA_CP_KEY_PROXY_AUDIT_TOKEN_SHA256 (constant time). */
  private checkServiceCredential(authorization: string | undefined): boolean {
    if (this.serviceTokenHashes.length === 0) {
      throw new ControlPlaneError(ControlPlaneErrorCode.Disabled, 'key proxy audit ingestion is not configured (ARCA_CP_KEY_PROXY_AUDIT_TOKEN_SHA256)');
    }
    const match = /^Bearer ([^\s]+)$/i.exec(authorization ?? '');
    const presented = createHash('sha256').update(match?.[1] ?? '').digest();
    let ok = false;
    for (const expected of this.serviceTokenHashes) ok = timingSafeEqual(presented, expected) || ok;
    if (!ok || match == null) throw new ControlPlaneError(ControlPlaneErrorCode.Unauthenticated, 'the service credential is not valid');
    return true;
  }
}
