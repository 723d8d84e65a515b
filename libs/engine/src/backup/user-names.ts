import { readFileSync } from 'node:fs';

/** uid/gid -> name from /etc/passwd and /etc/group (Node has no getpwuid); empty where unknown. */
export class UserNames {
  private readonly users = load('/etc/passwd');
  private readonly groups = load('/etc/group');

  user(uid: number): string | undefined {
    return this.users.get(uid);
  }

  group(gid: number): string | undefined {
    return this.groups.get(gid);
  }
}

function load(file: string): Map<number, string> {
  const map = new Map<number, string>();
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (name && id !== undefined && /^\d+$/.test(id) && !map.has(Number(id))) map.set(Number(id), name);
    }
  } catch {
    // not a Unix-like system: names are optional
  }
  return map;
}
