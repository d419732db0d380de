// Durability: what any client was shown survives a restart and a kill -9.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  startServer, tempData, createPlan, mintShare, client, synced, destroy, waitFor, metric, rawSocket, api, Y
} from './lib/harness.js'

test('edits survive a restart: stop, start, a new client gets everything', async () => {
  const data = tempData()
  let server = await startServer({ dataFile: data.file })
  const plan = await createPlan(server)
  const viewerToken = await mintShare(server, plan.id, { role: 'viewer' })
  const a = client(server, plan.id, plan.seller)
  const viewer = client(server, plan.id, viewerToken)
  await Promise.all([synced(a), synced(viewer)])
  // More updates than one snapshot interval, so the reload goes through snapshot + tail.
  for (let i = 0; i < 600; i++) a.map('milestones').set(`m-${i}`, new Y.Map([['title', `Milestone ${i}`]]))
  a.map('meta').set('goLiveReason', 'Board commitment')
  viewer.map('meta').set('goLiveReason', 'viewer was here')
  await waitFor(() => viewer.map('milestones').size === 600, { what: 'all 600 at the viewer' })
  const closes = []
  a.provider.on('connection-close', event => closes.push(event?.code))
  destroy(viewer)
  const exit = await server.stop()
  assert.equal(exit.code, 0, 'clean exit on SIGTERM')
  await waitFor(() => closes.length > 0, { what: 'the close frame' })
  assert.equal(closes[0], 1001, 'clients are told the server is going away')
  destroy(a)

  server = await startServer({ dataFile: data.file })
  const b = client(server, plan.id, plan.buyer)
  await synced(b)
  await waitFor(() => b.map('milestones').size === 600, { what: 'all 600 after restart' })
  assert.equal(b.map('milestones').get('m-599').get('title'), 'Milestone 599')
  assert.equal(b.map('meta').get('goLiveReason'), 'Board commitment', 'the refused viewer edit was not stored')
  destroy(b)
  await server.stop()
  data.cleanup()
})

// A cold-loaded room serves its document first and builds its admission index and history
// tracker after (issue 14): the first edits after a restart must be admitted, derived and
// chained exactly as if the room had never left memory.
test('after a restart, the first edits of a plan derive history from the stored state', async () => {
  const data = tempData()
  let server = await startServer({ dataFile: data.file })
  const plan = await createPlan(server, { template: 'enterprise' })
  const a = client(server, plan.id, plan.seller)
  await synced(a)
  const step = () => a.map('milestones').get('ms-training')
  // Past a snapshot interval, so the reload starts from a snapshot.
  for (let i = 0; i < 300; i++) a.doc.transact(() => step().set('due', `2027-03-${String(1 + (i % 19)).padStart(2, '0')}`))
  a.doc.transact(() => { step().set('due', '2027-03-20'); step().set('slipReason', 'Before the restart') })
  let before
  await waitFor(async () => {
    before = (await api(server, 'GET', `/api/plans/${plan.id}/history?limit=1`)).body.entries?.[0]
    return before?.changes.some(c => c.new === '2027-03-20')
  }, { what: 'the last edit before the restart in history' })
  destroy(a)
  await server.stop()

  server = await startServer({ dataFile: data.file })
  const b = client(server, plan.id, plan.buyer)
  await synced(b)
  const moved = () => b.map('milestones').get('ms-training')
  b.doc.transact(() => { moved().set('due', '2027-03-27'); moved().set('slipReason', 'After the restart') })
  const last = async () => (await api(server, 'GET', `/api/plans/${plan.id}/history?limit=1`)).body.entries?.[0]
  await waitFor(async () => (await last())?.seq > before.seq, { what: 'the first edit after the restart in history' })
  const entry = await last()
  const due = entry.changes.find(c => c.field === 'due')
  assert.equal(due?.kind, 'updated', JSON.stringify(entry.changes))
  assert.equal(due.new, '2027-03-27')
  assert.equal(due.old, '2027-03-20', 'the old value is the one stored before the restart')
  assert.deepEqual(entry.slips.map(s => [s.from, s.to, s.reason]), [['2027-03-20', '2027-03-27', 'After the restart']])
  const verified = (await api(server, 'GET', `/api/plans/${plan.id}/verify`)).body
  assert.equal(verified.ok, true, JSON.stringify(verified.problems))
  // Admission still knows the stored plan: a new entry in the milestones map is admitted and
  // stored like any other.
  b.map('milestones').set('ms-after', new Y.Map([['title', 'Added after the restart']]))
  await waitFor(async () => (await last())?.changes.some(c => c.entityId === 'ms-after' && c.kind === 'created'), { what: 'the new milestone in history' })
  destroy(b)
  await server.stop()
  data.cleanup()
})

test('an idle plan leaves memory and reloads intact', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file, args: ['--room-idle-secs', '1'] })
  const plan = await createPlan(server)
  const a = client(server, plan.id, plan.seller)
  await synced(a)
  for (let i = 0; i < 300; i++) a.map('risks').set(`r-${i}`, new Y.Map([['text', `Risk ${i}`]]))
  const b = client(server, plan.id, plan.buyer)
  await synced(b)
  await waitFor(() => b.map('risks').size === 300)
  const loads = await metric(server, 'mapline_room_loads_total')
  destroy(a, b)
  await waitFor(async () => await metric(server, 'mapline_rooms_in_memory') === 0, { what: 'the room to be retired' })
  const c = client(server, plan.id, plan.buyer)
  await synced(c)
  await waitFor(() => c.map('risks').size === 300, { what: 'reloaded state' })
  assert.equal(await metric(server, 'mapline_room_loads_total'), loads + 1)
  destroy(c)
  await server.stop()
  data.cleanup()
})

test('kill -9 while a client streams updates loses nothing another client was shown (25 crashes)', async () => {
  const data = tempData()
  let server = await startServer({ dataFile: data.file })
  const plan = await createPlan(server)
  const seen = new Set()
  let next = 0
  for (let round = 0; round < 25; round++) {
    const writer = client(server, plan.id, plan.seller)
    const observer = client(server, plan.id, plan.buyer)
    await Promise.all([synced(writer), synced(observer)])
    const log = observer.map('log')
    const record = () => { for (const key of log.keys()) seen.add(key) }
    record()
    log.observe(record)
    const seenAtStart = seen.size
    const stream = setInterval(() => { writer.map('log').set(`u-${next++}`, round) }, 1)
    await waitFor(() => seen.size >= seenAtStart + 15, { what: `round ${round}: updates reaching the observer` })
    await server.kill9()
    clearInterval(stream)
    destroy(writer, observer)

    server = await startServer({ dataFile: data.file })
    const checker = client(server, plan.id, plan.buyer)
    await synced(checker)
    const missing = [...seen].filter(key => !checker.map('log').has(key))
    assert.deepEqual(missing, [], `round ${round}: updates shown to a client were lost`)
    destroy(checker)
  }
  assert.ok(seen.size >= 25 * 15)
  await server.stop()
  data.cleanup()
})

test('SIGTERM closes raw sockets with 1001 and exits cleanly', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file })
  const plan = await createPlan(server)
  const sockets = [rawSocket(server, plan.id, plan.seller), rawSocket(server, plan.id, plan.buyer)]
  await Promise.all(sockets.map(s => s.opened))
  await waitFor(async () => await metric(server, 'mapline_connections_open') === 2)
  const exit = await server.stop()
  assert.equal(exit.code, 0)
  for (const s of sockets) assert.deepEqual(await s.closed, { code: 1001, reason: 'server shutting down' })
  data.cleanup()
})
