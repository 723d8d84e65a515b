import type { LogLevel } from '../config/key-proxy-config.ts';
import { bufferedStdout } from './buffered-line-sink.ts';

/**
 * A tiny structured logger: one JSON object per line, `{"time","level","msg",...fields}`.
 * Callers pass only non-secret fields (IDs, codes, counts): tokens, proofs, envelope ciphertext and
 * keys are never given to it. Fields named like secrets (token, proof, envelope, key...) are dropped as a second line of defence.
 */
export type LogFields = Record<string, unknown>;

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SECRET_FIELDS = new Set([
  'token', 'proof', 'authorization', 'dpop', 'envelope', 'ct', 'key', 'masterkey', 'mk', 'mackey', 'chunkerkey', 'datakey',
  'secret', 'password', 'pin',
]);

export interface LogSink {
  /** `urgent`: write now (warnings, errors, the start-up line), not with the next batch */
  write(line: string, urgent?: boolean): unknown;
}

export class JsonLogger {
  readonly level: LogLevel;
  private readonly threshold: number;
  private readonly sink: LogSink;
  private readonly base: LogFields;

  constructor(options: { level?: LogLevel; sink?: LogSink; base?: LogFields } = {}) {
    this.level = options.level ?? 'info';
    this.threshold = ORDER[this.level];
    this.sink = options.sink ?? bufferedStdout();
    this.base = options.base ?? {};
  }

  child(fields: LogFields): JsonLogger {
    return new JsonLogger({ level: this.level, sink: this.sink, base: { ...this.base, ...fields } });
  }

  enabled(level: LogLevel): boolean {
    return ORDER[level] >= this.threshold;
  }

  debug(msg: string, fields?: LogFields): void {
    this.log('debug', msg, fields);
  }

  info(msg: string, fields?: LogFields): void {
    this.log('info', msg, fields);
  }

  warn(msg: string, fields?: LogFields): void {
    this.log('warn', msg, fields);
  }

  error(msg: string, fields?: LogFields): void {
    this.log('error', msg, fields);
  }

  log(level: LogLevel, msg: string, fields?: LogFields): void {
    if (ORDER[level] < this.threshold) return;
    const record: LogFields = { time: new Date().toISOString(), level, msg };
    for (const source of [this.base, fields]) {
      if (!source) continue;
      for (const [name, value] of Object.entries(source)) {
        if (value === undefined || SECRET_FIELDS.has(name.toLowerCase())) continue;
        record[name] = value instanceof Error ? describeError(value) : value;
      }
    }
    this.sink.write(`${JSON.stringify(record)}\n`, ORDER[level] >= ORDER.warn || msg === 'listening');
  }
}

/** An error as a log field: its class and message (messages never carry secrets), no stack. */
export function describeError(err: unknown): { name: string; message: string; code?: string } {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return { name: err.name, message: err.message, ...(typeof code === 'string' ? { code } : {}) };
  }
  return { name: 'Error', message: String(err) };
}

/** A logger that drops everything (tests, CLI commands that print their own output). */
export const silentLogger = new JsonLogger({ level: 'error', sink: { write: () => undefined } });
