import path from 'node:path';
import { JOB_OPERATIONS, type JobOperation } from '@arca/crypto';
import type { Command } from 'commander';
import { STORE_ID_PATTERN, THUMBPRINT_PATTERN } from '../grants/grant-store.ts';
import { UsageError, type CliIo } from './cli-io.ts';

/** Option parsers and shared options of the custodian's commands. */
export function addDataDirOption(command: Command): Command {
  return command.option('--data-dir <dir>', 'the proxy\'s state directory (default: $ARCA_KP_DATA_DIR)');
}

export function dataDirOf(command: Command, io: CliIo): string {
  const given = command.opts<{ dataDir?: string }>().dataDir ?? io.env.ARCA_KP_DATA_DIR;
  if (given === undefined || given.trim() === '') {
    throw new UsageError('no state directory: pass --data-dir DIR or set ARCA_KP_DATA_DIR (the same as the running proxy\'s)');
  }
  return path.resolve(given);
}

export function storeId(value: string): string {
  if (!STORE_ID_PATTERN.test(value)) throw new UsageError(`--store must be a store ID (64 lowercase hex characters), got "${value.slice(0, 80)}"`);
  return value;
}

export function thumbprint(value: string): string {
  if (!THUMBPRINT_PATTERN.test(value)) {
    throw new UsageError('--agent-key-thumbprint must be the agent key\'s RFC 7638 thumbprint (43 base64url characters, as printed in a GRANT_REQUIRED refusal or by the agent)');
  }
  return value;
}

export function orgId(value: string): string {
  if (value.length === 0 || value.length > 256 || value.includes('\0')) throw new UsageError('--org must be an organization ID of 1-256 characters');
  return value;
}

export function operations(value: string): JobOperation[] {
  const ops = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const unknown = ops.filter((op) => !(JOB_OPERATIONS as readonly string[]).includes(op));
  if (ops.length === 0 || unknown.length > 0) {
    throw new UsageError(`--ops must be a comma-separated list of ${JOB_OPERATIONS.join(', ')}${unknown.length > 0 ? ` (unknown: ${unknown.join(', ')})` : ''}`);
  }
  return [...new Set(ops)] as JobOperation[];
}

export function positiveInteger(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new UsageError(`expected a positive integer, got "${value}"`);
  return Number(value);
}
