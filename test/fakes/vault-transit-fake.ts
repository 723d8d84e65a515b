/**
 * FAKE HashiCorp Vault (test double), not a Vault. It serves only the endpoints the key proxy's
 * Vault KEK provider uses, with Vault's request/response shapes, status codes and error texts:
 *
 *   GET  /v1/sys/health                        (unauthenticated; 200, or 503 + sealed:true)
 *   POST /v1/<mount>/keys/<name>               create (type aes256-gcm96 only, `derived`)
 *   GET  /v1/<mount>/keys/<name>               read (404 {"errors":[]} when missing)
 *   POST /v1/<mount>/keys/<name>/rotate        new key version
 *   POST /v1/<mount>/encrypt/<name>            {plaintext, context} -> {ciphertext: vault:vN:..., key_version}
 *   POST /v1/<mount>/decrypt/<name>            {ciphertext, context} -> {plaintext}
 *   POST /v1/<mount>/rewrap/<name>             {ciphertext, context} -> ciphertext under the latest version
 *
 * (PUT is accepted wherever POST is, as Vault does.) Every endpoint but health needs
 * `X-Vault-Token` equal to the configured token, else 403 {"errors":["permission denied"]}.
 * Errors are {"errors":[...]} with Vault's texts (e.g. 400 "cipher: message authentication failed"
 * for a wrong context, 400 "missing 'context' for key derivation; ..." when a derived key gets none).
 *
 * The crypto is real and follows Vault's transit for aes256-gcm96: each key version is 32 random
 * bytes; a derived key's per-request key is HKDF-SHA256(version key, empty salt, info = context);
 * ciphertext = "vault:v<version>:" + base64(nonce(12) || AES-256-GCM ciphertext || tag(16)). So a
 * wrong context, a wrong key or a modified ciphertext genuinely fails to decrypt.
 *
 * Like Vault, encrypt to a missing key creates it ("upsert"; derived when a context is given).
 * Not implemented: other key types, convergent encryption, batch_input, key_version on encrypt,
 * min_decryption_version / min_encryption_version, associated_data, policies beyond one token,
 * namespaces (the X-Vault-Namespace header is accepted and ignored), TLS.
 *
 * `setUnavailable(true)` simulates an outage: mode 'sealed' (default) answers 503 like a sealed
 * Vault, 'reset' destroys each connection without answering, 'hang' never answers.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type VaultOutageMode = 'sealed' | 'reset' | 'hang';

export interface VaultTransitFakeOptions {
  /** the only token accepted */
  token: string;
  /** transit mount paths served; default ['transit'] */
  mounts?: readonly string[];
}

export interface VaultTransitFake {
  /** base address, e.g. http://127.0.0.1:41234 */
  url: string;
  /** number of requests received (any endpoint), for asserting that a call did or did not happen */
  readonly requestCount: number;
  setUnavailable(unavailable: boolean, mode?: VaultOutageMode): void;
  close(): Promise<void>;
}

interface TransitKey {
  name: string;
  derived: boolean;
  /** version n is versions[n - 1] */
  versions: { key: Buffer; created: number }[];
}

class VaultError extends Error {
  readonly status: number;
  readonly errors: string[];
  constructor(status: number, errors: string[]) {
    super(errors.join('; '));
    this.status = status;
    this.errors = errors;
  }
}

const MISSING_CONTEXT =
  "missing 'context' for key derivation; the key was created using a derived key, which means additional, " +
  'per-request information must be included in order to perform operations with the key';

const badRequest = (message: string): VaultError => new VaultError(400, [message]);

export async function startVaultTransitFake(options: VaultTransitFakeOptions): Promise<VaultTransitFake> {
  const mounts = new Set(options.mounts ?? ['transit']);
  const keys = new Map<string, TransitKey>();
  const sockets = new Set<Socket>();
  let outage: VaultOutageMode | undefined;
  let requestCount = 0;

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
      const body = await readBody(req);
      const url = new URL(req.url ?? '/', 'http://vault');
      const method = req.method === 'PUT' ? 'POST' : req.method;
      if (url.pathname === '/v1/sys/health' && (method === 'GET' || method === 'HEAD')) {
        health(res);
        return;
      }
      if (outage === 'sealed') throw new VaultError(503, ['Vault is sealed']);
      if (req.headers['x-vault-token'] !== options.token) throw new VaultError(403, ['permission denied']);
      const data = route(method ?? 'GET', url.pathname, body);
      if (data === undefined) {
        res.writeHead(204).end();
      } else {
        sendJson(res, 200, {
          request_id: randomUUID(),
          lease_id: '',
          renewable: false,
          lease_duration: 0,
          data,
          wrap_info: null,
          warnings: null,
          auth: null,
          mount_type: 'transit',
        });
      }
    } catch (err) {
      if (err instanceof VaultError) sendJson(res, err.status, { errors: err.errors });
      else sendJson(res, 500, { errors: [`internal error: ${(err as Error).message}`] });
    }
  }

  function health(res: ServerResponse): void {
    const sealed = outage === 'sealed';
    sendJson(res, sealed ? 503 : 200, {
      initialized: true,
      sealed,
      standby: sealed,
      performance_standby: false,
      replication_performance_mode: 'disabled',
      replication_dr_mode: 'disabled',
      server_time_utc: Math.floor(Date.now() / 1000),
      version: '1.17.0',
      ...(sealed ? {} : { cluster_name: 'vault-fake', cluster_id: '00000000-0000-0000-0000-000000000000' }),
    });
  }

  function route(method: string, pathname: string, body: Record<string, unknown>): unknown {
    const match = /^\/v1\/(.+)\/(keys|encrypt|decrypt|rewrap)\/([^/]+)(\/rotate)?$/.exec(pathname);
    const mount = match?.[1];
    if (!match || mount === undefined || !mounts.has(mount)) {
      throw new VaultError(404, [`no handler for route "${pathname.replace(/^\/v1\//, '')}". route entry not found.`]);
    }
    const [, , kind, name, rotate] = match as unknown as [string, string, string, string, string | undefined];
    const id = `${mount}\0${name}`;
    const key = keys.get(id);
    if (kind === 'keys' && rotate) {
      if (method !== 'POST') throw methodNotAllowed();
      if (!key) throw badRequest('key not found');
      key.versions.push(newVersion());
      return keyInfo(key);
    }
    if (kind === 'keys') {
      if (method === 'GET') {
        if (!key) throw new VaultError(404, []);
        return keyInfo(key);
      }
      if (method !== 'POST') throw methodNotAllowed();
      const type = body.type ?? 'aes256-gcm96';
      if (type !== 'aes256-gcm96') throw badRequest(`unknown key type: ${String(type)} (this fake supports aes256-gcm96 only)`);
      if (key) return keyInfo(key); // Vault leaves an existing key as it is
      const created: TransitKey = { name, derived: body.derived === true, versions: [newVersion()] };
      keys.set(id, created);
      return keyInfo(created);
    }
    if (method !== 'POST') throw methodNotAllowed();
    const context = decodeField(body.context, 'context');
    if (kind === 'encrypt') {
      const plaintext = decodeField(body.plaintext, 'plaintext');
      if (plaintext === undefined) throw badRequest('missing plaintext to encrypt');
      let target = key;
      if (!target) {
        target = { name, derived: context !== undefined && context.length > 0, versions: [newVersion()] };
        keys.set(id, target);
      }
      const version = target.versions.length;
      return { ciphertext: encrypt(target, version, context, plaintext), key_version: version };
    }
    if (!key) throw badRequest('encryption key not found');
    if (typeof body.ciphertext !== 'string' || body.ciphertext === '') throw badRequest('missing ciphertext to decrypt');
    const plaintext = decrypt(key, body.ciphertext, context);
    if (kind === 'decrypt') return { plaintext: plaintext.toString('base64') };
    const version = key.versions.length;
    return { ciphertext: encrypt(key, version, context, plaintext), key_version: version };
  }

  function encrypt(key: TransitKey, version: number, context: Buffer | undefined, plaintext: Buffer): string {
    const encKey = versionKey(key, version, context);
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', encKey, nonce);
    const sealed = Buffer.concat([nonce, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    return `vault:v${version}:${sealed.toString('base64')}`;
  }

  function decrypt(key: TransitKey, value: string, context: Buffer | undefined): Buffer {
    // same checks, order and texts as Vault's keysutil Policy.Decrypt
    if (!value.startsWith('vault:')) throw badRequest('invalid ciphertext: no prefix');
    const rest = value.slice('vault:'.length);
    const colon = rest.indexOf(':');
    if (colon < 0) throw badRequest('invalid ciphertext: wrong number of fields');
    const versionText = rest.slice(0, colon).replace(/^v/, '');
    if (!/^-?\d+$/.test(versionText)) throw badRequest('invalid ciphertext: version number could not be decoded');
    let version = Number(versionText);
    if (version === 0) version = 1;
    if (version > key.versions.length) throw badRequest('invalid ciphertext: version is too new');
    const encoded = rest.slice(colon + 1);
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(encoded) || encoded.length % 4 !== 0) {
      throw badRequest('invalid ciphertext: could not decode base64');
    }
    const sealed = Buffer.from(encoded, 'base64');
    const encKey = versionKey(key, version, context);
    if (sealed.length < 12) throw badRequest('invalid ciphertext length');
    const decipher = createDecipheriv('aes-256-gcm', encKey, sealed.subarray(0, 12));
    try {
      if (sealed.length < 28) throw new Error('short');
      decipher.setAuthTag(sealed.subarray(sealed.length - 16));
      return Buffer.concat([decipher.update(sealed.subarray(12, sealed.length - 16)), decipher.final()]);
    } catch {
      throw badRequest('cipher: message authentication failed');
    }
  }

  function versionKey(key: TransitKey, version: number, context: Buffer | undefined): Buffer {
    if (version <= 0 || version > key.versions.length) throw badRequest('invalid key version');
    const base = key.versions[version - 1]!.key;
    if (!key.derived) return base;
    if (context === undefined || context.length === 0) throw badRequest(MISSING_CONTEXT);
    return Buffer.from(hkdfSync('sha256', base, Buffer.alloc(0), context, 32));
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    get requestCount() {
      return requestCount;
    },
    setUnavailable(unavailable: boolean, mode: VaultOutageMode = 'sealed') {
      outage = unavailable ? mode : undefined;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

function newVersion(): { key: Buffer; created: number } {
  return { key: randomBytes(32), created: Math.floor(Date.now() / 1000) };
}

function keyInfo(key: TransitKey): Record<string, unknown> {
  return {
    name: key.name,
    type: 'aes256-gcm96',
    derived: key.derived,
    ...(key.derived ? { kdf: 'hkdf_sha256', convergent_encryption: false } : {}),
    deletion_allowed: false,
    exportable: false,
    allow_plaintext_backup: false,
    imported_key: false,
    auto_rotate_period: 0,
    keys: Object.fromEntries(key.versions.map((v, i) => [String(i + 1), v.created])),
    latest_version: key.versions.length,
    min_available_version: 0,
    min_decryption_version: 1,
    min_encryption_version: 0,
    supports_encryption: true,
    supports_decryption: true,
    supports_derivation: true,
    supports_signing: false,
  };
}

function decodeField(value: unknown, field: 'plaintext' | 'context'): Buffer | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length % 4 !== 0) {
    throw badRequest(`failed to base64-decode ${field}`);
  }
  return Buffer.from(value, 'base64');
}

function methodNotAllowed(): VaultError {
  return new VaultError(405, ['1 error occurred:\n\t* unsupported operation\n\n']);
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw badRequest('failed to parse JSON input: invalid character');
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
