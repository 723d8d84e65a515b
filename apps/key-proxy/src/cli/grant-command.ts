import type { JobOperation } from '@arca/crypto';
import type { Command } from 'commander';
import { AuditStore } from '../audit/audit-store.ts';
import { GrantStore, type Grant } from '../grants/grant-store.ts';
import { openStateDatabase } from '../state/state-database.ts';
import { CliFailure, type CliIo } from './cli-io.ts';
import { addDataDirOption, dataDirOf, operations, orgId, storeId, thumbprint } from './cli-options.ts';
import { examples } from './help.ts';

/**
 * `arca-key-proxy grant approve|revoke|list`: the key custodian's strict-mode grants, written
 * straight into the proxy's state directory on the proxy's host (no network API: a compromised
 * control plane cannot approve itself). A running proxy sees a change on its next request; each
 * change is also an audit event.
 */
const DEFAULT_OPS: JobOperation[] = ['init', 'backup', 'restore', 'check', 'prune'];

interface GrantTarget {
  org: string;
  store: string;
  agentKeyThumbprint: string;
}

export function registerGrantCommand(program: Command, io: CliIo): void {
  const grant = program
    .command('grant')
    .description('strict mode: approve or revoke an agent key for a store (run on the key proxy\'s host, as its user)');
  examples(grant, [
    'arca-key-proxy grant approve --org acme --store 3f2a...e9 --agent-key-thumbprint NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs',
    'arca-key-proxy grant list --store 3f2a...e9',
    'arca-key-proxy grant revoke --org acme --store 3f2a...e9 --agent-key-thumbprint NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs',
  ]);

  const target = (cmd: Command) =>
    addDataDirOption(
      cmd
        .requiredOption('--org <id>', 'organization ID', orgId)
        .requiredOption('--store <id>', 'store ID (64 hex)', storeId)
        .requiredOption('--agent-key-thumbprint <jkt>', 'the agent key\'s thumbprint (cnf.jkt; printed in GRANT_REQUIRED refusals)', thumbprint),
    );

  const approve = target(grant.command('approve').description('approve an agent key for a store (replaces an existing grant\'s operations and note)'))
    .option('--ops <list>', `operations allowed (default ${DEFAULT_OPS.join(',')}; add rewrap for a rotation job)`, operations)
    .option('--note <text>', 'why, who asked, ticket number...')
    .option('--json', 'print the grant as JSON')
    .action((opts: GrantTarget & { ops?: JobOperation[]; note?: string; json?: boolean }, cmd: Command) => {
      withState(dataDirOf(cmd, io), (grants, audit) => {
        const { grant: saved, replaced } = grants.approve({ ...opts, ops: opts.ops ?? DEFAULT_OPS, ...(opts.note !== undefined ? { note: opts.note } : {}) });
        audit.append([grantEvent('grant-approve', saved, saved.note)]);
        if (opts.json) io.stdout.write(`${JSON.stringify(saved)}\n`);
        else io.stdout.write(`${replaced ? 'updated' : 'approved'}: agent key ${saved.agentKeyThumbprint} for store ${saved.store} of ${saved.org} (${saved.ops.join(', ')})\n`);
      });
    });
  examples(approve, [
    'arca-key-proxy grant approve --org acme --store <store id> --agent-key-thumbprint <jkt>',
    'arca-key-proxy grant approve --org acme --store <store id> --agent-key-thumbprint <jkt> --ops restore,check --note "DR test, ticket 4711"',
  ]);

  target(grant.command('revoke').description('revoke an agent key\'s grant for a store (takes effect on the proxy\'s next request)'))
    .option('--json', 'print the revoked grant as JSON')
    .action((opts: GrantTarget & { json?: boolean }, cmd: Command) => {
      withState(dataDirOf(cmd, io), (grants, audit) => {
        const removed = grants.revoke(opts.org, opts.store, opts.agentKeyThumbprint);
        if (!removed) throw new CliFailure(`no grant for agent key ${opts.agentKeyThumbprint} on store ${opts.store} of ${opts.org} (see: arca-key-proxy grant list)`);
        audit.append([grantEvent('grant-revoke', removed, undefined)]);
        if (opts.json) io.stdout.write(`${JSON.stringify(removed)}\n`);
        else io.stdout.write(`revoked: agent key ${removed.agentKeyThumbprint} for store ${removed.store} of ${removed.org}\n`);
      });
    });

  addDataDirOption(grant.command('list').description('list the grants'))
    .option('--org <id>', 'only this organization', orgId)
    .option('--store <id>', 'only this store', storeId)
    .option('--json', 'print a JSON array')
    .action((opts: { org?: string; store?: string; json?: boolean }, cmd: Command) => {
      withState(dataDirOf(cmd, io), (grants) => {
        const list = grants.list({ ...(opts.org !== undefined ? { org: opts.org } : {}), ...(opts.store !== undefined ? { store: opts.store } : {}) });
        if (opts.json) {
          io.stdout.write(`${JSON.stringify(list)}\n`);
          return;
        }
        if (list.length === 0) {
          io.stdout.write('no grants\n');
          return;
        }
        for (const g of list) {
          io.stdout.write(`${g.org}  ${g.store}  ${g.agentKeyThumbprint}  ${g.ops.join(',')}  ${g.updatedAt}${g.note ? `  ${g.note}` : ''}\n`);
        }
      });
    });
}

function withState(dataDir: string, fn: (grants: GrantStore, audit: AuditStore) => void): void {
  const db = openStateDatabase(dataDir);
  try {
    fn(new GrantStore(db), new AuditStore(db));
  } finally {
    db.close();
  }
}

function grantEvent(operation: 'grant-approve' | 'grant-revoke', grant: Grant, note: string | undefined) {
  return {
    time: new Date().toISOString(),
    org: grant.org,
    agent: null,
    store: grant.store,
    job: null,
    operation,
    purpose: null,
    blobKeys: 0,
    fileKeys: 0,
    outcome: 'success' as const,
    requestId: null,
    agentKeyThumbprint: grant.agentKeyThumbprint,
    grantOps: grant.ops,
    ...(note !== undefined ? { note } : {}),
  };
}
