import type { Command } from 'commander';
import { AuditStore } from '../audit/audit-store.ts';
import type { StoredAuditEvent } from '../audit/audit-event.ts';
import { openStateDatabase } from '../state/state-database.ts';
import { CliFailure, type CliIo } from './cli-io.ts';
import { addDataDirOption, dataDirOf, positiveInteger } from './cli-options.ts';

/** `arca-key-proxy audit verify|tail`: the proxy's local, hash-chained audit log. */
export function registerAuditCommand(program: Command, io: CliIo): void {
  const audit = program.command('audit').description('the local audit log (every issuance and refusal, every grant change)');

  addDataDirOption(audit.command('verify').description('recompute the hash chain; exit 1 if an event was altered, removed or reordered'))
    .option('--json', 'print { events, ok, brokenAt?, lastHash } as JSON')
    .action((opts: { json?: boolean }, cmd: Command) => {
      const result = withAudit(dataDirOf(cmd, io), (store) => store.verify());
      if (opts.json) io.stdout.write(`${JSON.stringify(result)}\n`);
      else if (result.ok) io.stdout.write(`audit log intact: ${result.events} events, last hash ${result.lastHash}\n`);
      if (!result.ok) throw new CliFailure(`the audit log chain is broken at event ${result.brokenAt}: an event was altered, removed or reordered`);
    });

  addDataDirOption(audit.command('tail').description('print the last events'))
    .option('-n, --count <n>', 'how many (default 20)', positiveInteger)
    .option('--json', 'JSON Lines, one event per line')
    .action((opts: { count?: number; json?: boolean }, cmd: Command) => {
      const events = withAudit(dataDirOf(cmd, io), (store) => store.tail(opts.count ?? 20));
      for (const e of events) io.stdout.write(opts.json ? `${JSON.stringify(e)}\n` : `${describe(e)}\n`);
    });
}

function withAudit<T>(dataDir: string, fn: (store: AuditStore) => T): T {
  const db = openStateDatabase(dataDir);
  try {
    return fn(new AuditStore(db));
  } finally {
    db.close();
  }
}

function describe(e: StoredAuditEvent): string {
  const counts = e.operation === 'keys' ? ` ${e.purpose} blob=${e.blobKeys} file=${e.fileKeys}` : '';
  const outcome = e.outcome === 'refused' ? `REFUSED ${e.code ?? ''}` : 'ok';
  return `${e.seq}  ${e.time}  ${e.operation}${counts}  ${outcome}  org=${e.org ?? '-'} store=${e.store ?? '-'} agent=${e.agent ?? '-'} job=${e.job ?? '-'}`;
}
