// Several Mapline nodes on a NATS JetStream cluster (issue 16), black-box: three real
// nats-server processes (R3, `sync_interval: always`, lib/nats.js) and Mapline nodes started
// with `--cluster`, each on its own replica file, with real Yjs clients on every node. What a
// user relies on must hold across nodes and across kill -9s of engine and Mapline nodes: an edit
// on one node reaches clients on the other, nothing anyone was told is saved is lost, every node
// serves the same plan and the same history (equal to a node deriving it from the log alone),
// no update is stored twice, a revoked link closes everywhere, a webhook is delivered once.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import http from 'node:http'
import net from 'node:net'
import * as decoding from 'lib0/decoding'
import {
  startServer, tempData, createPlan, mintShare, client, synced, destroy, waitFor, within, api, rawSocket,
  upgradeStatus, metric, binary, ADMIN_TOKEN, Y
} from './lib/harness.js'
import { startNats, freePorts } from './lib/nats.js'

/** The command log's stream (`<prefix>-log`, prefix `mapline`: docs/cluster.md). */
const STREAM = 'mapline-log'
/** A cluster node applies the log before it listens; a debug build on 2 cores is slow at it. */
const LISTEN_TIMEOUT = 120000

/**
 * Starts Mapline node `name` on the NATS cluster with its own replica file, on `port` if given
 * (a restart keeps its address, so its clients reconnect by themselves).
 */
function startNode (nats, name, dataFile, { port, args = [] } = {}) {
  return startServer({
    dataFile,
    addr: `127.0.0.1:${port ?? 0}`,
    listenTimeout: LISTEN_TIMEOUT,
    args: [
      '--cluster', nats.urls, '--nats-monitor', nats.monitors, '--node-id', name,
      // The webhook receiver is on loopback; the kill test adds a milestone per edit.
      '--webhooks-allow-private', '--max-entries', '100000', ...args
    ]
  })
}

/** `GET path` as admin on `node`; fails the test on anything but 200. */
async function get (node, path) {
  const { status, body } = await api(node, 'GET', path)
  assert.equal(status, 200, `GET ${path} on ${node.url}: ${status} ${JSON.stringify(body)}`)
  return body
}

/** The plan's whole history as `node` serves it, newest first (every page). */
async function wholeHistory (node, planId) {
  const entries = []
  let before = null
  for (;;) {
    const page = await get(node, `/api/plans/${planId}/history?limit=500${before === null ? '' : `&before=${before}`}`)
    entries.push(...page.entries)
    if (page.nextBefore === null || page.nextBefore === undefined) return entries
    before = page.nextBefore
  }
}

/**
 * A real Yjs client that asked for durability acks: `edit()` adds a uniquely named milestone
 * (`ms-<name>-<n>`), and `acked` holds the names of those the server has acknowledged as
 * durable. An edit is acknowledged once an ack's durable state vector covers the client's clock
 * after it; the vector (not the per-connection count) keeps this right across reconnects.
 */
function editor (server, planId, token, name) {
  const c = client(server, planId, token, { params: { acks: '1' } })
  const pending = []
  const acked = new Set()
  c.provider.messageHandlers[100] = (_encoder, decoder) => {
    decoding.readVarUint(decoder)
    const durable = Y.decodeStateVector(decoding.readVarUint8Array(decoder)).get(c.doc.clientID) ?? 0
    while (pending.length && pending[0].clock <= durable) acked.add(pending.shift().key)
  }
  const refused = []
  c.provider.messageHandlers[101] = (_encoder, decoder) => { refused.push(decoding.readVarString(decoder)) }
  let n = 0
  let timer = null
  const edit = () => {
    const key = `ms-${name}-${n++}`
    c.map('milestones').set(key, new Y.Map([['title', `${name} edit ${n}`]]))
    pending.push({ key, clock: Y.getState(c.doc.store, c.doc.clientID) })
  }
  return {
    ...c,
    name,
    acked,
    pending,
    refused,
    sent: () => n,
    edit,
    /** Edits every `ms` milliseconds until `stop()`. */
    start: ms => { timer = setInterval(edit, ms) },
    stop: () => { clearInterval(timer) }
  }
}

// Tests 1, 3 and 4 share one engine cluster and two Mapline nodes; the kill test has its own.
let nats
let a
let b
const files = []

before(async () => {
  nats = await startNats(3)
  files.push(tempData(), tempData())
  a = await startNode(nats, 'a', files[0].file)
  b = await startNode(nats, 'b', files[1].file)
})

after(async () => {
  await Promise.all([a, b].filter(Boolean).map(node => node.stop()))
  if (nats) await nats.stop()
  for (const f of files) f.cleanup()
})

test('an edit on node A reaches a client on node B and back; both nodes serve the same plan', async () => {
  const plan = await createPlan(a, { template: 'mid-market' })
  const onA = client(a, plan.id, plan.seller)
  const onB = client(b, plan.id, plan.buyer)
  await Promise.all([synced(onA), synced(onB)])
  onA.map('meta').set('objective', 'Sent through node A')
  await waitFor(() => onB.map('meta').get('objective') === 'Sent through node A', { what: 'A\'s edit at the client on B' })
  onB.doc.transact(() => {
    onB.map('milestones').set('ms-from-b', new Y.Map([['title', 'Added through node B'], ['side', 'buyer']]))
  })
  await waitFor(() => onA.map('milestones').get('ms-from-b')?.get('title') === 'Added through node B', { what: 'B\'s edit at the client on A' })
  // Both nodes serve the same projected plan, with both edits in it.
  let fromA, fromB
  await waitFor(async () => {
    fromA = await get(a, `/api/plans/${plan.id}`)
    fromB = await get(b, `/api/plans/${plan.id}`)
    return JSON.stringify(fromA) === JSON.stringify(fromB) && fromA.plan.milestones.some(m => m.id === 'ms-from-b')
  }, { timeout: 15000, what: 'both nodes to serve the same plan with both edits' })
  assert.equal(fromB.plan.meta.objective, 'Sent through node A')
  assert.equal(fromA.plan.milestones.find(m => m.id === 'ms-from-b').title, 'Added through node B')
  // Each node derives history itself (about 100 ms after the edit): both end with the same,
  // up to the plan's position.
  const histories = await waitFor(async () => {
    const both = [await wholeHistory(a, plan.id), await wholeHistory(b, plan.id)]
    return both.every(h => h[0]?.seq === fromA.seq) && both
  }, { timeout: 15000, what: 'both nodes to derive history up to the plan\'s position' })
  assert.deepEqual(histories[1], histories[0])
  assert.ok(histories[0].some(e => e.changes.some(c => c.entityId === 'ms-from-b' && c.kind === 'created')))
  destroy(onA, onB)
})

test('a share link revoked through node A closes its socket on node B, and B refuses it', async () => {
  const plan = await createPlan(a)
  const token = await mintShare(a, plan.id, { side: 'buyer', role: 'editor', label: 'Champion' })
  const shares = (await get(a, `/api/plans/${plan.id}/shares`)).shares
  const share = shares.find(s => s.label === 'Champion')
  // B knows the link minted through A (it may take B a moment to apply it).
  await waitFor(async () => (await api(b, 'GET', `/api/plans/${plan.id}/me`, { token })).status === 200, { what: 'B to accept the new link' })
  const socket = rawSocket(b, plan.id, token)
  await socket.opened
  const bystander = rawSocket(b, plan.id, plan.seller)
  await bystander.opened
  const revoked = await api(a, 'DELETE', `/api/plans/${plan.id}/shares/${share.id}`)
  assert.equal(revoked.status, 200, JSON.stringify(revoked.body))
  assert.equal(revoked.body.status, 'revoked')
  const closed = await within(socket.closed, { timeout: 15000, what: 'the revoked link\'s socket on B to close' })
  assert.deepEqual(closed, { code: 4401, reason: 'this share link was revoked' })
  // B refuses the token from now on, on the sync endpoint and the API alike.
  const refused = await upgradeStatus(`${b.wsUrl}/${plan.id}?token=${encodeURIComponent(token)}`)
  assert.equal(refused.status, 401)
  assert.equal(refused.body.error.code, 'share_revoked')
  const me = await api(b, 'GET', `/api/plans/${plan.id}/me`, { token })
  assert.equal(me.status, 401)
  assert.equal(me.body.error.code, 'share_revoked')
  // Nobody else was closed.
  assert.equal(bystander.ws.readyState, bystander.ws.OPEN, 'the seller\'s socket on B stays open')
  bystander.ws.close()
})

/** A webhook receiver on loopback that records every request. */
async function receiver () {
  const got = []
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', chunk => { body += chunk })
    req.on('end', () => { got.push({ headers: req.headers, json: JSON.parse(body) }); res.writeHead(204).end() })
  })
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
  return {
    got,
    url: `http://127.0.0.1:${server.address().port}/hook`,
    events: name => got.filter(g => g.json.event === name),
    stop: () => new Promise(resolve => { server.closeAllConnections(); server.close(resolve) })
  }
}

test('a webhook subscribed through the API is delivered once although two nodes run', async () => {
  const hook = await receiver()
  try {
    const plan = await createPlan(a, { template: 'mid-market', goLive: '2027-06-01' })
    const made = await api(a, 'POST', '/api/webhooks', { body: { url: hook.url, planId: plan.id } })
    assert.equal(made.status, 201, JSON.stringify(made.body))
    // Both nodes know the subscription before the event happens.
    await waitFor(async () => (await api(b, 'GET', '/api/webhooks')).body.webhooks?.some(w => w.id === made.body.id),
      { what: 'B to know the subscription' })
    const seller = client(b, plan.id, plan.seller)
    await synced(seller)
    const step = () => seller.map('milestones').get('ms-signature')
    seller.doc.transact(() => { step().set('due', '2027-05-25'); step().set('slipReason', 'Legal review') })
    await waitFor(() => hook.events('milestone.slipped').length >= 1, { timeout: 15000, what: 'milestone.slipped' })

    // Settled: each node's delivery log has the event either delivered or `sent_by_another_node`
    // (the other node claimed it, docs/cluster.md), and nothing waits for a retry.
    const finished = ['delivered', 'sent_by_another_node']
    const settled = async event => {
      const logs = []
      for (const node of [a, b]) {
        const { status, body } = await api(node, 'GET', `/api/webhooks/${made.body.id}/deliveries`)
        if (status !== 200) return false
        logs.push(body.deliveries)
      }
      const done = log => log.some(d => d.event === event && finished.includes(d.outcome)) &&
        log.every(d => d.outcome !== 'retrying')
      return logs.every(done) && logs
    }
    await waitFor(() => settled('milestone.slipped'), { timeout: 15000, what: 'both nodes\' delivery logs to settle' })
    // A later event, delivered and settled too, so a second node that would deliver the first
    // one late has had every chance to.
    seller.doc.transact(() => { seller.map('meta').set('goLive', '2027-06-15'); seller.map('meta').set('goLiveSlipReason', 'Board moved') })
    await waitFor(() => hook.events('plan.golive_changed').length >= 1, { timeout: 15000, what: 'plan.golive_changed' })
    const [logA, logB] = await waitFor(() => settled('plan.golive_changed'), { timeout: 15000, what: 'the second delivery to settle on both nodes' })

    const slipped = hook.events('milestone.slipped')
    assert.equal(slipped.length, 1, `milestone.slipped delivered ${slipped.length} times: ${JSON.stringify(slipped.map(s => s.headers['mapline-delivery']))}`)
    assert.equal(hook.events('plan.golive_changed').length, 1, 'plan.golive_changed delivered once')
    assert.equal(new Set(hook.got.map(g => g.headers['mapline-delivery'])).size, hook.got.length, 'no delivery id twice')
    // Across both nodes' logs: one node sent it (once, successfully), the other did not.
    for (const event of ['milestone.slipped', 'plan.golive_changed']) {
      const sent = [...logA, ...logB].filter(d => d.event === event && d.outcome === 'delivered')
      assert.equal(sent.length, 1, `${event}: ${JSON.stringify({ logA, logB })}`)
      assert.equal(sent[0].delivery, hook.events(event)[0].headers['mapline-delivery'])
    }
    destroy(seller)
  } finally {
    await hook.stop()
  }
})

test('a Mapline node starts while the log\'s leader engine node is down, and serves what the cluster holds', async () => {
  const plan = await createPlan(a, { title: 'Started during an outage' })
  const leader = nats.node(await nats.streamLeader(STREAM))
  await nats.kill9(leader)
  const file = tempData()
  files.push(file)
  // Its monitoring port is down too: the node waits out the election and starts (the two
  // left keep a quorum), rather than refusing the engine.
  const c = await startNode(nats, 'c', file.file)
  try {
    const served = await waitFor(async () => {
      const { status, body } = await api(c, 'GET', `/api/plans/${plan.id}`)
      return status === 200 && body
    }, { timeout: 60000, what: 'the node started during the outage to serve the plan' })
    assert.equal(served.plan.meta.title, 'Started during an outage')
    assert.match(c.output().stderr, /cannot read this engine node's monitoring port/)
  } finally {
    await c.stop()
    await nats.restart(leader)
  }
})

/**
 * Publishes `payload` on `subject` over NATS's plain text protocol (what a KV put is: a message
 * on `$KV.<bucket>.<key>`), and resolves once the server answered the PING after it.
 */
function natsPublish (url, subject, payload) {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname)
    let seen = ''
    socket.on('data', chunk => {
      seen += chunk
      if (seen.includes('-ERR')) { socket.destroy(); reject(new Error(`nats: ${seen}`)) }
      if (seen.includes('PONG')) { socket.end(); resolve() }
    })
    socket.on('error', reject)
    const body = Buffer.from(payload)
    socket.write(`CONNECT {"verbose":false,"pedantic":false}\r\nPUB ${subject} ${body.length}\r\n`)
    socket.write(body)
    socket.write('\r\nPING\r\n')
  })
}

/**
 * The last value of a KV key, read over NATS's plain text protocol (JetStream's direct API:
 * a request on `$JS.API.STREAM.MSG.GET.KV_<bucket>`), or null when there is none.
 */
function natsKvGet (url, bucket, key) {
  const { hostname, port } = new URL(url)
  const inbox = `_INBOX.mapline_test_${process.pid}`
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname)
    let seen = Buffer.alloc(0)
    socket.on('data', chunk => {
      seen = Buffer.concat([seen, chunk])
      const text = seen.toString()
      const header = text.match(/MSG \S+ \S+ (\d+)\r\n/)
      if (!header) return
      const start = header.index + header[0].length
      const length = Number(header[1])
      if (seen.length < start + length) return
      socket.end()
      const reply = JSON.parse(seen.subarray(start, start + length).toString())
      if (reply.error) return resolve(null)
      resolve(Buffer.from(reply.message.data, 'base64').toString())
    })
    socket.on('error', reject)
    const request = JSON.stringify({ last_by_subj: `$KV.${bucket}.${key}` })
    socket.write(`CONNECT {"verbose":false,"pedantic":false}\r\nSUB ${inbox} 1\r\n` +
      `PUB $JS.API.STREAM.MSG.GET.KV_${bucket} ${inbox} ${Buffer.byteLength(request)}\r\n${request}\r\n`)
  })
}

test('a history head another node published that differs from this node\'s is an alarm, never overwritten', async () => {
  const plan = await createPlan(a, { title: 'Compared through KV' })
  const onA = client(a, plan.id, plan.seller)
  await synced(onA)
  onA.map('meta').set('objective', 'First')
  // Both nodes have derived the plan's history and published or checked its head.
  const first = await waitFor(async () => {
    const body = await get(a, `/api/plans/${plan.id}`)
    const history = await wholeHistory(b, plan.id)
    return body.plan.meta.objective === 'First' && history[0]?.seq === body.seq && body.seq
  }, { timeout: 15000, what: 'both nodes to derive the first edit' })
  const before = { a: await metric(a, 'mapline_cluster_history_mismatches_total'), b: await metric(b, 'mapline_cluster_history_mismatches_total') }
  // A forged head at that position, as if a third node had derived something else.
  const key = `history.f4.${plan.id.replaceAll('-', '')}`
  const forged = JSON.stringify({ through: first, head: 'ab'.repeat(32), node: 'forger' })
  await natsPublish(nats.urls.split(',')[0], `$KV.mapline-kv.${key}`, forged)
  // The next edit moves both nodes' history on: each compares its own head at the forged
  // position with the forged one, raises the alarm and leaves the key as it is.
  onA.map('meta').set('objective', 'Second')
  await waitFor(async () => {
    const now = { a: await metric(a, 'mapline_cluster_history_mismatches_total'), b: await metric(b, 'mapline_cluster_history_mismatches_total') }
    return now.a > before.a && now.b > before.b
  }, { timeout: 30000, what: 'both nodes to count the forged head as a mismatch' })
  for (const node of [a, b]) {
    assert.match(node.output().stderr, new RegExp(`ALARM[^\\n]*plan_id=${plan.id}`))
  }
  // Neither node replaced the forged head with its own, though both derived further: the
  // evidence stays for an operator.
  onA.map('meta').set('objective', 'Third')
  await waitFor(async () => {
    const now = { a: await metric(a, 'mapline_cluster_history_mismatches_total'), b: await metric(b, 'mapline_cluster_history_mismatches_total') }
    return now.a > before.a + 1 && now.b > before.b + 1
  }, { timeout: 30000, what: 'both nodes to compare again after the third edit' })
  assert.equal(await natsKvGet(nats.urls.split(',')[0], 'mapline-kv', key), forged)
  destroy(onA)
})

test('kill -9 of the log leader, a follower and a Mapline node, 12 rounds: nothing acknowledged is lost, all nodes agree', async t => {
  const engine = await startNats(3)
  const data = { a: tempData(), b: tempData(), c: tempData() }
  const [portA, portB] = await freePorts(2)
  const ports = { a: portA, b: portB }
  const nodes = {
    a: await startNode(engine, 'a', data.a.file, { port: ports.a }),
    b: await startNode(engine, 'b', data.b.file, { port: ports.b })
  }
  // The clients editing now, and those whose node was killed under them (their tab closed:
  // what they had not been told is saved may be gone, what they had been told may not).
  const editors = []
  const retired = []
  let made = 0
  try {
    const plan = await createPlan(nodes.a)
    const newEditor = async (node, side) => {
      const e = editor(nodes[node], plan.id, plan[side], `${node}${side[0]}${made++}`)
      e.node = node
      e.side = side
      editors.push(e)
      await synced(e, 30000)
      e.start(100)
    }
    // Two editing clients on each node, a seller and a buyer.
    await Promise.all([['a', 'seller'], ['a', 'buyer'], ['b', 'seller'], ['b', 'buyer']].map(([node, side]) => newEditor(node, side)))

    /** Every editor gets `n` more edits acknowledged: the cluster takes writes through both nodes. */
    const progress = async (what, n = 3) => {
      const from = new Map(editors.map(e => [e, e.acked.size]))
      await waitFor(() => editors.every(e => e.acked.size >= (from.get(e) ?? 0) + n), { timeout: 60000, what: `${what}: ${n} more acknowledged edits from every client` })
    }
    const ackedSoFar = () => [...editors, ...retired].reduce((sum, e) => sum + e.acked.size, 0)

    const started = Date.now()
    for (let round = 0; round < 12; round++) {
      await progress(`round ${round}, before the kill`)
      const kind = ['leader', 'follower', 'mapline'][round % 3]
      let victim
      if (kind === 'mapline') {
        victim = Math.floor(round / 3) % 2 === 0 ? 'a' : 'b'
        const other = victim === 'a' ? 'b' : 'a'
        await nodes[victim].kill9()
        // Its clients are gone with it: nothing they had not sent is resent by them. Each is
        // replaced by a fresh client (a new document), alternately on the other node (at once)
        // and on the killed one (once it is back on its file and port).
        const gone = editors.filter(e => e.node === victim)
        for (const e of gone) {
          e.stop()
          destroy(e)
          editors.splice(editors.indexOf(e), 1)
          retired.push(e)
        }
        const sides = gone.map(e => e.side)
        const now = sides.filter((_, i) => i % 2 === 0)
        const later = sides.filter((_, i) => i % 2 === 1)
        await Promise.all(now.map(side => newEditor(other, side)))
        nodes[victim] = await startNode(engine, victim, data[victim].file, { port: ports[victim] })
        await Promise.all(later.map(side => newEditor(victim, side)))
        await progress(`round ${round}, after restarting Mapline node ${victim}`)
      } else {
        const node = kind === 'leader'
          ? await engine.waitStreamLeader(STREAM)
          : (await engine.followers(STREAM))[0]
        victim = node.name
        await engine.kill9(node)
        await progress(`round ${round}, with ${kind} ${victim} down`)
        await engine.restart(node)
      }
      const where = ['a', 'b'].map(n => `${n}: ${editors.filter(e => e.node === n).length}`).join(', ')
      t.diagnostic(`round ${round}: killed ${kind} ${victim}; ${ackedSoFar()} acknowledged so far; clients ${where}; ${Math.round((Date.now() - started) / 1000)} s`)
    }
    for (const e of editors) e.stop()
    // Every edit a live client made is acknowledged in the end ("all changes saved").
    await waitFor(() => editors.every(e => e.pending.length === 0), { timeout: 60000, what: 'every client\'s last edits to be acknowledged' })
    assert.equal(editors.reduce((s, e) => s + e.acked.size, 0), editors.reduce((s, e) => s + e.sent(), 0))
    assert.deepEqual([...editors, ...retired].flatMap(e => e.refused), [], 'no edit was refused')
    const acked = [...editors, ...retired].flatMap(e => [...e.acked])
    destroy(...editors)

    // Every node serves the same plan, with every acknowledged edit in it.
    const served = async node => JSON.stringify(await get(node, `/api/plans/${plan.id}`))
    const converged = async list => {
      const plans = await Promise.all(list.map(served))
      if (new Set(plans).size !== 1) return false
      const ids = new Set(JSON.parse(plans[0]).plan.milestones.map(m => m.id))
      return acked.every(key => ids.has(key)) && plans[0]
    }
    await waitFor(() => converged([nodes.a, nodes.b]), { timeout: 30000, what: 'A and B to serve the same plan with every acknowledged edit' })
    const finalPlan = JSON.parse(await served(nodes.a))
    const missing = acked.filter(key => !finalPlan.plan.milestones.some(m => m.id === key))
    assert.deepEqual(missing, [], 'acknowledged edits missing from the served plan')

    // History: the same on both nodes, each edit derived exactly once.
    const historyOf = async node => JSON.stringify(await wholeHistory(node, plan.id))
    const sameHistory = async list => {
      const all = await Promise.all(list.map(historyOf))
      const entries = JSON.parse(all[0])
      return new Set(all).size === 1 && entries.length > 0 && entries[0].seq === finalPlan.seq && all[0]
    }
    const history = JSON.parse(await waitFor(() => sameHistory([nodes.a, nodes.b]), { timeout: 30000, what: 'A and B to serve the same history up to the plan\'s position' }))
    const created = new Map()
    for (const entry of history) {
      for (const change of entry.changes) {
        if (change.kind === 'created' && change.entity === 'milestones') created.set(change.entityId, (created.get(change.entityId) ?? 0) + 1)
      }
    }
    assert.deepEqual(acked.filter(key => created.get(key) !== 1), [], 'each acknowledged edit is created exactly once in history')

    // No update stored twice: every stored update changed something, so it has a history
    // entry of its own (an update stored again changes nothing and would have none).
    const verified = async node => get(node, `/api/plans/${plan.id}/verify`)
    const [va, vb] = [await verified(nodes.a), await verified(nodes.b)]
    for (const v of [va, vb]) {
      assert.equal(v.ok, true, JSON.stringify(v.problems))
      assert.equal(v.updates, v.entries, `stored updates ${v.updates} vs history entries ${v.entries}: an update was stored twice`)
      assert.equal(v.entries, history.length)
    }
    assert.equal(va.head, vb.head, 'the same history hash chain on both nodes')
    const audit = await get(nodes.a, `/api/plans/${plan.id}/audit.json`)
    const updateHashes = audit.entries.map(entry => entry.update)
    assert.equal(new Set(updateHashes).size, updateHashes.length, 'no stored update twice in the audit export')

    // A third node from an empty file applies the whole log and derives history from scratch:
    // the same plan, the same history, byte for byte (the same head).
    nodes.c = await startNode(engine, 'c', data.c.file)
    await waitFor(() => converged([nodes.a, nodes.b, nodes.c]), { timeout: 60000, what: 'C to serve the same plan' })
    await waitFor(() => sameHistory([nodes.a, nodes.b, nodes.c]), { timeout: 60000, what: 'C to serve the same history' })
    const vc = await verified(nodes.c)
    assert.equal(vc.ok, true, JSON.stringify(vc.problems))
    assert.deepEqual([vc.updates, vc.entries, vc.head], [va.updates, va.entries, va.head])
    // No node saw another node's history differ from its own (compared through KV).
    for (const [name, node] of Object.entries(nodes)) {
      assert.equal(await metric(node, 'mapline_cluster_history_mismatches_total'), 0, `history mismatches on ${name}`)
      assert.doesNotMatch(node.output().stderr, /ALARM/, `node ${name} logged an alarm`)
    }
    // And it is what `mapline rebuild-history` derives from the log in a node's file: A,
    // stopped, checks its stored history against a rebuild and finds no difference.
    assert.equal((await nodes.a.stop()).code, 0, 'A stops cleanly')
    const rebuilt = await run(['rebuild-history', '--data', data.a.file, '--check', '--json'])
    assert.equal(rebuilt.code, 0, `rebuild-history --check on A's file:\n${rebuilt.output}`)
    const report = rebuilt.output.split('\n').filter(line => line.startsWith('{')).map(line => JSON.parse(line))
    const mine = report.find(r => r.plan_id === plan.id || r.planId === plan.id)
    assert.ok(mine, `a report for the plan:\n${rebuilt.output}`)
    assert.deepEqual([mine.missing, mine.extra, mine.differing], [[], [], []], JSON.stringify(mine))
    assert.equal(mine.entries, history.length, JSON.stringify(mine))
    t.diagnostic(`${acked.length} acknowledged edits, ${history.length} history entries, ${Math.round((Date.now() - started) / 1000)} s`)
  } catch (err) {
    const out = Object.entries(nodes).map(([name, node]) => `--- mapline ${name} stderr (tail) ---\n${node.output().stderr.slice(-3000)}`).join('\n')
    err.message += `\n${out}\n${engine.logs()}`
    throw err
  } finally {
    for (const e of [...editors, ...retired]) e.stop()
    destroy(...editors, ...retired)
    await Promise.all(Object.values(nodes).map(node => node.kill9()))
    await engine.stop()
    for (const d of Object.values(data)) d.cleanup()
  }
})

/** Runs a `mapline` command to its end: { code, output (stdout and stderr) }. */
function run (args) {
  const proc = spawn(binary, args, { env: { ...process.env, MAPLINE_LOG: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  proc.stdout.on('data', chunk => { output += chunk })
  proc.stderr.on('data', chunk => { output += chunk })
  return within(new Promise(resolve => proc.on('close', code => resolve({ code, output }))), { timeout: 60000, what: `mapline ${args[0]}` })
}

/** Starts `mapline serve` without waiting for it to listen; collects its output. */
function spawnServe (args, dataFile) {
  const proc = spawn(binary, ['serve', '--addr', '127.0.0.1:0', '--data', dataFile, '--admin-token', ADMIN_TOKEN, ...args],
    { env: { ...process.env, MAPLINE_LOG: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  proc.stdout.on('data', chunk => { output += chunk })
  proc.stderr.on('data', chunk => { output += chunk })
  const exited = new Promise(resolve => proc.on('exit', (code, signal) => resolve({ code, signal })))
  return { proc, exited, output: () => output }
}

test('--cluster on a URL nothing listens on says it is waiting for the engine and keeps retrying', async () => {
  const [port] = await freePorts(1)
  const data = tempData()
  const node = spawnServe(['--cluster', `nats://127.0.0.1:${port}`, '--node-id', 'lonely'], data.file)
  try {
    const retries = () => node.output().match(/not ready yet; retrying/g)?.length ?? 0
    await Promise.race([
      waitFor(() => retries() >= 2, { timeout: 30000, what: 'two "not ready yet; retrying" log lines' }),
      node.exited.then(({ code, signal }) => { throw new Error(`exited (${code ?? signal}) instead of waiting:\n${node.output()}`) })
    ])
    assert.equal(node.proc.exitCode, null, 'still running, still waiting')
    assert.doesNotMatch(node.output(), /listening on/)
  } finally {
    node.proc.kill('SIGKILL')
    await node.exited
    data.cleanup()
  }
})

test('--cluster refuses engine nodes that do not fsync before acknowledging, naming the setting', async () => {
  const lax = await startNats(3, { syncAlways: false })
  const data = tempData()
  const node = spawnServe(['--cluster', lax.urls, '--nats-monitor', lax.monitors, '--node-id', 'careful'], data.file)
  try {
    const exit = await within(node.exited, { timeout: 60000, what: 'the node to refuse the engine and exit' })
      .catch(err => { throw new Error(`${err.message}:\n${node.output()}`) })
    assert.notEqual(exit.code, 0, `exit ${JSON.stringify(exit)}:\n${node.output()}`)
    assert.equal(exit.signal, null)
    assert.match(node.output(), /sync_interval: always/)
    assert.doesNotMatch(node.output(), /listening on/)
  } finally {
    node.proc.kill('SIGKILL')
    await node.exited
    await lax.stop()
    data.cleanup()
  }
})
