// Builds the plan page into web/dist, which `mapline serve` serves at `/`.
//
// The service worker (src/sw.ts) is built as its own entry at `/sw.js` and given the list of
// every file of the build, so a plan page opened once can be reloaded offline.
import { defineConfig, type Plugin } from 'vite'

function precacheList (): Plugin {
  return {
    name: 'mapline-precache-list',
    apply: 'build',
    generateBundle (_options, bundle) {
      const files = Object.keys(bundle).filter(name => name !== 'sw.js').map(name => '/' + name)
      const worker = bundle['sw.js']
      if (worker === undefined || worker.type !== 'chunk') throw new Error('the service worker entry is missing')
      const version = files.filter(f => f.startsWith('/assets/')).sort().join(',')
      if (!worker.code.includes('__MAPLINE_PRECACHE__') || !worker.code.includes('__MAPLINE_BUILD__')) {
        throw new Error('the service worker lost its placeholders')
      }
      worker.code = worker.code
        .replace('__MAPLINE_PRECACHE__', ['/', ...files.filter(f => f !== '/index.html')].join(','))
        .replace('__MAPLINE_BUILD__', String(hash(version)))
    }
  }
}

function hash (text: string): number {
  let h = 5381
  for (let i = 0; i < text.length; i++) h = ((h * 33) ^ text.charCodeAt(i)) >>> 0
  return h
}

export default defineConfig({
  build: {
    target: 'es2022',
    rollupOptions: {
      input: { index: 'index.html', sw: 'src/sw.ts' },
      output: {
        entryFileNames: chunk => chunk.name === 'sw' ? 'sw.js' : 'assets/[name]-[hash].js'
      }
    }
  },
  plugins: [precacheList()],
  server: {
    // `npm run dev` against a server started with ./scripts/run.sh.
    proxy: {
      '/api': 'http://127.0.0.1:8080',
      '/sync': { target: 'ws://127.0.0.1:8080', ws: true }
    }
  }
})
