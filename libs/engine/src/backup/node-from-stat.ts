import type { BigIntStats } from 'node:fs';
import { constants } from 'node:fs';
import { encodeName, type NodeType, type TreeNode } from '../snapshot/tree.ts';
import type { UserNames } from './user-names.ts';

export function nodeType(st: BigIntStats): NodeType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'chardev';
  return 'blockdev';
}

export function nodeFromStat(rawName: Buffer, st: BigIntStats, names: UserNames): TreeNode {
  const uid = Number(st.uid);
  const gid = Number(st.gid);
  const type = nodeType(st);
  const node: TreeNode = {
    ...encodeName(rawName),
    type,
    mode: Number(st.mode) & 0o7777,
    uid,
    gid,
    mtimeNs: st.mtimeNs.toString(),
    ctimeNs: st.ctimeNs.toString(),
    inode: st.ino.toString(),
    dev: st.dev.toString(),
    links: Number(st.nlink),
  };
  const user = names.user(uid);
  const group = names.group(gid);
  if (user) node.user = user;
  if (group) node.group = group;
  if (type === 'file') node.size = Number(st.size);
  if (type === 'chardev' || type === 'blockdev') node.rdev = st.rdev.toString();
  return node;
}

export const S_IFMT = constants.S_IFMT;
