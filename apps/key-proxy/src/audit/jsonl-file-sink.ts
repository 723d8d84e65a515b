import { open } from 'node:fs/promises';
import path from 'node:path';
import type { StoredAuditEvent } from './audit-event.ts';
import type { AuditSink } from './audit-log.ts';

/**
 * Appends audit events to a JSON Lines file (ARCA_KP_AUDIT_FILE), one event per line, created
 * mode 0600. Delivery is at least once: after a crash between the write and the cursor update the
 * last batch can appear twice (`seq` identifies duplicates).
 */
export class JsonlFileSink implements AuditSink {
  readonly name: string;
  private readonly file: string;

  constructor(file: string) {
    this.file = path.resolve(file);
    this.name = `file:${this.file}`;
  }

  async deliver(events: readonly StoredAuditEvent[]): Promise<void> {
    const handle = await open(this.file, 'a', 0o600);
    try {
      await handle.appendFile(events.map((e) => `${JSON.stringify(e)}\n`).join(''));
      await handle.datasync();
    } finally {
      await handle.close();
    }
  }
}
