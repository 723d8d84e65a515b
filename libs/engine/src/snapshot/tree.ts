/**
 * One tree blob per directory: canonical JSON of its entries sorted by raw name bytes, so an
 * unchanged directory produces the same blob and deduplicates.
 */
export type NodeType = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'chardev' | 'blockdev';

export interface TreeNode {
  /** file name; lossy display form when the raw name is not valid UTF-8 */
  name: string;
  /** base64 of the raw name bytes, present only when they are not valid UTF-8 */
  nameRaw?: string;
  type: NodeType;
  /** permission bits including setuid/setgid/sticky (st_mode & 0o7777) */
  mode: number;
  uid: number;
  gid: number;
  user?: string;
  group?: string;
  /** nanoseconds since the epoch, decimal string */
  mtimeNs: string;
  ctimeNs: string;
  /** decimal strings: may exceed 2^53 */
  inode: string;
  dev: string;
  links: number;
  size?: number;
  /** data blob IDs in order (files) */
  content?: string[];
  /** tree blob ID (directories) */
  subtree?: string;
  /** symlink target, and its raw bytes in base64 when not valid UTF-8 */
  target?: string;
  targetRaw?: string;
  /** device number for char/block devices */
  rdev?: string;
}

export interface Tree {
  version: 1;
  nodes: TreeNode[];
}

export function rawName(node: Pick<TreeNode, 'name' | 'nameRaw'>): Buffer {
  return node.nameRaw !== undefined ? Buffer.from(node.nameRaw, 'base64') : Buffer.from(node.name, 'utf8');
}

export function encodeName(raw: Buffer): { name: string; nameRaw?: string } {
  const name = raw.toString('utf8');
  return Buffer.from(name, 'utf8').equals(raw) ? { name } : { name, nameRaw: raw.toString('base64') };
}

export function sortNodes(nodes: TreeNode[]): TreeNode[] {
  return nodes.sort((a, b) => Buffer.compare(rawName(a), rawName(b)));
}
