import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { ArcaError, ArcaErrorCode } from '../errors/arca-error.ts';
import { objectBytes, type ObjectData, type ObjectInfo, type StorageBackend } from './storage-backend.ts';

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface S3BackendOptions {
  bucket: string;
  /** key prefix inside the bucket, without leading or trailing slash; '' for the bucket root */
  prefix: string;
  /** custom endpoint (MinIO, Ceph, s3rver, …); omitted for AWS */
  endpoint?: string;
  /** defaults to 'us-east-1' */
  region?: string;
  forcePathStyle?: boolean;
  /** omitted: the SDK default provider chain (AWS_ACCESS_KEY_ID, profiles, instance roles, …) */
  credentials?: S3Credentials;
}

export const DEFAULT_S3_REGION = 'us-east-1';
const MAX_ATTEMPTS = 5;
const URL_EXAMPLE = 's3://my-bucket/backups/laptop?endpoint=http://127.0.0.1:9000&path-style=true&region=eu-west-1';
const URL_HINT = `use s3://<bucket>[/<prefix>][?endpoint=<url>&path-style=true|false&region=<region>], e.g. ${URL_EXAMPLE}; pass credentials via AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, never in the URL`;
const QUERY_PARAMS = new Set(['endpoint', 'path-style', 'region']);

/**
 * A store in an S3 (or S3-compatible) bucket. A PUT is atomic on S3: a reader sees the old object,
 * no object or the whole new one, so no temp-object dance is needed. Transient failures are retried
 * by the SDK's standard retry strategy.
 */
export class S3Backend implements StorageBackend {
  readonly location: string;
  readonly bucket: string;
  readonly prefix: string;
  private readonly client: S3Client;
  private readonly secrets: string[];

  constructor(options: S3BackendOptions) {
    if (!options.bucket || options.bucket.includes('/')) {
      throw new ArcaError(ArcaErrorCode.InvalidArgument, `invalid S3 bucket name: ${JSON.stringify(options.bucket)}`, { hint: URL_HINT });
    }
    this.bucket = options.bucket;
    this.prefix = normalizePrefix(options.prefix);
    this.location = this.prefix ? `s3://${this.bucket}/${this.prefix}` : `s3://${this.bucket}`;
    const creds = options.credentials;
    this.secrets = creds ? [creds.accessKeyId, creds.secretAccessKey, creds.sessionToken ?? ''].filter((s) => s.length > 0) : [];
    this.client = new S3Client({
      region: options.region || DEFAULT_S3_REGION,
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      ...(options.forcePathStyle === undefined ? {} : { forcePathStyle: options.forcePathStyle }),
      ...(creds ? { credentials: { ...creds } } : {}),
      maxAttempts: MAX_ATTEMPTS,
      retryMode: 'standard',
    });
  }

  private key(name: string): string {
    if (!name || name.startsWith('/') || name.split('/').some((part) => part === '..' || part === '.' || part === '')) {
      throw new ArcaError(ArcaErrorCode.InvalidArgument, `invalid object name: ${name}`);
    }
    return this.prefix ? `${this.prefix}/${name}` : name;
  }

  async put(name: string, parts: ObjectData): Promise<void> {
    const data = objectBytes(parts);
    const key = this.key(name);
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: data,
          ContentLength: data.byteLength,
          ContentType: 'application/octet-stream',
        }),
      );
    } catch (err) {
      throw this.translate(err, 'put', name);
    }
  }

  async get(name: string): Promise<Buffer> {
    const key = this.key(name);
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      const buf = await readBody(res.Body);
      if (res.ContentLength !== undefined && res.ContentLength !== buf.length) {
        throw new ArcaError(ArcaErrorCode.CorruptObject, `${name} is truncated: expected ${res.ContentLength} bytes, got ${buf.length}`);
      }
      return buf;
    } catch (err) {
      throw this.translate(err, 'get', name);
    }
  }

  async getRange(name: string, offset: number, length: number): Promise<Buffer> {
    const key = this.key(name);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new ArcaError(ArcaErrorCode.InvalidArgument, `invalid range for ${name}: offset ${offset}, length ${length}`);
    }
    if (length === 0) {
      // an empty HTTP range cannot be expressed; check existence and bounds instead
      const info = await this.stat(name);
      if (!info) throw notFound(name);
      if (offset > info.size) throw truncated(name, offset, length, 0);
      return Buffer.alloc(0);
    }
    try {
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: `bytes=${offset}-${offset + length - 1}` }),
      );
      const body = await readBody(res.Body);
      // Servers that ignore or widen the range (200 with the whole object, or a larger 206) are tolerated:
      // locate the requested bytes from Content-Range and slice them out.
      const start = parseContentRangeStart(res.ContentRange) ?? 0;
      if (start > offset) throw truncated(name, offset, length, 0);
      const part = body.subarray(offset - start, offset - start + length);
      if (part.length !== length) throw truncated(name, offset, length, part.length);
      return part;
    } catch (err) {
      throw this.translate(err, 'getRange', name, { offset, length });
    }
  }

  async stat(name: string): Promise<ObjectInfo | undefined> {
    const key = this.key(name);
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { name, size: res.ContentLength ?? 0 };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw this.translate(err, 'stat', name);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    if (prefix.startsWith('/') || prefix.split('/').some((part) => part === '..' || part === '.')) {
      throw new ArcaError(ArcaErrorCode.InvalidArgument, `invalid list prefix: ${prefix}`);
    }
    // the backend prefix is always followed by '/', so a store at `a` never sees objects of a store at `ab`
    const base = this.prefix ? `${this.prefix}/` : '';
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: base + prefix, ContinuationToken: token }),
        );
      } catch (err) {
        throw this.translate(err, 'list', prefix || '(all objects)');
      }
      for (const obj of page.Contents ?? []) {
        if (obj.Key === undefined || !obj.Key.startsWith(base)) continue;
        const name = obj.Key.slice(base.length);
        if (!name || name.endsWith('/')) continue; // "directory marker" objects made by some tools
        yield { name, size: obj.Size ?? 0 };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(name: string): Promise<void> {
    const key = this.key(name);
    try {
      // S3 answers 204 for a missing key as well; some S3-compatible servers answer 404
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      if (isNotFound(err) && errorName(err) !== 'NoSuchBucket') return;
      throw this.translate(err, 'delete', name);
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  /** Turn an SDK failure into an ArcaError the user can act on, without credentials in it. */
  private translate(err: unknown, op: string, name: string, range?: { offset: number; length: number }): ArcaError {
    if (err instanceof ArcaError) return err;
    const code = errorName(err);
    const status = httpStatus(err);
    const cause = this.sanitize(err);
    const what = `${name} in ${this.location}`;
    if (code === 'NoSuchKey' || (status === 404 && code !== 'NoSuchBucket' && (op === 'get' || op === 'getRange'))) {
      return new ArcaError(ArcaErrorCode.BlobNotFound, `object ${name} does not exist in the store`, { cause });
    }
    if (op === 'getRange' && range && (code === 'InvalidRange' || status === 416)) {
      return new ArcaError(ArcaErrorCode.CorruptObject, `${name} is truncated: wanted ${range.length} bytes at offset ${range.offset}, the object is shorter`, { cause });
    }
    return new ArcaError(ArcaErrorCode.BackendError, `S3 ${op} of ${what} failed: ${cause.message}`, {
      hint: hintFor(code, status, this.bucket),
      cause,
    });
  }

  /** A plain Error with the useful fields of an SDK error, but not its raw request/response. */
  private sanitize(err: unknown): Error {
    const e = err as { name?: unknown; message?: unknown; code?: unknown; $metadata?: { httpStatusCode?: number; requestId?: string } };
    const name = typeof e?.name === 'string' ? e.name : 'Error';
    const sysCode = typeof e?.code === 'string' ? e.code : undefined;
    let message = typeof e?.message === 'string' && e.message ? e.message : (sysCode ?? name);
    for (const secret of this.secrets) message = message.split(secret).join('***');
    const status = e?.$metadata?.httpStatusCode;
    const detail = [name, sysCode && sysCode !== name ? sysCode : undefined, status ? `HTTP ${status}` : undefined].filter(Boolean).join(', ');
    const out = new Error(`${message} (${detail})`);
    out.name = name;
    if (e?.$metadata?.requestId) Object.assign(out, { requestId: e.$metadata.requestId });
    return out;
  }
}

/**
 * Parse `s3://bucket[/prefix][?endpoint=URL&path-style=true|false&region=REGION]` into S3Backend options.
 * Query parameters fall back to ARCA_S3_ENDPOINT, ARCA_S3_PATH_STYLE and AWS_REGION. With a custom endpoint
 * and no explicit path-style, path-style addressing is used (what MinIO, Ceph and s3rver expect).
 * Credentials are never taken from the URL: the SDK default provider chain supplies them.
 */
export function parseS3Url(url: string, env: NodeJS.ProcessEnv): S3BackendOptions {
  const shown = redactUrl(url);
  const fail = (why: string): never => {
    throw new ArcaError(ArcaErrorCode.InvalidArgument, `invalid S3 URL ${shown}: ${why}`, { hint: URL_HINT });
  };
  // the URL parser silently resolves `.` and `..` segments, so look at the raw path first
  const rawPath = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*([^?#]*)/i.exec(url)?.[1] ?? '';
  const rawSegments = rawPath.split('/').map((s) => s.replace(/%2e/gi, '.'));
  if (rawSegments.some((s) => s === '.' || s === '..')) fail('the prefix must not contain "." or ".." segments');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return fail('not a URL');
  }
  if (parsed.protocol !== 's3:') fail('the scheme must be s3://');
  if (parsed.username || parsed.password) fail('credentials do not belong in the URL');
  if (parsed.port) fail('a port belongs in the endpoint parameter, not after the bucket');
  const bucket = parsed.hostname;
  const bucketProblem = bucketNameProblem(bucket);
  if (bucketProblem) fail(bucketProblem);

  let prefixRaw: string;
  try {
    prefixRaw = decodeURIComponent(parsed.pathname);
  } catch {
    return fail('the prefix is not valid percent-encoding');
  }
  const segments = prefixRaw.split('/').filter((s) => s.length > 0);
  if (segments.some((s) => s === '.' || s === '..')) fail('the prefix must not contain "." or ".." segments');
  const prefix = segments.join('/');

  for (const key of parsed.searchParams.keys()) {
    if (!QUERY_PARAMS.has(key)) fail(`unknown parameter "${key}" (known: ${[...QUERY_PARAMS].join(', ')})`);
  }
  if (parsed.hash) fail('a URL fragment (#…) is not allowed');

  const endpoint = parsed.searchParams.get('endpoint') ?? nonEmpty(env.ARCA_S3_ENDPOINT);
  if (endpoint !== undefined) {
    let ep: URL | undefined;
    try {
      ep = new URL(endpoint);
    } catch {
      ep = undefined;
    }
    if (!ep || (ep.protocol !== 'http:' && ep.protocol !== 'https:')) fail('the endpoint must be an http:// or https:// URL');
    if (ep && (ep.username || ep.password)) fail('credentials do not belong in the endpoint URL');
  }

  const pathStyleRaw = parsed.searchParams.get('path-style') ?? nonEmpty(env.ARCA_S3_PATH_STYLE);
  let forcePathStyle: boolean | undefined;
  if (pathStyleRaw !== undefined) {
    const v = pathStyleRaw.trim().toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(v)) forcePathStyle = true;
    else if (['false', '0', 'no', 'off'].includes(v)) forcePathStyle = false;
    else fail(`path-style must be true or false, not "${pathStyleRaw}"`);
  } else if (endpoint !== undefined) {
    forcePathStyle = true;
  }

  const region = parsed.searchParams.get('region') ?? nonEmpty(env.AWS_REGION) ?? DEFAULT_S3_REGION;
  if (!/^[a-z0-9-]+$/.test(region)) fail(`invalid region "${region}"`);

  const options: S3BackendOptions = { bucket, prefix, region };
  if (endpoint !== undefined) options.endpoint = endpoint;
  if (forcePathStyle !== undefined) options.forcePathStyle = forcePathStyle;
  // Static keys from the environment the caller passed (not only process.env); without them the
  // SDK's default chain applies (profiles, SSO, instance metadata, ...).
  const accessKeyId = nonEmpty(env.AWS_ACCESS_KEY_ID);
  const secretAccessKey = nonEmpty(env.AWS_SECRET_ACCESS_KEY);
  if (accessKeyId && secretAccessKey) {
    const sessionToken = nonEmpty(env.AWS_SESSION_TOKEN);
    options.credentials = { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) };
  }
  return options;
}

/** Why `name` is not a valid S3 bucket name, or undefined if it is. */
export function bucketNameProblem(name: string): string | undefined {
  if (!name) return 'the bucket name is missing';
  if (name.length < 3 || name.length > 63) return `bucket name "${name}" must be 3 to 63 characters long`;
  if (!/^[a-z0-9][a-z0-9.-]*[a-z0-9]$/.test(name)) {
    return `bucket name "${name}" may contain only lowercase letters, digits, dots and hyphens, and must start and end with a letter or digit`;
  }
  if (name.includes('..')) return `bucket name "${name}" must not contain two adjacent dots`;
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(name)) return `bucket name "${name}" must not look like an IP address`;
  return undefined;
}

function normalizePrefix(prefix: string): string {
  const segments = prefix.split('/').filter((s) => s.length > 0);
  if (segments.some((s) => s === '.' || s === '..')) {
    throw new ArcaError(ArcaErrorCode.InvalidArgument, `invalid S3 prefix: ${prefix}`, { hint: URL_HINT });
  }
  return segments.join('/');
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@?#]*@/i, '$1***@').replace(/(\/\/)[^/@?#&]*:[^/@?#&]*@/g, '$1***@');
}

async function readBody(body: unknown): Promise<Buffer> {
  if (body === undefined || body === null) return Buffer.alloc(0);
  const b = body as { transformToByteArray?: () => Promise<Uint8Array> };
  if (typeof b.transformToByteArray !== 'function') throw new Error('unexpected S3 response body type');
  const bytes = await b.transformToByteArray();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function parseContentRangeStart(contentRange: string | undefined): number | undefined {
  const m = contentRange ? /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(contentRange.trim()) : null;
  return m ? Number(m[1]) : undefined;
}

function errorName(err: unknown): string | undefined {
  const e = err as { name?: unknown; Code?: unknown; code?: unknown } | undefined;
  if (typeof e?.Code === 'string') return e.Code;
  // Node system errors (ECONNREFUSED, …), also when wrapped in an AggregateError by happy eyeballs
  if (typeof e?.code === 'string' && /^E[A-Z_]+$/.test(e.code)) return e.code;
  if (typeof e?.name === 'string' && e.name !== 'Error' && e.name !== 'AggregateError') return e.name;
  if (typeof e?.code === 'string') return e.code;
  return undefined;
}

function httpStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

function isNotFound(err: unknown): boolean {
  const name = errorName(err);
  return name === 'NotFound' || name === 'NoSuchKey' || (httpStatus(err) === 404 && name !== 'NoSuchBucket');
}

function notFound(name: string): ArcaError {
  return new ArcaError(ArcaErrorCode.BlobNotFound, `object ${name} does not exist in the store`);
}

function truncated(name: string, offset: number, length: number, got: number): ArcaError {
  return new ArcaError(ArcaErrorCode.CorruptObject, `${name} is truncated: wanted ${length} bytes at offset ${offset}, got ${got}`);
}

function hintFor(code: string | undefined, status: number | undefined, bucket: string): string {
  switch (code) {
    case 'NoSuchBucket':
      return `bucket ${bucket} does not exist: create it first, or check the bucket name and region`;
    case 'AccessDenied':
    case 'Forbidden':
    case 'AllAccessDisabled':
      return `the credentials in use may not access bucket ${bucket}: check the IAM policy (s3:GetObject, s3:PutObject, s3:ListBucket, s3:DeleteObject)`;
    case 'InvalidAccessKeyId':
    case 'SignatureDoesNotMatch':
    case 'ExpiredToken':
    case 'InvalidToken':
    case 'CredentialsProviderError':
      return 'check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) or the AWS profile in use';
    case 'PermanentRedirect':
    case 'AuthorizationHeaderMalformed':
    case 'IllegalLocationConstraintException':
      return `bucket ${bucket} is in another region: set ?region=… in the store URL or AWS_REGION`;
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'ECONNRESET':
    case 'ETIMEDOUT':
    case 'TimeoutError':
      return 'the S3 endpoint could not be reached: check the endpoint URL (?endpoint=… or ARCA_S3_ENDPOINT) and the network; the command can be re-run safely';
  }
  if (status === 403) return 'access was denied: check the credentials and the bucket policy';
  if (status !== undefined && status >= 500) return 'the S3 service reported an internal error after retries; run the command again later';
  return 'check the store URL, the credentials and network access to the S3 endpoint, then run the command again';
}
