// Faults: the server is killed (-9) at random moments while several clients write, fifty times
// over. After every crash, everything any client was shown is still there; at the end, the data
// file verifies (log, hash chains, derived history, snapshots) and the history rebuilds equal.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import {
  binary, startServer, tempData, createPlan, mintShare, client, synced, destroy, waitFor, Y
} from './lib/harness.js'

const ROUNDS = Number(process.env.MAPLINE_CRASH_ROUNDS || 50)

function keys (c) {
  return [...c.map('objectives').keys()]
}

test(`${ROUNDS} kill -9 at random moments with three writers lose nothing anyone was shown`, async () => {
  const data = tempData()
  let server = await startServer({ dataFile: data.file })
  const plan = await createPlan(server)
  const tokens = [plan.buyer, plan.seller, await mintShare(server, plan.id, { side: 'seller', role: 'editor', label: 'SE' })]
  const observerToken = await mintShare(server, plan.id, { role: 'viewer', label: 'Observer' })
  const writers = tokens.map(token => ({ token, doc: new Y.Doc(), c: null, written: 0 }))
  let observer = null
  let checked = 0
  let written = 0
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const w of writers) w.c = client(server, plan.id, w.token, { doc: w.doc })
      observer = client(server, plan.id, observerToken, { doc: observer?.doc ?? new Y.Doc() })
      await Promise.all([...writers.map(w => synced(w.c)), synced(observer)])
      // Everyone writes until a random moment, then the server dies mid-stream.
      const stopAt = Date.now() + 5 + Math.floor(Math.random() * 60)
      while (Date.now() < stopAt) {
        for (const [i, w] of writers.entries()) {
          const entry = new Y.Map([['text', `writer ${i} edit ${w.written}`], ['order', String(w.written).padStart(6, '0')]])
          w.c.map('objectives').set(`w${i}-${w.written++}`, entry)
          written++
        }
        await new Promise(resolve => setImmediate(resolve))
      }
      await server.kill9()
      // The observer never writes: everything in its document was sent to it by the server.
      const shown = keys(observer)
      destroy(observer, ...writers.map(w => w.c))

      server = await startServer({ dataFile: data.file })
      // Before any writer reconnects (and could upload again what a crash lost), a newcomer
      // must already get everything that was shown.
      const check = client(server, plan.id, observerToken)
      await synced(check)
      const stored = new Set(keys(check))
      const lost = shown.filter(key => !stored.has(key))
      assert.deepEqual(lost, [], `round ${round}: shown before the crash, gone after it`)
      checked += shown.length
      destroy(check)
    }
    // The writers reconnect and upload what the crashes cut off; then everything they wrote is
    // on the server.
    for (const w of writers) w.c = client(server, plan.id, w.token, { doc: w.doc })
    await Promise.all(writers.map(w => synced(w.c)))
    const final = client(server, plan.id, observerToken)
    await synced(final)
    await waitFor(() => final.map('objectives').size === written, { timeout: 20000, what: `all ${written} edits on the server` })
    destroy(final, ...writers.map(w => w.c))
    assert.equal((await server.stop()).code, 0)
  } finally {
    if (server.proc.exitCode === null && server.proc.signalCode === null) await server.kill9()
  }

  const verify = spawnSync(binary, ['verify', '--data', data.file], { encoding: 'utf8' })
  assert.equal(verify.status, 0, verify.stdout + verify.stderr)
  assert.match(verify.stderr, /no problem found/)
  const rebuild = spawnSync(binary, ['rebuild-history', '--data', data.file, '--check'], { encoding: 'utf8' })
  assert.equal(rebuild.status, 0, rebuild.stdout + rebuild.stderr)
  assert.ok(checked > 0 && written > ROUNDS, `the rounds wrote (${written}) and checked (${checked}) something`)
  console.log(`crash loop: ${ROUNDS} kills, ${written} edits written, ${checked} shown-before-crash checks, 0 lost`)
  data.cleanup()
})
