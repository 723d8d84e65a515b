import type { JobOperation } from '@arca/crypto';

/**
 * What each job operation allows (docs/key-proxy.md §2): the table is the single source of truth
 * for the HTTP routes and for grants.
 */
export type KeyAction = 'create-master-key' | 'agent-keys' | 'read-keys' | 'write-keys' | 'rewrap';

const DATA_OPERATIONS: readonly JobOperation[] = ['init', 'backup', 'prune', 'restore', 'check'];

export const OPERATIONS_ALLOWING: Readonly<Record<KeyAction, readonly JobOperation[]>> = {
  'create-master-key': ['init'],
  'agent-keys': DATA_OPERATIONS,
  'read-keys': DATA_OPERATIONS,
  'write-keys': ['init', 'backup', 'prune'],
  rewrap: ['rewrap'],
};

export const ACTION_DESCRIPTIONS: Readonly<Record<KeyAction, string>> = {
  'create-master-key': 'creating a master key',
  'agent-keys': 'agent keys',
  'read-keys': 'read keys',
  'write-keys': 'write keys',
  rewrap: 'rewrapping an envelope',
};

export function operationsPermitting(ops: readonly JobOperation[], action: KeyAction): JobOperation[] {
  const allowing = OPERATIONS_ALLOWING[action];
  return ops.filter((op) => allowing.includes(op));
}
