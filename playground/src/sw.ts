/**
 * The playground's service worker: precaches the page, code, wasm files, BPE merges and examples of
 * this build (the list is injected by scripts/build-playground.ts), and answers from the network when
 * it can, else from that cache, so the page loads offline. The weights are not cached here: the
 * worker keeps them in IndexedDB through tf.io (`indexeddb://`).
 */
declare const __BUILD__: { id: string; files: string[] };
const sw = self as unknown as ServiceWorkerGlobalScope;
const CACHE = `diffguide-playground-${__BUILD__.id}`;

sw.addEventListener('install', (e) => {
  e.waitUntil(
    caches
      .open(CACHE)
      .then((c) => c.addAll(__BUILD__.files))
      .then(() => sw.skipWaiting()),
  );
});

sw.addEventListener('activate', (e) => {
  e.waitUntil(
    caches
      .keys()
      .then((keys) =>
        Promise.all(
          keys.filter((k) => k.startsWith('diffguide-playground-') && k !== CACHE).map((k) => caches.delete(k)),
        ),
      )
      .then(() => sw.clients.claim()),
  );
});

sw.addEventListener('fetch', (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== 'GET' || url.origin !== location.origin) return;
  if (/\/weights\/[^/]+\//.test(url.pathname)) return; // IndexedDB holds the weights
  e.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      try {
        const res = await fetch(e.request);
        if (res.ok) await cache.put(e.request, res.clone());
        return res;
      } catch (err) {
        const hit = await cache.match(e.request, { ignoreSearch: true });
        if (hit) return hit;
        throw err;
      }
    })(),
  );
});
