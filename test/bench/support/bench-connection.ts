import { connect, type Socket } from 'node:net';

export interface BenchResponse {
  status: number;
  text: string;
}

/**
 * One keep-alive HTTP/1.1 connection, one request at a time: the request goes out as one
 * pre-built buffer, the response is framed by its content-length (the control plane always sends
 * one). Enough for a load generator (like autocannon, it costs the machine little); not a general
 * client.
 */
export class BenchConnection {
  private readonly socket: Socket;
  private buffered: Buffer | null = null;
  private waiting: { resolve: (r: BenchResponse) => void; reject: (err: Error) => void } | null = null;
  private failed: Error | null = null;

  constructor(url: URL) {
    this.socket = connect(Number(url.port), url.hostname);
    this.socket.setNoDelay(true);
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (err) => this.fail(err));
    this.socket.on('close', () => this.fail(new Error('the server closed the connection')));
  }

  get busy(): boolean {
    return this.waiting != null;
  }

  request(bytes: Buffer): Promise<BenchResponse> {
    if (this.failed != null) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.socket.write(bytes);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    const data = this.buffered == null ? chunk : Buffer.concat([this.buffered, chunk]);
    const headerEnd = data.indexOf('\r\n\r\n');
    if (headerEnd < 0) {
      this.buffered = data;
      return;
    }
    const head = data.toString('latin1', 0, headerEnd);
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (length == null) return this.fail(new Error(`response without content-length: ${head.slice(0, 200)}`));
    const end = headerEnd + 4 + Number(length[1]);
    if (data.length < end) {
      this.buffered = data;
      return;
    }
    this.buffered = data.length > end ? data.subarray(end) : null;
    const waiting = this.waiting;
    this.waiting = null;
    waiting?.resolve({ status: Number(head.slice(9, 12)), text: data.toString('utf8', headerEnd + 4, end) });
  }

  private fail(err: Error): void {
    this.failed ??= err;
    const waiting = this.waiting;
    this.waiting = null;
    waiting?.reject(err);
  }
}

/** A POST request with a JSON body and the given headers, ready to write. */
export function postRequest(url: URL, headers: Record<string, string>, body: string): Buffer {
  const payload = Buffer.from(body);
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  return Buffer.concat([
    Buffer.from(`POST ${url.pathname} HTTP/1.1\r\nhost: ${url.host}\r\n${lines}content-type: application/json\r\ncontent-length: ${payload.length}\r\n\r\n`, 'latin1'),
    payload,
  ]);
}
