import { randomBytes } from 'node:crypto';
import { constantTimeEqual, deriveConfigMacKey, hmacSha256 } from '@arca/crypto';
import { ArcaError, ArcaErrorCode } from '../errors/arca-error.ts';
import { DEFAULT_CHUNKER_PARAMS, validateChunkerParams, type ChunkerParams } from '../chunker/fastcdc.ts';
import { canonicalJson } from '../util/canonical-json.ts';

/**
 * `config`: the only plaintext object. Authenticated by `mac` = HMAC-SHA256(K_configmac,
 * canonicalJson(config without mac)), checked right after unlocking.
 */
export interface StoreConfig {
  version: 1;
  id: string;
  created: string;
  chunker: ChunkerParams;
  packSize: number;
  compression: { algorithm: 'zstd'; level: number };
  keyCustody: { type: 'passphrase' } | { type: 'key-proxy'; url: string; envelope: string };
  mac?: string;
}

export const DEFAULT_PACK_SIZE = 16 * 1024 * 1024;

export function newStoreConfig(
  options: { chunker?: ChunkerParams; packSize?: number; zstdLevel?: number; id?: string; keyCustody?: StoreConfig['keyCustody'] } = {},
): StoreConfig {
  if (options.id !== undefined && !/^[0-9a-f]{64}$/.test(options.id)) throw new ArcaError(ArcaErrorCode.InvalidArgument, 'a store ID is 64 lowercase hex digits');
  const chunker = options.chunker ?? DEFAULT_CHUNKER_PARAMS;
  validateChunkerParams(chunker);
  const packSize = options.packSize ?? DEFAULT_PACK_SIZE;
  if (!Number.isInteger(packSize) || packSize < 64 * 1024 || packSize > 1024 * 1024 * 1024) {
    throw new ArcaError(ArcaErrorCode.InvalidArgument, 'pack size must be between 64 KiB and 1 GiB');
  }
  const level = options.zstdLevel ?? 3;
  if (!Number.isInteger(level) || level < 0 || level > 19) throw new ArcaError(ArcaErrorCode.InvalidArgument, 'compression level must be 0 (off) to 19');
  return {
    version: 1,
    id: options.id ?? randomBytes(32).toString('hex'),
    created: new Date().toISOString(),
    chunker,
    packSize,
    compression: { algorithm: 'zstd', level },
    keyCustody: options.keyCustody ?? { type: 'passphrase' },
  };
}

function macOf(config: StoreConfig, macKey: Uint8Array): Buffer {
  const { mac: _mac, ...rest } = config;
  return hmacSha256(deriveConfigMacKey(macKey), Buffer.from(canonicalJson(rest)));
}

export function signConfig(config: StoreConfig, macKey: Uint8Array): StoreConfig {
  return { ...config, mac: macOf(config, macKey).toString('hex') };
}

export function verifyConfig(config: StoreConfig, macKey: Uint8Array): void {
  if (!config.mac || !constantTimeEqual(Buffer.from(config.mac, 'hex'), macOf(config, macKey))) {
    throw new ArcaError(ArcaErrorCode.ConfigTampered, 'the store config does not match its MAC: it was modified or belongs to another store', {
      hint: 'do not edit `config`; restore it from a copy of the store',
    });
  }
}

export function parseConfig(bytes: Buffer): StoreConfig {
  let config: StoreConfig;
  try {
    config = JSON.parse(bytes.toString('utf8')) as StoreConfig;
  } catch (err) {
    throw new ArcaError(ArcaErrorCode.CorruptObject, 'the store config is not valid JSON', { cause: err });
  }
  if (config.version !== 1) {
    throw new ArcaError(ArcaErrorCode.UnsupportedFormat, `store format version ${String(config.version)} is not supported by this arca`, { hint: 'upgrade arca' });
  }
  if (!/^[0-9a-f]{64}$/.test(config.id)) throw new ArcaError(ArcaErrorCode.CorruptObject, 'the store config has an invalid id');
  validateChunkerParams(config.chunker);
  return config;
}
