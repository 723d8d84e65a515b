/**
 * FAKE AWS KMS (test double), not KMS. A node:http server speaking the KMS JSON 1.1 protocol
 * (`POST /`, `X-Amz-Target: TrentService.<Operation>`, `Content-Type: application/x-amz-json-1.1`,
 * blobs as base64 strings, errors as HTTP 400/500 with `{"__type":"<Exception>","message":…}`) for
 * the operations the key proxy's KMS provider uses: CreateKey, DescribeKey, Encrypt, Decrypt,
 * ReEncrypt — symmetric (SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT) keys only.
 *
 * Like KMS:
 * - EncryptionContext is bound to the ciphertext and must match exactly (same keys and values, any
 *   order) on Decrypt / ReEncrypt, else InvalidCiphertextException;
 * - the ciphertext blob embeds the key ID (and backing-key version), so Decrypt works without
 *   KeyId; a KeyId that does not match the blob's key gives IncorrectKeyException;
 * - responses name keys by ARN (`arn:aws:kms:<region>:111122223333:key/<uuid>`); requests may
 *   use the key ID or the ARN (aliases are not implemented);
 * - disabled keys refuse crypto with DisabledException; unknown keys give NotFoundException;
 * - `rotateKey` adds backing key material (like RotateKeyOnDemand): old ciphertexts still
 *   decrypt, new ones and ReEncrypt use the newest material.
 * The crypto is real (AES-256-GCM per backing key, AAD = blob header + canonical context), so a
 * tampered blob or a wrong context genuinely fails. The blob layout is this fake's own; real KMS
 * blobs are opaque too.
 *
 * SigV4 signatures are NOT verified: a request only needs an `Authorization` header starting with
 * `AWS4-HMAC-SHA256` (else 400 MissingAuthenticationTokenException), so any credentials work.
 * Not implemented: aliases, grants, key policies, asymmetric/HMAC keys, GenerateDataKey, etc.
 *
 * `setUnavailable(true)` simulates an outage: mode 'error' (default) answers 500
 * KMSInternalException, 'reset' destroys each connection, 'hang' never answers.
 */
import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type KmsOutageMode = 'error' | 'reset' | 'hang';

export interface AwsKmsFakeOptions {
  /** region used in ARNs; default us-east-1 */
  region?: string;
}

export interface AwsKmsFake {
  /** endpoint for the SDK client, e.g. http://127.0.0.1:41234 */
  url: string;
  region: string;
  /** creates an enabled symmetric key and returns its key ID (a UUID) */
  createKey(description?: string): string;
  /** key ARN for a key ID */
  keyArn(keyId: string): string;
  /** adds new backing key material to the key (KMS RotateKeyOnDemand) */
  rotateKey(keyId: string): void;
  /** EnableKey / DisableKey */
  setKeyEnabled(keyId: string, enabled: boolean): void;
  /** number of requests received, for asserting that a call did or did not happen */
  readonly requestCount: number;
  setUnavailable(unavailable: boolean, mode?: KmsOutageMode): void;
  close(): Promise<void>;
}

interface FakeKey {
  keyId: string;
  arn: string;
  description: string;
  enabled: boolean;
  created: number;
  /** backing key material, newest last */
  material: Buffer[];
}

class KmsError extends Error {
  readonly status: number;
  readonly type: string;
  constructor(type: string, message: string, status = 400) {
    super(message);
    this.type = type;
    this.status = status;
  }
}

const ACCOUNT = '111122223333';
const BLOB_VERSION = 0x01;
const UUID_LENGTH = 36;
const HEADER_LENGTH = 1 + UUID_LENGTH + 4;
const NONCE_LENGTH = 12;
const TAG_LENGTH = 16;
const ALGORITHM = 'SYMMETRIC_DEFAULT';

export async function startAwsKmsFake(options: AwsKmsFakeOptions = {}): Promise<AwsKmsFake> {
  const region = options.region ?? 'us-east-1';
  const keys = new Map<string, FakeKey>();
  const sockets = new Set<Socket>();
  let outage: KmsOutageMode | undefined;
  let requestCount = 0;

  const arnFor = (keyId: string): string => `arn:aws:kms:${region}:${ACCOUNT}:key/${keyId}`;

  function createKey(description = ''): FakeKey {
    const keyId = randomUUID();
    const key: FakeKey = {
      keyId,
      arn: arnFor(keyId),
      description,
      enabled: true,
      created: Date.now() / 1000,
      material: [randomBytes(32)],
    };
    keys.set(keyId, key);
    return key;
  }

  function findKey(keyId: unknown, field = 'KeyId'): FakeKey {
    if (typeof keyId !== 'string' || keyId.length === 0 || keyId.length > 2048) {
      throw new KmsError('ValidationException', `1 validation error detected: Value at '${lowerFirst(field)}' failed to satisfy constraint: Member must have length between 1 and 2048`);
    }
    const prefix = `arn:aws:kms:${region}:${ACCOUNT}:key/`;
    const id = keyId.startsWith(prefix) ? keyId.slice(prefix.length) : keyId;
    const key = keys.get(id);
    if (!key) {
      if (keyId.startsWith('arn:') && !keyId.startsWith(prefix)) throw new KmsError('NotFoundException', `Key '${keyId}' does not exist`);
      if (!/^[0-9a-f-]{36}$/.test(id) && !keyId.startsWith('arn:')) throw new KmsError('NotFoundException', `Invalid keyId '${keyId}'`);
      throw new KmsError('NotFoundException', `Key '${arnFor(id)}' does not exist`);
    }
    return key;
  }

  function usable(key: FakeKey): FakeKey {
    if (!key.enabled) throw new KmsError('DisabledException', `${key.arn} is disabled.`);
    return key;
  }

  function encrypt(key: FakeKey, plaintext: Buffer, context: Record<string, string>): Buffer {
    const version = key.material.length - 1;
    const header = Buffer.alloc(HEADER_LENGTH);
    header[0] = BLOB_VERSION;
    header.write(key.keyId, 1, 'ascii');
    header.writeUInt32BE(version, 1 + UUID_LENGTH);
    const nonce = randomBytes(NONCE_LENGTH);
    const cipher = createCipheriv('aes-256-gcm', key.material[version]!, nonce);
    cipher.setAAD(Buffer.concat([header, canonicalContext(context)]));
    return Buffer.concat([header, nonce, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  }

  /** parses the blob's key reference; any malformed blob is InvalidCiphertextException, as in KMS */
  function blobKey(blob: Buffer): FakeKey {
    if (blob.length < HEADER_LENGTH + NONCE_LENGTH + TAG_LENGTH || blob[0] !== BLOB_VERSION) throw invalidCiphertext();
    const key = keys.get(blob.toString('ascii', 1, 1 + UUID_LENGTH));
    if (!key) throw invalidCiphertext();
    return key;
  }

  function decrypt(key: FakeKey, blob: Buffer, context: Record<string, string>): Buffer {
    const version = blob.readUInt32BE(1 + UUID_LENGTH);
    const material = key.material[version];
    if (!material) throw invalidCiphertext();
    const header = blob.subarray(0, HEADER_LENGTH);
    const nonce = blob.subarray(HEADER_LENGTH, HEADER_LENGTH + NONCE_LENGTH);
    const decipher = createDecipheriv('aes-256-gcm', material, nonce);
    decipher.setAAD(Buffer.concat([header, canonicalContext(context)]));
    decipher.setAuthTag(blob.subarray(blob.length - TAG_LENGTH));
    try {
      return Buffer.concat([decipher.update(blob.subarray(HEADER_LENGTH + NONCE_LENGTH, blob.length - TAG_LENGTH)), decipher.final()]);
    } catch {
      throw invalidCiphertext();
    }
  }

  /** Decrypt and ReEncrypt: find the key from the blob, check an explicit KeyId against it */
  function sourceKey(blob: Buffer, requestedKeyId: unknown): FakeKey {
    const key = blobKey(blob);
    if (requestedKeyId !== undefined && findKey(requestedKeyId).keyId !== key.keyId) {
      throw new KmsError('IncorrectKeyException', 'The key ID in the request does not identify a CMK that can perform this operation.');
    }
    return usable(key);
  }

  const operations: Record<string, (input: Record<string, unknown>) => Record<string, unknown>> = {
    CreateKey(input) {
      const spec = input.KeySpec ?? input.CustomerMasterKeySpec ?? ALGORITHM;
      const usage = input.KeyUsage ?? 'ENCRYPT_DECRYPT';
      if (spec !== ALGORITHM || usage !== 'ENCRYPT_DECRYPT') {
        throw new KmsError('UnsupportedOperationException', 'this fake supports only SYMMETRIC_DEFAULT ENCRYPT_DECRYPT keys');
      }
      return { KeyMetadata: metadata(createKey(typeof input.Description === 'string' ? input.Description : '')) };
    },
    DescribeKey(input) {
      return { KeyMetadata: metadata(findKey(input.KeyId)) };
    },
    Encrypt(input) {
      const key = usable(findKey(input.KeyId));
      const plaintext = blob(input.Plaintext, 'plaintext', 4096);
      const context = encryptionContext(input.EncryptionContext, 'encryptionContext');
      algorithm(input.EncryptionAlgorithm);
      return { CiphertextBlob: encrypt(key, plaintext, context).toString('base64'), KeyId: key.arn, EncryptionAlgorithm: ALGORITHM };
    },
    Decrypt(input) {
      const ciphertext = blob(input.CiphertextBlob, 'ciphertextBlob', 6144);
      const context = encryptionContext(input.EncryptionContext, 'encryptionContext');
      algorithm(input.EncryptionAlgorithm);
      const key = sourceKey(ciphertext, input.KeyId);
      return { Plaintext: decrypt(key, ciphertext, context).toString('base64'), KeyId: key.arn, EncryptionAlgorithm: ALGORITHM };
    },
    ReEncrypt(input) {
      const ciphertext = blob(input.CiphertextBlob, 'ciphertextBlob', 6144);
      const sourceContext = encryptionContext(input.SourceEncryptionContext, 'sourceEncryptionContext');
      const destinationContext = encryptionContext(input.DestinationEncryptionContext, 'destinationEncryptionContext');
      algorithm(input.SourceEncryptionAlgorithm);
      algorithm(input.DestinationEncryptionAlgorithm);
      const destination = usable(findKey(input.DestinationKeyId, 'DestinationKeyId'));
      const source = sourceKey(ciphertext, input.SourceKeyId);
      const plaintext = decrypt(source, ciphertext, sourceContext);
      try {
        return {
          CiphertextBlob: encrypt(destination, plaintext, destinationContext).toString('base64'),
          SourceKeyId: source.arn,
          KeyId: destination.arn,
          SourceEncryptionAlgorithm: ALGORITHM,
          DestinationEncryptionAlgorithm: ALGORITHM,
        };
      } finally {
        plaintext.fill(0);
      }
    },
  };

  const server = createServer((req, res) => {
    requestCount++;
    if (outage === 'reset') {
      req.socket.destroy();
      return;
    }
    if (outage === 'hang') return; // never answered; close() destroys the socket
    void handle(req, res);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const text = await readBody(req);
      if (outage === 'error') throw new KmsError('KMSInternalException', 'We encountered an internal error. Please try again.', 500);
      if (!String(req.headers.authorization ?? '').startsWith('AWS4-HMAC-SHA256')) {
        throw new KmsError('MissingAuthenticationTokenException', 'Missing Authentication Token');
      }
      const target = String(req.headers['x-amz-target'] ?? '');
      const operation = target.startsWith('TrentService.') ? operations[target.slice('TrentService.'.length)] : undefined;
      if (req.method !== 'POST' || !operation) throw new KmsError('UnknownOperationException', '');
      if (!String(req.headers['content-type'] ?? '').startsWith('application/x-amz-json-1.1')) {
        throw new KmsError('UnknownOperationException', '');
      }
      let input: unknown;
      try {
        input = text.trim() === '' ? {} : JSON.parse(text);
      } catch {
        throw new KmsError('SerializationException', 'Start of structure or map found where not expected.');
      }
      if (!input || typeof input !== 'object' || Array.isArray(input)) throw new KmsError('SerializationException', '');
      send(res, 200, operation(input as Record<string, unknown>));
    } catch (err) {
      if (err instanceof KmsError) send(res, err.status, { __type: err.type, ...(err.message ? { message: err.message } : {}) });
      else send(res, 500, { __type: 'KMSInternalException', message: (err as Error).message });
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    region,
    createKey: (description) => createKey(description).keyId,
    keyArn: (keyId) => findKey(keyId).arn,
    rotateKey(keyId) {
      findKey(keyId).material.push(randomBytes(32));
    },
    setKeyEnabled(keyId, enabled) {
      findKey(keyId).enabled = enabled;
    },
    get requestCount() {
      return requestCount;
    },
    setUnavailable(unavailable, mode = 'error') {
      outage = unavailable ? mode : undefined;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

function metadata(key: FakeKey): Record<string, unknown> {
  return {
    AWSAccountId: ACCOUNT,
    KeyId: key.keyId,
    Arn: key.arn,
    CreationDate: key.created,
    Enabled: key.enabled,
    Description: key.description,
    KeyUsage: 'ENCRYPT_DECRYPT',
    KeyState: key.enabled ? 'Enabled' : 'Disabled',
    Origin: 'AWS_KMS',
    KeyManager: 'CUSTOMER',
    CustomerMasterKeySpec: ALGORITHM,
    KeySpec: ALGORITHM,
    EncryptionAlgorithms: [ALGORITHM],
    MultiRegion: false,
  };
}

function invalidCiphertext(): KmsError {
  return new KmsError('InvalidCiphertextException', '');
}

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

function blob(value: unknown, field: string, maxLength: number): Buffer {
  if (typeof value !== 'string') {
    throw new KmsError('ValidationException', `1 validation error detected: Value at '${field}' failed to satisfy constraint: Member must not be null`);
  }
  const bytes = Buffer.from(value, 'base64');
  if (bytes.length < 1 || bytes.length > maxLength) {
    throw new KmsError('ValidationException', `1 validation error detected: Value at '${field}' failed to satisfy constraint: Member must have length between 1 and ${maxLength}`);
  }
  return bytes;
}

function encryptionContext(value: unknown, field: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value) || Object.values(value).some((v) => typeof v !== 'string')) {
    throw new KmsError('SerializationException', `Unexpected value for ${field}`);
  }
  return value as Record<string, string>;
}

function algorithm(value: unknown): void {
  if (value !== undefined && value !== ALGORITHM) {
    throw new KmsError('InvalidKeyUsageException', `The encryption algorithm ${String(value)} is not compatible with the type of key.`);
  }
}

/** order-independent, exact (case-sensitive) serialization of an encryption context */
function canonicalContext(context: Record<string, string>): Buffer {
  const entries = Object.entries(context).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Buffer.from(JSON.stringify(entries), 'utf8');
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/x-amz-json-1.1',
    'content-length': Buffer.byteLength(text),
    'x-amzn-requestid': randomUUID(),
  });
  res.end(text);
}
