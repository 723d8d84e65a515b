/**
 * The daemon's structured log: one JSON object per line on stderr (journald and log shippers take
 * it as it is). Secrets registered with `addSecret` (job tokens) are replaced before writing.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface LogSink {
  write(line: string): unknown;
}

export class JsonLog {
  private readonly sink: LogSink;
  private readonly min: number;
  private readonly secrets = new Set<string>();

  constructor(sink: LogSink, level: LogLevel = 'info') {
    this.sink = sink;
    this.min = ORDER[level];
  }

  addSecret(secret: string): void {
    if (secret.length >= 8) this.secrets.add(secret);
  }

  removeSecret(secret: string): void {
    this.secrets.delete(secret);
  }

  debug(msg: string, fields: Record<string, unknown> = {}): void {
    this.write('debug', msg, fields);
  }
  info(msg: string, fields: Record<string, unknown> = {}): void {
    this.write('info', msg, fields);
  }
  warn(msg: string, fields: Record<string, unknown> = {}): void {
    this.write('warn', msg, fields);
  }
  error(msg: string, fields: Record<string, unknown> = {}): void {
    this.write('error', msg, fields);
  }

  private write(level: LogLevel, msg: string, fields: Record<string, unknown>): void {
    if (ORDER[level] < this.min) return;
    let line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields });
    for (const s of this.secrets) line = line.split(s).join('[redacted]');
    this.sink.write(`${line}\n`);
  }
}
