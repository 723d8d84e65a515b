import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BufferedLineSink } from '../src/logging/buffered-line-sink.ts';

describe('buffered log sink', () => {
  let dir: string;
  let file: string;
  let fd: number;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'arca-sink-'));
    file = path.join(dir, 'log');
    fd = openSync(file, 'a');
  });
  afterEach(() => {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes lines together after the flush interval, in order', async () => {
    const sink = new BufferedLineSink({ fd, flushMs: 30 });
    sink.write('a\n');
    sink.write('b\n');
    expect(readFileSync(file, 'utf8')).toBe('');
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(readFileSync(file, 'utf8')).toBe('a\nb\n');
  });

  it('writes at once for urgent lines and when the buffer is full', () => {
    const sink = new BufferedLineSink({ fd, flushMs: 60_000, maxBytes: 10 });
    sink.write('info\n');
    sink.write('error\n', true);
    expect(readFileSync(file, 'utf8')).toBe('info\nerror\n');
    sink.write('0123456789\n');
    expect(readFileSync(file, 'utf8')).toBe('info\nerror\n0123456789\n');
  });
});
