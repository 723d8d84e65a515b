import { FastCdc } from '../libs/engine/src/chunker/fastcdc.ts';
import { randomBytes, createHmac } from 'node:crypto';
const c = new FastCdc(randomBytes(32));
const buf = randomBytes(256 * 1024 * 1024);
let t = performance.now();
const l = c.chunkLengths(buf);
let dt = performance.now() - t;
console.log('chunks', l.length, 'avg', (buf.length / l.length / 1024).toFixed(0), 'KiB', (buf.length / 1e6 / (dt / 1000)).toFixed(0), 'MB/s');
const key = randomBytes(32);
t = performance.now(); let pos = 0; for (const n of l) { createHmac('sha256', key).update(buf.subarray(pos, pos + n)).digest(); pos += n; }
dt = performance.now() - t; console.log('hmac', (buf.length / 1e6 / (dt / 1000)).toFixed(0), 'MB/s');
const zlib = await import('node:zlib');
const txt = Buffer.from('2024-01-02T10:11:12.123Z INFO [abc-3] hello world id=1234 dur=12ms key=value\n'.repeat(13000));
for (const lvl of [1, 3]) { t = performance.now(); let out = 0; for (let i = 0; i < 100; i++) out += zlib.zstdCompressSync(txt, { params: { [zlib.constants.ZSTD_c_compressionLevel]: lvl } }).length; dt = performance.now() - t; console.log('zstd', lvl, (txt.length * 100 / 1e6 / (dt / 1000)).toFixed(0), 'MB/s', out / 100 / txt.length); }
const rnd = randomBytes(1 << 20); t = performance.now(); for (let i = 0; i < 100; i++) zlib.zstdCompressSync(rnd, { params: { [zlib.constants.ZSTD_c_compressionLevel]: 1 } }); dt = performance.now() - t; console.log('zstd random', (100 * 1.048 / (dt / 1000)).toFixed(0), 'MB/s');
