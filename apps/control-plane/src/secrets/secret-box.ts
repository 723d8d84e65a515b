import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';

const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/**
 * Seals secrets the control plane must keep (store backend credentials, docs/fleet.md §5) with
 * AES-256-GCM under its own 32-byte secrets key. The caller's AAD binds a sealed value to its row
 * (for stores: org ID ‖ row ID, `credentialsAad`), so a value copied to another row or tenant does
 * not open. Layout: nonce[12] ‖ ciphertext ‖ tag[16].
 */
export class SecretBox {
  readonly #key: KeyObject;

  constructor(key: Buffer) {
    if (key.length !== 32) {
      throw new ControlPlaneError(ControlPlaneErrorCode.ConfigInvalid, `ARCA_CP_SECRETS_KEY_FILE must hold exactly 32 bytes (it holds ${key.length}); create one with: head -c 32 /dev/urandom > secrets.key && chmod 600 secrets.key`);
    }
    this.#key = createSecretKey(key);
  }

  seal(plaintext: Buffer, aad: Buffer): Buffer {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, nonce);
    cipher.setAAD(aad);
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([nonce, body, cipher.getAuthTag()]);
  }

  open(sealed: Buffer, aad: Buffer): Buffer {
    if (sealed.length < NONCE_BYTES + TAG_BYTES) throw openError();
    const decipher = createDecipheriv('aes-256-gcm', this.#key, sealed.subarray(0, NONCE_BYTES));
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw openError();
    }
  }
}

function openError(): ControlPlaneError {
  // the same message whatever failed; never the value
  return new ControlPlaneError(ControlPlaneErrorCode.Internal, 'a sealed secret did not open: the secrets key changed or the value was moved or altered; set the store\'s credentials again');
}
