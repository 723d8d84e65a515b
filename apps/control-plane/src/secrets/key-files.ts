import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';

/**
 * The control plane's own key files (docs/control-plane.md "Fleet keys"): the secrets key that
 * seals store credentials and the Ed25519 key that signs job tokens. Embedded mode generates a
 * missing file (0600) in its data directory; with Postgres they must be given, because every
 * replica has to use the same keys. Files readable by others are refused, like ssh does.
 */
export interface KeyFileSpec {
  /** the variable naming the file, for error messages */
  variable: string;
  path: string | null;
  generate: boolean;
  create: () => Buffer;
}

export function readKeyFile(spec: KeyFileSpec): Buffer {
  if (spec.path == null) {
    throw new ControlPlaneError(ControlPlaneErrorCode.ConfigInvalid, `${spec.variable} is required with DATABASE_URL: every replica must use the same key (see docs/control-plane.md "Fleet keys")`);
  }
  let mode: number;
  try {
    mode = statSync(spec.path).mode;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !spec.generate) {
      throw new ControlPlaneError(ControlPlaneErrorCode.ConfigInvalid, `${spec.variable}: cannot read ${spec.path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    mkdirSync(dirname(spec.path), { recursive: true, mode: 0o700 });
    // 'wx': two processes starting at once never overwrite each other's key
    try {
      writeFileSync(spec.path, spec.create(), { mode: 0o600, flag: 'wx' });
    } catch (writeErr) {
      if ((writeErr as NodeJS.ErrnoException).code !== 'EEXIST') throw writeErr;
    }
    chmodSync(spec.path, 0o600);
    mode = statSync(spec.path).mode;
  }
  if ((mode & 0o077) !== 0) {
    throw new ControlPlaneError(ControlPlaneErrorCode.ConfigInvalid, `${spec.variable}: ${spec.path} is readable by group or others; chmod 600 it`);
  }
  return readFileSync(spec.path);
}

export function newSecretsKeyFile(): Buffer {
  return randomBytes(32);
}

export function newJobSigningKeyFile(): Buffer {
  const { privateKey } = generateKeyPairSync('ed25519');
  return Buffer.from(privateKey.export({ type: 'pkcs8', format: 'pem' }));
}
