export { aeadSeal, aeadOpen, AuthenticationError, AEAD_NONCE_BYTES, AEAD_TAG_BYTES, AEAD_OVERHEAD } from './aead.ts';
export { argon2id, defaultArgon2idParams, hkdfSha256, type Argon2idParams } from './kdf.ts';
export {
  generateMasterKey, deriveStoreKeys, deriveBlobKey, BlobKeyDeriver, deriveFileKey, deriveConfigMacKey, hmacSha256,
  KEY_BYTES, BLOB_ID_BYTES, FILE_KEY_ID_BYTES, type AgentKeys, type StoreKeys,
} from './key-hierarchy.ts';
export { constantTimeEqual } from './constant-time.ts';
export * from './tokens/index.ts';
