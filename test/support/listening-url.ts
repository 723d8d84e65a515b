import type { ChildProcess } from 'node:child_process';

/**
 * Resolves with the URL a service of ours logs when it listens (a JSON log line with the message
 * `listening` and `"url":"http://127.0.0.1:PORT"`), or rejects with its stderr when it exits first
 * or does not listen within `timeoutMs`. The child must have been spawned with piped stdout and
 * stderr; stdout keeps flowing afterwards so that the service never blocks on a full pipe.
 */
export function waitForListeningUrl(child: ChildProcess, what: string, timeoutMs = 20_000): Promise<string> {
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise<string>((resolve, reject) => {
    let buffered = '';
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    const timer = setTimeout(() => settle(() => reject(new Error(`${what} did not start in ${timeoutMs / 1000} s: ${stderr}`))), timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      if (settled) return;
      buffered += d.toString();
      for (const line of buffered.split('\n')) {
        const m = line.includes('"listening"') ? /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(line) : null;
        if (m) settle(() => resolve(m[1]!));
      }
    });
    child.once('exit', (code) => settle(() => reject(new Error(`${what} exited (${code}) before listening: ${stderr}`))));
  });
}
