import { Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { catchError, from, mergeMap, throwError, type Observable } from 'rxjs';
import { AccessService } from './access.service.ts';

/** Audits refusals raised inside resolvers and routes, after their transaction has rolled back. */
@Injectable()
export class DenialAuditInterceptor implements NestInterceptor {
  private readonly access: AccessService;

  constructor(access: AccessService) {
    this.access = access;
  }

  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle().pipe(catchError((err: unknown) => from(this.access.recordDenial(err)).pipe(mergeMap(() => throwError(() => err)))));
  }
}
