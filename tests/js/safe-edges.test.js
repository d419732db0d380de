// Safe edges (issues 11 and 17): what one client sends can never break another. Each case is
// refused with its documented close code or HTTP error, only the offender is closed, another
// connected client keeps syncing, and nothing is stored. Then the close-code convention with the
// stock y-websocket provider: it reconnects after what retrying can fix, and stops otherwise.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import * as encoding from 'lib0/encoding'
import { Awareness, encodeAwarenessUpdate } from 'y-protocols/awareness'
import {
  startServer, tempData, createPlan, client, synced, destroy, waitFor, rawSocket, metric, api, mintShare, Y,
  awarenessFrame, updateFrame, within
} from './lib/harness.js'

const MAX_ENTRIES = 40
const MAX_TEXT = 2000
let data, server, plan, editor, witness
before(async () => {
  data = tempData()
  server = await startServer({
    dataFile: data.file,
    args: ['--max-entries', String(MAX_ENTRIES), '--max-text-chars', String(MAX_TEXT)]
  })
  plan = await createPlan(server)
  editor = client(server, plan.id, plan.seller)
  witness = client(server, plan.id, plan.buyer)
  await Promise.all([synced(editor), synced(witness)])
  editor.map('meta').set('objective', 'stored before the attacks')
  await waitFor(() => witness.map('meta').get('objective') === 'stored before the attacks')
})
after(async () => { destroy(editor, witness); await server.stop(); data.cleanup() })

const persisted = async () => (await metric(server, 'mapline_updates_persisted_total')) ?? 0

let round = 0
/** The witness stayed connected and still receives edits; a newcomer gets the stored plan. */
async function othersUnaffected () {
  round += 1
  editor.map('meta').set('costOfInaction', `round ${round}`)
  await waitFor(() => witness.map('meta').get('costOfInaction') === `round ${round}`, { what: 'the room to keep relaying' })
  assert.ok(editor.provider.wsconnected && witness.provider.wsconnected, 'the other clients stayed connected')
}

/** An update from client 987654 whose map entry names an existing string item as its parent. */
function poisonedUpdate (parentClient, parentClock) {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, 1) // one client
  encoding.writeVarUint(e, 1) // one struct
  encoding.writeVarUint(e, 987654) // client
  encoding.writeVarUint(e, 0) // clock
  encoding.writeUint8(e, 0b0010_1000) // has parentSub, content Any
  encoding.writeVarUint(e, 0) // parent is an id
  encoding.writeVarUint(e, parentClient)
  encoding.writeVarUint(e, parentClock)
  encoding.writeVarString(e, 'x')
  encoding.writeVarUint(e, 1)
  encoding.writeAny(e, 'poison')
  encoding.writeVarUint(e, 0) // empty delete set
  return encoding.toUint8Array(e)
}

/** A Yjs update adding `count` milestones, made by a fresh document. */
function milestonesUpdate (count, prefix) {
  const doc = new Y.Doc()
  doc.transact(() => {
    for (let i = 0; i < count; i++) {
      const m = new Y.Map()
      doc.getMap('milestones').set(`${prefix}-${i}`, m)
      m.set('title', `Step ${i}`)
    }
  })
  return Y.encodeStateAsUpdate(doc)
}

const pad = n => 'x'.repeat(n)
const viewer = () => mintShare(server, plan.id, { side: 'buyer', role: 'viewer', label: 'Flooder' })

// [name, who connects, frames to send, expected code, reason pattern]
const cases = [
  ['an awareness state that is not JSON', viewer, () => [awarenessFrame([[4242, 1, '{not json']])], 4400, /not JSON/],
  ['an awareness state that is a JSON array', viewer, () => [awarenessFrame([[4242, 1, '[1,2]']])], 4400, /not a JSON object/],
  ['an awareness message of 900 KB', viewer, () => [awarenessFrame([[4242, 1, JSON.stringify({ pad: pad(900 * 1024) })]])], 4413, /awareness message of \d+ bytes/],
  ['an awareness state of 20 KB', viewer, () => [awarenessFrame([[4242, 1, JSON.stringify({ pad: pad(20 * 1024) })]])], 4413, /awareness state of client 4242/],
  ['forty 15 KB awareness states in a burst', viewer,
    () => Array.from({ length: 40 }, (_, i) => awarenessFrame([[4242, i + 1, JSON.stringify({ pad: pad(15 * 1024), i })]])), 4429, /too much awareness data/],
  ['seventeen awareness clients on one connection', viewer,
    () => [awarenessFrame(Array.from({ length: 17 }, (_, i) => [5000 + i, 1, '{}']))], 4400, /more than 16 awareness clients/],
  // The editor's first item (its clock 0) is the objective's string value, set in before().
  ['an update whose item names a string as its parent', () => plan.seller, () => {
    assert.equal(editor.doc.store.clients.get(editor.doc.clientID)[0].content.constructor.name, 'ContentAny')
    return [updateFrame(poisonedUpdate(editor.doc.clientID, 0))]
  }, 4422, /not a map, array or text/],
  [`an update taking milestones over ${MAX_ENTRIES}`, () => plan.seller, () => [updateFrame(milestonesUpdate(MAX_ENTRIES + 1, 'many'))], 4413, new RegExp(`milestones would hold ${MAX_ENTRIES + 1} entries, over the limit of ${MAX_ENTRIES}`)],
  [`a text of ${MAX_TEXT + 1} characters`, () => plan.seller, () => {
    const doc = new Y.Doc()
    doc.getMap('meta').set('objective', pad(MAX_TEXT + 1))
    return [updateFrame(Y.encodeStateAsUpdate(doc))]
  }, 4413, new RegExp(`a text of ${MAX_TEXT + 1} characters in "objective", over the limit of ${MAX_TEXT}`)]
]

let caseCount = 0
for (const [name, who, frames, code, reason] of cases) {
  test(`${name}: closed with ${code}, nothing relayed or stored, others unaffected`, async () => {
    caseCount++
    const heard = []
    const listen = ({ added, updated }) => heard.push(...added, ...updated)
    witness.provider.awareness.on('update', listen)
    const storedBefore = await persisted()
    const planBefore = (await api(server, 'GET', `/api/plans/${plan.id}`)).body
    const bad = rawSocket(server, plan.id, await who())
    await bad.opened
    for (const frame of frames()) bad.ws.send(frame)
    const closed = await within(bad.closed, { what: `the server to close the connection with ${code}` })
    assert.equal(closed.code, code, JSON.stringify(closed))
    assert.match(closed.reason, reason)
    await othersUnaffected()
    witness.provider.awareness.off('update', listen)
    assert.ok(!heard.some(id => id === 4242 || (id >= 5000 && id < 5017) || id === 987654) || code === 4429,
      `the witness heard the refused presence: ${heard}`)
    assert.equal(await persisted(), storedBefore + 1, 'only the witness round was stored')
    const planAfter = (await api(server, 'GET', `/api/plans/${plan.id}`)).body
    assert.deepEqual({ ...planAfter.plan.meta, costOfInaction: null }, { ...planBefore.plan.meta, costOfInaction: null })
    assert.equal(Object.keys(planAfter.plan.milestones ?? {}).length, Object.keys(planBefore.plan.milestones ?? {}).length)
  })
}

test('a flood of valid presence reaches a healthy reader merged, never closing it', async () => {
  // 300 distinct states within the count burst, each small: relayed, but coalesced per reader.
  const flooderDoc = new Y.Doc()
  const awareness = new Awareness(flooderDoc)
  const bad = rawSocket(server, plan.id, await viewer())
  await bad.opened
  const closes = []
  witness.provider.on('connection-close', event => closes.push(event?.code))
  for (let i = 0; i < 250; i++) {
    awareness.setLocalState({ user: { name: 'busy', n: i, pad: pad(500) } })
    const encoder = encoding.createEncoder()
    encoding.writeVarUint(encoder, 1)
    encoding.writeVarUint8Array(encoder, encodeAwarenessUpdate(awareness, [flooderDoc.clientID]))
    bad.ws.send(encoding.toUint8Array(encoder))
  }
  await waitFor(() => witness.provider.awareness.getStates().get(flooderDoc.clientID)?.user?.n === 249,
    { what: 'the latest presence to reach the witness' })
  await othersUnaffected()
  assert.deepEqual(closes, [])
  bad.ws.close()
  awareness.destroy()
})

test('imports over a limit are refused with 422 and create nothing', async () => {
  const exported = (await api(server, 'GET', `/api/plans/${plan.id}/export.json`)).body
  const before = (await api(server, 'GET', '/api/plans')).body
  const many = structuredClone(exported)
  many.plan.milestones = Array.from({ length: MAX_ENTRIES + 1 }, (_, i) => ({
    id: `imp-${i}`, title: `Step ${i}`, workstream: 'business_case', side: 'seller', owner: null, due: null, status: 'not_started', dependsOn: [], notes: null, slipReason: null, order: `a${String(i).padStart(3, '0')}`
  }))
  const long = structuredClone(exported)
  long.plan.meta.objective = pad(MAX_TEXT + 1)
  for (const [body, pattern] of [[many, /milestones would hold/], [long, /a text of 2001 characters/]]) {
    caseCount++
    const refused = await api(server, 'POST', '/api/plans/import', { body })
    assert.equal(refused.status, 422, JSON.stringify(refused.body))
    assert.equal(refused.body.error.code, 'over_limit')
    assert.match(refused.body.error.message, pattern)
  }
  assert.deepEqual((await api(server, 'GET', '/api/plans')).body.length, before.length)
})

test('close codes follow the stock client: it reconnects after a slow read, stops after a bad message or a revoked link', async () => {
  // 4503: a reader that stopped reading is closed, and reconnects and resyncs by itself once it
  // reads again.
  const slow = client(server, plan.id, plan.buyer)
  await synced(slow)
  const closes = []
  slow.provider.on('connection-close', event => closes.push(event?.code))
  slow.provider.ws.pause()
  // This server allows 2,000 characters a text, so each write carries eight.
  const chunk = pad(1900)
  let sent = 0
  const logged = () => /closing connection code=4503/.test(server.output().stdout + server.output().stderr)
  const pump = setInterval(() => {
    editor.doc.transact(() => { for (let i = 0; i < 8; i++) editor.map('notes').set(`n-${sent++}`, chunk) })
  }, 5)
  try {
    await waitFor(logged, { timeout: 60000, what: 'the server to close the stalled reader' })
  } finally { clearInterval(pump) }
  slow.provider.ws.resume()
  await waitFor(() => closes.includes(4503), { what: 'the client to read its 4503 close' })
  await waitFor(() => slow.provider.wsconnected && slow.provider.synced && slow.map('notes').size === sent,
    { timeout: 30000, what: 'the slow client to reconnect and resync by itself' })
  assert.equal(slow.provider.shouldConnect, true)
  editor.doc.transact(() => { for (const key of [...editor.map('notes').keys()]) editor.map('notes').delete(key) })
  destroy(slow)

  // 4400: a malformed message is final.
  const malformed = client(server, plan.id, plan.buyer)
  await synced(malformed)
  const final = new Promise(resolve => malformed.provider.once('closed', resolve))
  malformed.provider.ws.send(new Uint8Array([7, 0]))
  assert.equal((await final).code, 4400)
  assert.equal(malformed.provider.shouldConnect, false)
  destroy(malformed)

  // 4401: a revoked link is final.
  const token = await mintShare(server, plan.id, { side: 'buyer', role: 'editor', label: 'Leaving' })
  const revoked = client(server, plan.id, token)
  await synced(revoked)
  const gone = new Promise(resolve => revoked.provider.once('closed', resolve))
  const list = (await api(server, 'GET', `/api/plans/${plan.id}/shares`)).body
  const share = (list.shares ?? list).find(s => s.label === 'Leaving')
  assert.equal((await api(server, 'DELETE', `/api/plans/${plan.id}/shares/${share.id}`)).status, 200)
  assert.equal((await gone).code, 4401)
  assert.equal(revoked.provider.shouldConnect, false)
  destroy(revoked)
  await othersUnaffected()
})

test('the number of cases', () => {
  console.log(`safe edges: ${caseCount} bad-input cases refused`)
  assert.ok(caseCount >= cases.length)
})
