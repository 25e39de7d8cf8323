/**
 * A throwaway local `redis-server` (Debian's redis-server package) on a free loopback port, with no
 * persistence (`--save '' --appendonly no`): for the queue tests, `diffguide bench grid` and a
 * one-machine trial of the queue. Not for production queues (run a real Redis there).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';

/** Path of redis-server (PATH, then /usr/bin, /usr/sbin), or null when it is not installed. */
export function findRedisServer(): string | null {
  const r = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  for (const p of ['/usr/bin/redis-server', '/usr/sbin/redis-server', '/usr/local/bin/redis-server'])
    if (existsSync(p)) return p;
  return null;
}

/** A free TCP port on 127.0.0.1 (asked of the kernel; closed again before returning). */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => res(port));
    });
  });
}

export interface LocalRedis {
  url: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** Start redis-server on 127.0.0.1 at a free port; resolves once it accepts connections. */
export async function startLocalRedis(opts: { bin?: string; timeoutMs?: number } = {}): Promise<LocalRedis> {
  const bin = opts.bin ?? findRedisServer();
  if (!bin) throw new Error('redis-server not found; install it (Debian/Ubuntu: apt-get install -y redis-server)');
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const proc = spawn(
      bin,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    const ready = await new Promise<boolean>((res) => {
      const timer = setTimeout(() => res(false), opts.timeoutMs ?? 10000);
      const onData = (d: Buffer) => {
        out += d.toString();
        if (/Ready to accept connections/i.test(out)) {
          clearTimeout(timer);
          res(true);
        }
      };
      proc.stdout!.on('data', onData);
      proc.stderr!.on('data', onData);
      proc.once('exit', () => {
        clearTimeout(timer);
        res(false);
      });
    });
    if (ready) {
      proc.stdout!.resume();
      proc.stderr!.resume();
      const stop = () =>
        new Promise<void>((res) => {
          if (proc.exitCode !== null || proc.signalCode !== null) return res();
          proc.once('exit', () => res());
          proc.kill('SIGTERM');
        });
      return { url: `redis://127.0.0.1:${port}`, port, process: proc, stop };
    }
    proc.kill('SIGKILL');
    if (attempt >= 2)
      throw new Error(
        `redis-server did not start on 127.0.0.1:${port}:\n${out.trim().split('\n').slice(-5).join('\n')}`,
      );
  }
}
