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
  // The writers add tens of thousands of entries to one collection: the entry limit is lifted.
  const args = ['--max-entries', '1000000']
  let server = await startServer({ dataFile: data.file, args })
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

      server = await startServer({ dataFile: data.file, args })
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
    // (A deadline for a hang, not a timing assertion: with 50,000+ edits the uploads and the
    // final sync take seconds on a debug build, and one run of nine missed 20 s.)
    try {
      await waitFor(() => final.map('objectives').size === written, { timeout: 60000, what: `all ${written} edits on the server` })
    } catch (error) {
      const have = new Set(final.map('objectives').keys())
      const missing = writers.flatMap(w => [...w.doc.getMap('objectives').keys()].filter(key => !have.has(key)))
      const log = server.output().stderr.split('\n').filter(line => /WARN|ERROR/.test(line)).slice(-5).join('\n')
      throw new Error(`${error.message}: ${missing.length} missing, e.g. ${missing.slice(0, 5).join(', ')}; the server's last warnings:\n${log}`)
    }
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

test('a write failure during commit (the file may not grow): clients are told, nothing shown is lost, the server recovers when space returns', async () => {
  const { statSync } = await import('node:fs')
  const data = tempData()
  // The writer's resend after the outage is one message holding every unsaved edit: on a busy
  // machine dozens of 32 KiB edits go out before the refusal arrives, more than the default
  // 1 MiB message limit (which would close the resend with 4413: a limit, not this test's fault).
  const server = await startServer({ dataFile: data.file, args: ['--max-text-chars', '65536', '--max-message-bytes', String(32 * 1024 * 1024)] })
  const plan = await createPlan(server)
  const writer = client(server, plan.id, plan.seller)
  const observer = client(server, plan.id, plan.buyer)
  await Promise.all([synced(writer), synced(observer)])
  const closes = []
  writer.provider.on('connection-close', event => closes.push({ code: event?.code, reason: event?.reason }))
  const big = 'x'.repeat(32 * 1024)
  let written = 0
  const write = () => writer.map('objectives').set(`e${written++}`, new Y.Map([['text', big]]))
  for (let i = 0; i < 10; i++) write()
  await waitFor(() => observer.map('objectives').size === 10, { what: 'the first edits shown' })

  // From now on the data file may not grow: the process's file-size limit is set to its size
  // (soft limit only, so it can be raised again).
  const limit = statSync(data.file).size
  const prlimit = (value) => {
    const result = spawnSync('prlimit', ['--pid', String(server.proc.pid), `--fsize=${value}:`], { encoding: 'utf8' })
    assert.equal(result.status, 0, result.stderr)
  }
  prlimit(limit)
  let refused
  try {
    // Write until the server says it could not store (4500), at most a few hundred edits.
    while (!(refused = closes.find(c => c.code === 4500)) && written < 400) {
      write()
      await new Promise(resolve => setTimeout(resolve, 2))
    }
    assert.ok(refused, `a commit failed within ${written} edits of 32 KiB (file limit ${limit} bytes)`)
    assert.match(refused.reason, /storage failure: your last changes were not saved/)
    const shownDuringOutage = [...observer.map('objectives').keys()]
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200, 'the server is up')
    // Space returns.
    prlimit('unlimited')
    // The writer reconnects by itself and resends what was not saved; the observer gets all.
    await waitFor(() => observer.map('objectives').size === written, { timeout: 30000, what: `all ${written} edits stored after recovery` })
    const fresh = client(server, plan.id, plan.buyer)
    await synced(fresh)
    await waitFor(() => fresh.map('objectives').size === written, { what: 'a newcomer to get everything' })
    for (const key of shownDuringOutage) assert.ok(fresh.map('objectives').has(key), `${key} was shown, then lost`)
    destroy(fresh)
  } finally {
    prlimit('unlimited')
    destroy(writer, observer)
  }
  assert.equal((await server.stop()).code, 0)
  const verify = spawnSync(binary, ['verify', '--data', data.file], { encoding: 'utf8' })
  assert.equal(verify.status, 0, verify.stdout + verify.stderr)
  console.log(`write failure: refused after ${written} edits with the file held at ${limit} bytes; all ${written} stored after recovery`)
  data.cleanup()
})
