// Bad input on the sync endpoint: each case closes only the offending connection with its
// documented code; the room, its other clients and the stored data are untouched.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { randomBytes } from 'node:crypto'
import {
  startServer, tempData, createPlan, client, synced, destroy, waitFor, rawSocket, metric, Y
} from './lib/harness.js'

let data, server, plan, editor, observer
before(async () => {
  data = tempData()
  server = await startServer({ dataFile: data.file })
  plan = await createPlan(server)
  editor = client(server, plan.id, plan.seller)
  observer = client(server, plan.id, plan.buyer)
  await Promise.all([synced(editor), synced(observer)])
  editor.map('meta').set('objective', 'stored before the attacks')
  await waitFor(() => observer.map('meta').get('objective') === 'stored before the attacks')
})
after(async () => { destroy(editor, observer); await server.stop(); data.cleanup() })

let round = 0
/** After a bad connection closed: the room still relays edits, and a newcomer sees stored data. */
async function roomIsUnaffected () {
  round += 1
  editor.map('meta').set('costOfInaction', `round ${round}`)
  await waitFor(() => observer.map('meta').get('costOfInaction') === `round ${round}`, { what: 'the room to keep relaying' })
  assert.ok(editor.provider.wsconnected && observer.provider.wsconnected, 'the other clients stayed connected')
  const newcomer = client(server, plan.id, plan.buyer)
  await synced(newcomer, 20000)
  await waitFor(() => newcomer.map('meta').get('costOfInaction') === `round ${round}`)
  assert.equal(newcomer.map('meta').get('objective'), 'stored before the attacks')
  destroy(newcomer)
}

const frames = [
  ['an empty binary message', new Uint8Array([]), 4400],
  ['an unknown message type', new Uint8Array([7, 0]), 4400],
  ['an unknown sync message type', new Uint8Array([0, 9, 0]), 4400],
  ['a truncated varint', new Uint8Array([0, 2, 0xff, 0xff]), 4400],
  ['a gigantic length prefix', new Uint8Array([0, 2, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3]), 4400],
  ['trailing bytes after a message', new Uint8Array([3, 0, 0]), 4400],
  ['a malformed awareness update', new Uint8Array([1, 3, 0xff, 0xff, 0xff]), 4400],
  ['an update that cannot be decoded', new Uint8Array([0, 2, 5, 9, 9, 9, 9, 9]), 4422],
  ['a sync step 2 that cannot be decoded', new Uint8Array([0, 1, 3, 1, 200, 7]), 4422]
]

for (const [name, frame, code] of frames) {
  test(`${name} closes only that connection with ${code}`, async () => {
    const bad = rawSocket(server, plan.id, plan.seller)
    await bad.opened
    bad.ws.send(frame)
    const closed = await bad.closed
    assert.equal(closed.code, code)
    assert.ok(closed.reason.length > 0, 'the close carries a reason')
    await roomIsUnaffected()
  })
}

test('a text frame closes the connection with 4415', async () => {
  const bad = rawSocket(server, plan.id, plan.seller)
  await bad.opened
  bad.ws.send('{"hello":"world"}')
  const closed = await bad.closed
  assert.equal(closed.code, 4415)
  assert.match(closed.reason, /binary/)
  await roomIsUnaffected()
})

test('a message far over the limit is cut off without disturbing the room', async () => {
  const bad = rawSocket(server, plan.id, plan.seller)
  await bad.opened
  bad.ws.send(randomBytes(3 * 1024 * 1024))
  const closed = await bad.closed
  assert.ok([4413, 1006].includes(closed.code), `closed with ${closed.code}`)
  await roomIsUnaffected()
})

test('a message over --max-message-bytes closes the connection with 4413', async () => {
  const bad = rawSocket(server, plan.id, plan.seller)
  await bad.opened
  bad.ws.send(randomBytes(1024 * 1024 + 100))
  const closed = await bad.closed
  assert.equal(closed.code, 4413, JSON.stringify(closed))
  assert.match(closed.reason, /1048576/)
  await roomIsUnaffected()
})

test('a client that never reads is disconnected with 4429 and never slows the room', async () => {
  // A raw TCP WebSocket handshake, after which this client reads nothing at all.
  const url = new URL(`${server.wsUrl}/${plan.id}`)
  const socket = net.connect(Number(url.port), url.hostname)
  await new Promise(resolve => socket.once('connect', resolve))
  socket.write(`GET ${url.pathname}?token=${plan.buyer} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\n` +
    'Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
  socket.pause()
  try {
    const closedBefore = await metric(server, 'mapline_connections_closed_total{code="4429"}') ?? 0
    await waitFor(async () => await metric(server, 'mapline_connections_open') === 3, { what: 'the stalled client to join' })
    const observerCloses = []
    observer.provider.on('connection-close', event => observerCloses.push(event?.code))
    // About 5 MB/s: a rate the reading client in this process keeps up with, while the stalled
    // one fills its socket buffers and then its bounded send queue within seconds.
    const chunk = 'x'.repeat(24 * 1024)
    let sent = 0
    const pump = setInterval(() => { editor.map('notes').set(`n-${sent++}`, chunk) }, 5)
    try {
      await waitFor(async () => (await metric(server, 'mapline_connections_closed_total{code="4429"}') ?? 0) > closedBefore,
        { timeout: 60000, what: 'the stalled client to be closed as slow' })
    } finally { clearInterval(pump) }
    await waitFor(() => observer.map('notes').size === sent,
      { timeout: 20000, what: `the reading client to get every update (${observer.map('notes').size}/${sent})` })
    assert.deepEqual(observerCloses, [], 'the reading client was never disconnected')
    // Delete the bulk again (Yjs drops deleted content), so later newcomers sync a small plan.
    editor.doc.transact(() => { for (const key of [...editor.map('notes').keys()]) editor.map('notes').delete(key) })
    await waitFor(() => observer.map('notes').size === 0, { timeout: 20000, what: 'the deletion to reach the observer' })
  } finally { socket.destroy() }
  await roomIsUnaffected()
})
