// A real pycrdt client (the Python CRDT library Jupyter's collaboration runs on). Its Provider
// sends back every update it receives and, on connect, the whole state it was given. Such
// echoes change nothing: the server acknowledges them and neither stores nor relays them, so a
// plan's log grows only with real edits however many pycrdt clients are connected — and a
// read-only pycrdt client is not refused for echoing. Also: one update sent twice is stored
// once. (The pycrdt process speaks over stdin/stdout; this test relays its frames to a real
// WebSocket of the server.)
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import WebSocket from 'ws'
import {
  repoRoot, startServer, tempData, createPlan, api, mintShare, client, synced, destroy, waitFor,
  metric, rawSocket, updateFrame, Y
} from './lib/harness.js'

const python = join(repoRoot, 'target', 'venv', 'bin', 'python')
const script = join(repoRoot, 'tests', 'python', 'pycrdt_client.py')

let data, server
before(async () => {
  assert.ok(existsSync(python), 'target/venv with pycrdt (scripts/test.sh installs it)')
  data = tempData()
  server = await startServer({ dataFile: data.file })
})
after(async () => { await server.stop(); data.cleanup() })

/** Starts the pycrdt client on a plan with `token`, relayed to a WebSocket with acks. */
function pycrdt (planId, token, mode) {
  const proc = spawn(python, [script, mode], { stdio: ['pipe', 'pipe', 'pipe'] })
  proc.stdin.on('error', () => {}) // (it may be gone while frames are still arriving)
  const ws = new WebSocket(`${server.wsUrl}/${planId}?token=${encodeURIComponent(token)}&acks=1`)
  ws.binaryType = 'nodebuffer'
  const state = { synced: false, acks: 0, sent: [], closed: null, stderr: '' }
  const toPython = []
  let open = false
  ws.on('open', () => { open = true; for (const frame of toPython.splice(0)) proc.stdin.write(frame) })
  ws.on('message', data => {
    const frame = Buffer.alloc(4 + data.length)
    frame.writeUInt32BE(data.length, 0)
    data.copy(frame, 4)
    proc.stdin.write(frame)
  })
  ws.on('close', (code, reason) => { state.closed = { code, reason: reason.toString() } })
  let pending = Buffer.alloc(0)
  const outbox = []
  proc.stdout.on('data', chunk => {
    pending = Buffer.concat([pending, chunk])
    while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0)) {
      const length = pending.readUInt32BE(0)
      const message = pending.subarray(4, 4 + length)
      pending = pending.subarray(4 + length)
      if (open) ws.send(message); else outbox.push(message)
    }
  })
  ws.on('open', () => { for (const m of outbox.splice(0)) ws.send(m) })
  proc.stderr.on('data', chunk => {
    state.stderr += chunk
    for (const line of chunk.toString().split('\n')) {
      try {
        const status = JSON.parse(line)
        if (status.synced) state.synced = true
        if (status.acks) state.acks = status.acks
        if (status.sent) state.sent.push(status)
      } catch {}
    }
  })
  return {
    state,
    stop () { ws.removeAllListeners('message'); ws.close(); proc.kill() }
  }
}

async function seqOf (planId) {
  const { status, body } = await api(server, 'GET', `/api/plans/${planId}`)
  assert.equal(status, 200)
  return body.seq
}

test('pycrdt echoes of the state and of every update are acknowledged, not stored, not relayed', async () => {
  const plan = await createPlan(server)
  const js = client(server, plan.id, plan.seller)
  await synced(js)
  // A plan of some size, so an echoed state would be noticed.
  js.doc.transact(() => {
    for (let i = 0; i < 200; i++) {
      const step = new Y.Map()
      step.set('title', new Y.Text(`Step ${i}`))
      step.set('due', '2027-03-01')
      js.map('milestones').set(`m${i}`, step)
    }
  })
  await waitFor(async () => (await seqOf(plan.id)) >= 2)
  const start = await seqOf(plan.id)
  let relayed = 0
  js.doc.on('update', (_u, origin) => { if (origin !== null && origin !== js.doc) relayed++ })
  const unchangedBefore = await metric(server, 'mapline_updates_unchanged_total') ?? 0

  const py = pycrdt(plan.id, plan.seller, 'editor')
  try {
    await waitFor(() => py.state.synced, { what: 'pycrdt to sync', timeout: 20000 })
    // Its one real edit arrives after its echo of the whole state (one connection, in order).
    await waitFor(() => js.map('meta').get('pyMarker') === 'here', { what: 'the pycrdt edit' })
    assert.equal(await seqOf(plan.id), start + 1, 'only the real edit was stored')
    assert.equal(relayed, 1, 'only the real edit was relayed')

    // Ten edits here: pycrdt echoes each; its answer to the ping comes after those echoes.
    for (let i = 0; i < 10; i++) js.map('milestones').get(`m${i}`).set('status', 'done')
    js.map('meta').set('ping', 1)
    await waitFor(() => js.map('meta').get('pong') === 1, { what: 'the pong' })
    assert.equal(await seqOf(plan.id), start + 1 + 11 + 1, 'ten edits, the ping, the pong: no echo')
    assert.ok((await metric(server, 'mapline_updates_unchanged_total')) >= unchangedBefore + 11)
    assert.equal(py.state.closed, null)
  } finally {
    py.stop()
    destroy(js)
  }
})

test('a read-only pycrdt client is not refused for echoing', async () => {
  const plan = await createPlan(server)
  const viewer = await mintShare(server, plan.id, { side: 'buyer', role: 'viewer', label: 'CFO' })
  const js = client(server, plan.id, plan.seller)
  await synced(js)
  const refusedBefore = await metric(server, 'mapline_updates_refused_total') ?? 0
  const py = pycrdt(plan.id, viewer, 'viewer')
  try {
    await waitFor(() => py.state.synced, { what: 'pycrdt to sync', timeout: 20000 })
    const seq = await seqOf(plan.id)
    js.map('meta').set('objective', 'Echo me')
    // The first update it sent holding the edit is its echo; wait for its acknowledgement
    // (acknowledgements come in order, one per update message).
    let echo
    await waitFor(() => (echo = py.state.sent.find(s => s.objective === 'Echo me')) !== undefined, { what: 'the echo of the edit' })
    await waitFor(() => py.state.acks >= echo.sent, { what: 'the ack of the echo' })
    assert.equal(py.state.closed, null, 'still connected')
    assert.equal(await metric(server, 'mapline_updates_refused_total') ?? 0, refusedBefore, 'nothing refused')
    assert.equal(await seqOf(plan.id), seq + 1, 'only the edit was stored')
  } finally {
    py.stop()
    destroy(js)
  }
})

test('an update sent twice is stored once', async () => {
  const plan = await createPlan(server)
  const start = await seqOf(plan.id)
  const doc = new Y.Doc()
  const js = client(server, plan.id, plan.seller)
  await synced(js)
  Y.applyUpdate(doc, Y.encodeStateAsUpdate(js.doc))
  const sv = Y.encodeStateVector(doc)
  doc.getMap('meta').set('objective', 'Once')
  const update = Y.encodeStateAsUpdate(doc, sv)
  const raw = rawSocket(server, plan.id, plan.seller, { query: '&acks=1' })
  await raw.opened
  raw.ws.send(updateFrame(update))
  raw.ws.send(updateFrame(update))
  // Two acknowledgements (message 100), in order: the second answers the duplicate.
  await waitFor(() => raw.messages.filter(m => m[0] === 100).length >= 2, { what: 'two acks' })
  assert.equal(await seqOf(plan.id), start + 1)
  await waitFor(() => js.map('meta').get('objective') === 'Once')
  raw.ws.close()
  destroy(js)
})
