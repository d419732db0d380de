// Integrity for anyone who may read a plan: the server verifies the plan's hash chain, and the
// audit export carries the chain so `mapline verify-audit` (or anyone with SHA-256) re-checks it
// offline; a changed byte is found and the entry named.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  startServer, tempData, createPlan, mintShare, client, synced, destroy, waitFor, api, binary
} from './lib/harness.js'

const milestone = (c, id) => c.map('milestones').get(id)

function moveDue (c, id, due, reason) {
  c.doc.transact(() => {
    milestone(c, id).set('due', due)
    milestone(c, id).set('slipReason', reason)
  })
}

/** A plan with a few edits by both sides, once their history is stored. */
async function editedPlan (server) {
  const plan = await createPlan(server, { template: 'enterprise' })
  const buyer = client(server, plan.id, plan.buyer)
  const seller = client(server, plan.id, plan.seller)
  await Promise.all([synced(buyer), synced(seller)])
  const historyHas = (entries, what) => waitFor(async () => {
    const { body } = await api(server, 'GET', `/api/plans/${plan.id}/history?limit=500`)
    return body.entries?.length >= entries
  }, { what })
  // The buyer's move first and on record before the seller's edits: two sockets' updates
  // reach the log in either order, and the tamper test needs an entry after the move.
  moveDue(buyer, 'ms-security-review', '2027-02-01', 'Security team is out')
  await historyHas(2, 'the buyer\'s move stored')
  moveDue(seller, 'ms-training', '2027-03-22', 'Trainer availability')
  seller.doc.transact(() => milestone(seller, 'ms-kickoff').set('status', 'done'))
  await historyHas(4, 'the edits\' history stored')
  destroy(buyer, seller)
  return plan
}

async function download (server, plan, token) {
  const response = await fetch(`${server.url}/api/plans/${plan.id}/audit.json`, { headers: { authorization: `Bearer ${token}` } })
  return { response, text: await response.text() }
}

function verifyAudit (dir, name, text) {
  const file = join(dir, name)
  writeFileSync(file, text)
  return spawnSync(binary, ['verify-audit', file], { encoding: 'utf8' })
}

test('verify: a plan with edits checks out, with its head hash', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file })
  const plan = await editedPlan(server)
  const { status, body } = await api(server, 'GET', `/api/plans/${plan.id}/verify`, { token: plan.buyer })
  assert.equal(status, 200)
  assert.equal(body.ok, true, JSON.stringify(body.problems))
  assert.deepEqual(body.problems, [])
  const history = (await api(server, 'GET', `/api/plans/${plan.id}/history?limit=500`)).body.entries
  assert.equal(body.entries, history.length)
  assert.match(body.head, /^[0-9a-f]{64}$/)
  await server.stop()
  data.cleanup()
})

test('the audit export re-verifies offline, by mapline verify-audit and by plain SHA-256', async () => {
  const data = tempData()
  const dir = mkdtempSync(join(tmpdir(), 'mapline-audit-'))
  const server = await startServer({ dataFile: data.file })
  const plan = await editedPlan(server)
  const { response, text } = await download(server, plan, plan.buyer)
  assert.equal(response.status, 200)
  assert.match(response.headers.get('content-disposition'), new RegExp(`^attachment; filename="mapline-audit-${plan.id}\\.json"`))
  const audit = JSON.parse(text)
  assert.equal(audit.format, 'mapline.audit.v1')
  assert.equal(audit.planId, plan.id)
  assert.ok(!Number.isNaN(Date.parse(audit.exportedAt)))
  const verified = (await api(server, 'GET', `/api/plans/${plan.id}/verify`)).body
  assert.equal(audit.head, verified.head, 'the export ends at the head the server verified')

  // The entries are the history, oldest first, each with who, what and the chain.
  const history = (await api(server, 'GET', `/api/plans/${plan.id}/history?limit=500`)).body.entries.reverse()
  assert.deepEqual(audit.entries.map(e => e.seq), history.map(e => e.seq))
  for (const [i, entry] of audit.entries.entries()) {
    assert.deepEqual([entry.at, entry.who, entry.changes, entry.slips], [history[i].at, history[i].who, history[i].changes, history[i].slips])
    // What docs/api.md tells a third party to do: SHA-256 of the record's bytes is its hash,
    // `prev` is the hash before it (zeros first) and is also the record's last 32 bytes.
    const bytes = Buffer.from(entry.record, 'base64')
    assert.equal(createHash('sha256').update(bytes).digest('hex'), entry.hash)
    assert.equal(entry.prev, i === 0 ? '0'.repeat(64) : audit.entries[i - 1].hash)
    assert.equal(bytes.subarray(bytes.length - 32).toString('hex'), entry.prev)
  }
  assert.equal(audit.head, audit.entries.at(-1).hash)

  const ok = verifyAudit(dir, 'audit.json', text)
  assert.equal(ok.status, 0, ok.stdout + ok.stderr)
  assert.match(ok.stdout, new RegExp(`^ok: ${audit.entries.length} entries, head ${audit.head}`))
  await server.stop()
  rmSync(dir, { recursive: true, force: true })
  data.cleanup()
})

test('a tampered export fails and names the entry', async () => {
  const data = tempData()
  const dir = mkdtempSync(join(tmpdir(), 'mapline-audit-'))
  const server = await startServer({ dataFile: data.file })
  const plan = await editedPlan(server)
  const { text } = await download(server, plan, plan.seller)
  const audit = JSON.parse(text)
  const target = audit.entries.find(e => e.slips.some(s => s.milestoneId === 'ms-security-review'))
  assert.ok(target, 'the buyer\'s move is in the export')

  // One byte of the shown date: the record no longer holds what the entry shows.
  const moved = text.replace('"new": "2027-02-01"', '"new": "2027-02-08"')
  assert.equal(moved.length, text.length)
  assert.notEqual(moved, text)
  const shown = verifyAudit(dir, 'shown.json', moved)
  assert.equal(shown.status, 1, shown.stdout + shown.stderr)
  assert.match(shown.stdout, new RegExp(`^bad: entry \\d+ \\(seq ${target.seq}\\): its \`changes\` are not the ones its record holds`))

  // One byte of the record itself: its hash no longer matches.
  const record = target.record
  const i = Math.floor(record.length / 2)
  const flipped = record.slice(0, i) + (record[i] === 'A' ? 'B' : 'A') + record.slice(i + 1)
  const recorded = verifyAudit(dir, 'record.json', text.replace(record, flipped))
  assert.equal(recorded.status, 1, recorded.stdout + recorded.stderr)
  assert.match(recorded.stdout, new RegExp(`^bad: entry \\d+ \\(seq ${target.seq}\\): its \`hash\` is not the SHA-256 of its \`record\``))

  // A rehashed forgery still breaks the link to the next entry.
  const forged = JSON.parse(text)
  const index = forged.entries.findIndex(e => e.seq === target.seq)
  const bytes = Buffer.from(forged.entries[index].record, 'base64')
  bytes[Math.floor(bytes.length / 2)] ^= 1
  forged.entries[index].record = bytes.toString('base64')
  forged.entries[index].hash = createHash('sha256').update(bytes).digest('hex')
  const next = forged.entries[index + 1]
  const relinked = verifyAudit(dir, 'forged.json', JSON.stringify(forged))
  assert.equal(relinked.status, 1)
  assert.ok(next, 'the target is not the last entry')
  assert.match(relinked.stdout, new RegExp(`\\(seq (${target.seq}|${next.seq})\\)`))
  await server.stop()
  rmSync(dir, { recursive: true, force: true })
  data.cleanup()
})

test('any link of the plan may verify and export; a link for another plan or none may not', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file })
  const plan = await createPlan(server)
  const other = await createPlan(server)
  const viewer = await mintShare(server, plan.id, { side: 'buyer', role: 'viewer' })
  for (const path of ['verify', 'audit.json']) {
    for (const token of [plan.buyer, plan.seller, viewer]) {
      assert.equal((await api(server, 'GET', `/api/plans/${plan.id}/${path}`, { token })).status, 200, path)
    }
    const wrong = await api(server, 'GET', `/api/plans/${plan.id}/${path}`, { token: other.buyer })
    assert.deepEqual([wrong.status, wrong.body?.error?.code], [403, 'wrong_plan'], path)
    const none = await api(server, 'GET', `/api/plans/${plan.id}/${path}`, { token: null })
    assert.deepEqual([none.status, none.body?.error?.code], [401, 'missing_token'], path)
    const missing = await api(server, 'GET', `/api/plans/01890000-0000-7000-8000-000000000000/${path}`)
    assert.deepEqual([missing.status, missing.body?.error?.code], [404, 'plan_not_found'], path)
  }
  // A new plan's export: its creation entry alone, and it verifies.
  const fresh = (await api(server, 'GET', `/api/plans/${other.id}/audit.json`, { token: other.buyer })).body
  assert.equal(fresh.entries.length, 1)
  assert.equal(fresh.entries[0].prev, '0'.repeat(64))
  await server.stop()
  data.cleanup()
})

test('a review mark is the position the reviewer was shown, clamped to the head; bad positions are refused', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file })
  const plan = await editedPlan(server)
  const path = `/api/plans/${plan.id}/reviews`
  const last = async () => (await api(server, 'GET', `${path}/last`, { token: plan.buyer })).body.seq
  const mark = (options) => api(server, 'POST', path, { token: plan.buyer, ...options })

  // Without a position: the log's head, as before.
  const head = (await api(server, 'GET', `/api/plans/${plan.id}`)).body.seq
  assert.ok(head >= 4, `head ${head}`)
  const bare = await mark({})
  assert.deepEqual([bare.status, bare.body.seq], [200, head], JSON.stringify(bare.body))
  assert.equal((await mark({ body: {} })).body.seq, head)
  assert.equal((await mark({ body: { seq: null } })).body.seq, head)

  // What the reviewer was shown: a change relayed meanwhile stays unreviewed.
  const shown = await mark({ body: { seq: 2 } })
  assert.deepEqual([shown.status, shown.body.seq], [200, 2], JSON.stringify(shown.body))
  assert.equal(await last(), 2)
  assert.equal((await mark({ body: { seq: 0 } })).body.seq, 0)
  // Never past the head: a mark covers no change that does not exist yet.
  assert.equal((await mark({ body: { seq: head + 1000 } })).body.seq, head)
  assert.equal(await last(), head)
  assert.equal((await mark({ body: { seq: 3 } })).body.seq, 3)

  // Bad positions and bodies: a clear error, and the mark stays where it was.
  for (const [options, status, code] of [
    [{ body: { seq: -1 } }, 422, 'invalid_field'],
    [{ body: { seq: 1.5 } }, 422, 'invalid_field'],
    [{ body: { seq: '2' } }, 422, 'invalid_field'],
    [{ body: { seq: true } }, 422, 'invalid_field'],
    [{ body: { seq: 2, at: 'now' } }, 422, 'invalid_body'],
    [{ body: [2] }, 422, 'invalid_body'],
    [{ raw: '{"seq":', headers: { 'content-type': 'application/json' } }, 400, 'invalid_json'],
    [{ raw: '{"seq":2}', headers: { 'content-type': 'text/plain' } }, 415, 'unsupported_media_type']
  ]) {
    const refused = await mark(options)
    assert.deepEqual([refused.status, refused.body?.error?.code], [status, code], JSON.stringify(options))
  }
  assert.equal(await last(), 3)
  await server.stop()
  data.cleanup()
})

test('verify-audit refuses a forged author, a value of another type, a changed slip title, an unknown key or update hash', async () => {
  const data = tempData()
  const dir = mkdtempSync(join(tmpdir(), 'mapline-audit-'))
  const server = await startServer({ dataFile: data.file })
  const plan = await editedPlan(server)
  const { text } = await download(server, plan, plan.seller)
  const audit = JSON.parse(text)
  const buyerAt = audit.entries.findIndex(e => e.slips.some(s => s.milestoneId === 'ms-security-review'))
  const buyerEntry = audit.entries[buyerAt]
  const sellerEntry = audit.entries.find(e => e.who.kind === 'share' && e.who.side === 'seller')
  assert.ok(buyerAt >= 0 && sellerEntry, 'a buyer entry and a seller entry')
  assert.equal(buyerEntry.who.side, 'buyer')
  const created = audit.entries.findIndex(e => e.changes.some(c => c.field === null))
  assert.ok(created >= 0, 'an entry that creates something (field null)')

  const check = (name, forge) => {
    const forged = JSON.parse(text)
    forge(forged)
    return verifyAudit(dir, `${name}.json`, JSON.stringify(forged))
  }
  const refused = (name, at, forge, why) => {
    const result = check(name, forge)
    assert.equal(result.status, 1, `${name}: ${result.stdout}${result.stderr}`)
    assert.match(result.stdout, new RegExp(`^bad: entry ${at} \\(seq ${audit.entries[at].seq}\\): ${why}`), name)
  }
  // The buyer's move, claimed by the seller's link: same record, another author.
  refused('side', buyerAt, f => { f.entries[buyerAt].who.side = 'seller' }, 'its `who` `side` is not the author')
  refused('share', buyerAt, f => { f.entries[buyerAt].who.shareId = sellerEntry.who.shareId }, 'its `who` `shareId` is not the author')
  refused('admin', buyerAt, f => { f.entries[buyerAt].who = { kind: 'admin' } }, 'its `who` `kind` is not the author')
  refused('slip-who', buyerAt, f => { f.entries[buyerAt].slips[0].who.side = 'seller' }, 'its `slips`: slip 0: `who` `side`')
  // A slip's title, shown differently from the record.
  refused('title', buyerAt, f => { f.entries[buyerAt].slips[0].title = 'Something else' }, 'its `slips` are not the ones its record holds')
  // A null in the record let any non-string through: the field of a created entry.
  refused('type', created, f => { f.entries[created].changes.find(c => c.field === null).field = 42 }, 'its `changes` are not the ones its record holds')
  refused('reason', buyerAt, f => { f.entries[buyerAt].slips[0].reason = { approved: true } }, 'its `slips` are not the ones its record holds')
  // Keys the record does not hold.
  refused('entry-key', buyerAt, f => { f.entries[buyerAt].approvedBy = 'Legal' }, 'it has an unknown key `approvedBy`')
  refused('change-key', buyerAt, f => { f.entries[buyerAt].changes[0].note = 'agreed' }, 'its `changes` are not the ones its record holds')
  refused('who-key', buyerAt, f => { f.entries[buyerAt].who.role = 'editor' }, 'its `who` has an unknown key `role`')
  // The update hash the record commits to.
  refused('update', buyerAt, f => { f.entries[buyerAt].update = '0'.repeat(64) }, 'its `update` is not the update hash its record holds')
  // An export-level key.
  const extra = check('export-key', f => { f.signedBy = 'Mapline' })
  assert.equal(extra.status, 1)
  assert.match(extra.stdout, /unknown key `signedBy`/)

  // Names are not in the records (a link's label can change): they are not covered.
  const relabelled = check('label', f => { f.entries[buyerAt].who.label = 'Someone else' })
  assert.equal(relabelled.status, 0, relabelled.stdout + relabelled.stderr)
  await server.stop()
  rmSync(dir, { recursive: true, force: true })
  data.cleanup()
})

test('verify-audit --head ties an export to a trusted head; --extends proves an older copy is still in the chain', async () => {
  const data = tempData()
  const dir = mkdtempSync(join(tmpdir(), 'mapline-audit-'))
  const server = await startServer({ dataFile: data.file })
  const plan = await editedPlan(server)
  const run = (...args) => spawnSync(binary, ['verify-audit', ...args], { encoding: 'utf8' })
  const save = (name, text) => { const file = join(dir, name); writeFileSync(file, text); return file }
  const old = save('old.json', (await download(server, plan, plan.buyer)).text)
  const oldHead = JSON.parse((await download(server, plan, plan.buyer)).text).head

  // One more change, then a newer export.
  const buyer = client(server, plan.id, plan.buyer)
  await synced(buyer)
  moveDue(buyer, 'ms-security-review', '2027-02-15', 'Pen test moved')
  await waitFor(async () => (await api(server, 'GET', `/api/plans/${plan.id}/verify`)).body.head !== oldHead,
    { what: 'the new change stored' })
  destroy(buyer)
  const trusted = (await api(server, 'GET', `/api/plans/${plan.id}/verify`, { token: plan.buyer })).body.head
  const current = save('new.json', (await download(server, plan, plan.buyer)).text)

  const ok = run(current, '--head', trusted.toUpperCase(), '--extends', old)
  assert.equal(ok.status, 0, ok.stdout + ok.stderr)
  assert.match(ok.stdout, /^ok: \d+ entries, head [0-9a-f]{64}\nthe head is the trusted one\nit extends /)

  // A self-consistent export that is not the plan's current history: the head gives it away.
  const stale = run(old, '--head', trusted)
  assert.equal(stale.status, 1, stale.stdout + stale.stderr)
  assert.match(stale.stdout, new RegExp(`^bad: head: its head ${oldHead} is not the trusted head ${trusted}`))
  const notHex = run(current, '--head', 'abc')
  assert.equal(notHex.status, 1)
  assert.match(notHex.stdout, /^bad: head: `abc` is not a SHA-256/)

  // The older copy's entries must all be there: a shorter chain, or another plan's, is not.
  const shorter = run(old, '--extends', current)
  assert.equal(shorter.status, 1, shorter.stdout + shorter.stderr)
  assert.match(shorter.stdout, /^bad: extends .*entries were removed/)
  const other = await createPlan(server)
  const otherFile = save('other.json', (await download(server, other, other.buyer)).text)
  const unrelated = run(otherFile, '--extends', old)
  assert.equal(unrelated.status, 1, unrelated.stdout + unrelated.stderr)
  assert.match(unrelated.stdout, /^bad: extends .*(entries were removed|is not in this one)/)
  await server.stop()
  rmSync(dir, { recursive: true, force: true })
  data.cleanup()
})
