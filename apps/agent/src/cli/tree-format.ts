import type { TreeNode } from '@arca/engine';
import { dateFromNs, formatBytes, formatMode, formatTime } from './format.ts';

/** Display path of a tree entry: directories end with `/`. */
export function displayPath(p: string, node: TreeNode): string {
  return node.type === 'dir' && p !== '/' ? `${p}/` : p;
}

/** `ls -l` style line: mode, owner, group, size, mtime, path (-> target). */
export function longLine(p: string, node: TreeNode): string {
  const owner = (node.user ?? String(node.uid)).padEnd(8);
  const group = (node.group ?? String(node.gid)).padEnd(8);
  const size = (node.type === 'file' ? formatBytes(node.size ?? 0) : '').padStart(10);
  const target = node.type === 'symlink' ? ` -> ${node.target ?? ''}` : '';
  return `${formatMode(node.type, node.mode)}  ${owner} ${group} ${size}  ${formatTime(dateFromNs(node.mtimeNs))}  ${displayPath(p, node)}${target}`;
}

/** The JSON form of a tree entry (ls, find, diff). */
export function nodeJson(p: string, node: TreeNode): Record<string, unknown> {
  return {
    path: p,
    name: node.name,
    type: node.type,
    mode: node.mode,
    permissions: formatMode(node.type, node.mode),
    ...(node.type === 'file' ? { size: node.size ?? 0 } : {}),
    uid: node.uid,
    gid: node.gid,
    ...(node.user !== undefined ? { user: node.user } : {}),
    ...(node.group !== undefined ? { group: node.group } : {}),
    mtime: dateFromNs(node.mtimeNs).toISOString(),
    ...(node.type === 'symlink' ? { target: node.target ?? '' } : {}),
    ...(node.links > 1 ? { links: node.links } : {}),
  };
}
