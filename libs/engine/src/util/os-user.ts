import os from 'node:os';

/** The login name of this process, or '' where the platform cannot tell (containers without passwd). */
export function currentUserName(): string {
  try {
    return os.userInfo().username;
  } catch {
    return '';
  }
}
