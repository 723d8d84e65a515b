import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ArcaError, ArcaErrorCode } from '../errors/arca-error.ts';
import { FsBackend } from './fs-backend.ts';
import { MemBackend } from './mem-backend.ts';
import { parseS3Url, S3Backend } from './s3-backend.ts';
import type { StorageBackend } from './storage-backend.ts';

/**
 * Open a store location: a path, `fs:///abs/path`, `s3://bucket/prefix?endpoint=...`, or `mem:`
 * (throw-away, for tests).
 */
export function openBackend(location: string, env: NodeJS.ProcessEnv = process.env): StorageBackend {
  if (!location) {
    throw new ArcaError(ArcaErrorCode.InvalidArgument, 'no store given', { hint: 'pass --store PATH|s3://bucket/prefix or set ARCA_STORE' });
  }
  if (location.startsWith('s3://')) return new S3Backend(parseS3Url(location, env));
  if (location.startsWith('fs://')) return new FsBackend(fileURLToPath(location.replace(/^fs:/, 'file:')));
  if (location === 'mem:') return new MemBackend();
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location)) {
    throw new ArcaError(ArcaErrorCode.InvalidArgument, `unsupported store location ${location}`, { hint: 'use a path, fs:///path or s3://bucket/prefix' });
  }
  return new FsBackend(path.resolve(location));
}
