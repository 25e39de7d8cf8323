/**
 * `npm run playground`: build the playground (unless --no-build) and serve playground/dist on
 * localhost with a tiny static server (node:http); prints the URL. `--port N` (default 8080, 0 = any
 * free port).
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.bin': 'application/octet-stream',
  '.gz': 'application/gzip',
  '.map': 'application/json',
};

/** Serve `dir` on 127.0.0.1:`port` (0: any free port). */
export async function servePlayground(dir: string, port = 8080): Promise<{ url: string; server: Server }> {
  const rootDir = resolve(dir);
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
    let file = normalize(join(rootDir, path));
    if (file !== rootDir && !file.startsWith(rootDir + sep)) return void res.writeHead(403).end();
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
    if (!existsSync(file)) return void res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${path}`);
    res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'cache-control': 'no-cache',
      'content-length': statSync(file).size,
    });
    if (req.method === 'HEAD') return void res.end();
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(port, '127.0.0.1', () => ok());
  });
  return { url: `http://localhost:${(server.address() as { port: number }).port}/`, server };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const p = args.indexOf('--port');
  const port = p >= 0 ? Number(args[p + 1]) : Number(process.env.PORT ?? 8080);
  const dist = join(dirname(), '..', 'playground', 'dist');
  if (!args.includes('--no-build')) {
    const tf = await import('@tensorflow/tfjs');
    await tf.setBackend('cpu');
    const { buildPlayground } = await import('./build-playground.js');
    await buildPlayground(dist);
  }
  const { url } = await servePlayground(dist, port);
  console.log(`diffguide playground: ${url}  (Ctrl-C stops)`);
}

function dirname(): string {
  return fileURLToPath(new URL('.', import.meta.url));
}
