import type { z } from 'zod';
import { ControlPlaneError, ControlPlaneErrorCode } from './control-plane-error.ts';

/** Validates input with zod; INVALID_INPUT lists every bad field. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const fields = result.error.issues.map((i) => ({ path: i.path.map(String).join('.') || '(input)', message: i.message }));
  throw new ControlPlaneError(ControlPlaneErrorCode.InvalidInput, `invalid input: ${fields.map((f) => `${f.path}: ${f.message}`).join('; ')}`, { fields });
}

/** The Postgres SQLSTATE behind a (possibly Drizzle-wrapped) driver error. */
export function sqlState(err: unknown): string | undefined {
  const e = err as { code?: unknown; cause?: { code?: unknown } };
  const code = typeof e.cause?.code === 'string' ? e.cause.code : e.code;
  return typeof code === 'string' ? code : undefined;
}

/** Runs `fn`; a unique or foreign-key violation becomes CONFLICT with `message`. */
export async function conflictAs<T>(message: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const state = sqlState(err);
    if (state === '23505' || state === '23503') throw new ControlPlaneError(ControlPlaneErrorCode.Conflict, message, { cause: err });
    throw err;
  }
}

export function notFound(what: string): ControlPlaneError {
  return new ControlPlaneError(ControlPlaneErrorCode.NotFound, `${what} was not found in your organization`);
}
