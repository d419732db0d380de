// The service worker: keeps the page's own files so a plan opened once reloads offline (the
// plan itself is in IndexedDB). API calls and sync are never cached.

const worker = self as unknown as ServiceWorkerGlobalScope

// Both filled in by the build (vite.config.ts): every file of the build, and its fingerprint.
const PRECACHE = '__MAPLINE_PRECACHE__'.split(',').filter(path => path.startsWith('/'))
const CACHE = 'mapline-__MAPLINE_BUILD__'

worker.addEventListener('install', (event: ExtendableEvent) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE)
    await cache.addAll(PRECACHE)
    await worker.skipWaiting()
  })())
})

worker.addEventListener('activate', (event: ExtendableEvent) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name)
    await worker.clients.claim()
  })())
})

worker.addEventListener('fetch', (event: FetchEvent) => {
  const request = event.request
  const url = new URL(request.url)
  if (request.method !== 'GET' || url.origin !== location.origin) return
  if (url.pathname.startsWith('/api/') || url.pathname.startsWith('/sync/')) return
  if (request.mode === 'navigate') {
    // The network first (a new build shows at once); the kept page when offline.
    event.respondWith(fetch(request).catch(async () => (await caches.match('/')) ?? Response.error()))
    return
  }
  event.respondWith((async () => (await caches.match(request)) ?? fetch(request))())
})
