/** Bounds the bytes held in flight; a request larger than the whole budget runs alone. */
export class ByteBudget {
  private used = 0;
  private readonly waiters: { bytes: number; resolve: () => void }[] = [];

  private readonly limit: number;

  constructor(limit: number) {
    this.limit = limit;
  }

  async acquire(bytes: number): Promise<void> {
    if (this.used === 0 || (this.waiters.length === 0 && this.used + bytes <= this.limit)) {
      this.used += bytes;
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push({ bytes, resolve }));
  }

  release(bytes: number): void {
    this.used -= bytes;
    while (this.waiters.length > 0) {
      const next = this.waiters[0]!;
      if (this.used !== 0 && this.used + next.bytes > this.limit) break;
      this.waiters.shift();
      this.used += next.bytes;
      next.resolve();
    }
  }
}
