import { open } from 'node:fs/promises';
import { KeyProxyError, KeyProxyErrorCode } from '../errors/key-proxy-error.ts';

/** KEK files and PIN files are tiny; a large file is the wrong path, not a secret. */
const MAX_SECRET_FILE_BYTES = 4096;

/**
 * Reads a file holding a secret (local KEK, HSM PIN) after checking that only the key proxy's own
 * user can read or change it: mode & 0o077 must be 0 and the owner must be the current user. The
 * checks run on the opened descriptor (fstat), so the file cannot be swapped between check and
 * read. Symlinks are followed on purpose: Kubernetes mounts secrets through symlinks, and what
 * matters is the file actually read. Throws CONFIG_INVALID with the fix to apply.
 *
 * The caller owns (and should zero) the returned buffer.
 */
export async function readSecretFile(path: string, what: string): Promise<Buffer> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new KeyProxyError(KeyProxyErrorCode.ConfigInvalid, `cannot open ${what} ${path} (${code})`);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) {
      throw new KeyProxyError(KeyProxyErrorCode.ConfigInvalid, `${what} ${path} is not a regular file`);
    }
    const mode = stat.mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new KeyProxyError(
        KeyProxyErrorCode.ConfigInvalid,
        `${what} ${path} is accessible by group or others (mode ${mode.toString(8).padStart(4, '0')}); ` +
          `restrict it to the key proxy's user: chmod 600 ${path}`,
      );
    }
    const uid = process.getuid?.();
    if (uid !== undefined && stat.uid !== uid) {
      throw new KeyProxyError(
        KeyProxyErrorCode.ConfigInvalid,
        `${what} ${path} is owned by uid ${stat.uid}, not by the key proxy's user (uid ${uid}); ` +
          `chown it to that user and chmod 600 ${path}`,
      );
    }
    if (stat.size > MAX_SECRET_FILE_BYTES) {
      throw new KeyProxyError(KeyProxyErrorCode.ConfigInvalid, `${what} ${path} is too large to be a ${what}`);
    }
    const buffer = Buffer.alloc(MAX_SECRET_FILE_BYTES + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > MAX_SECRET_FILE_BYTES) {
        buffer.fill(0);
        throw new KeyProxyError(KeyProxyErrorCode.ConfigInvalid, `${what} ${path} is too large to be a ${what}`);
      }
    }
    // Copy out and wipe the oversized read buffer, so exactly one copy of the secret remains.
    const content = Buffer.from(buffer.subarray(0, length));
    buffer.fill(0);
    return content;
  } finally {
    await handle.close();
  }
}
