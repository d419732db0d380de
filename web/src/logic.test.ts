// Unit tests of the page's own logic: dates, ordering keys, links, the sync status, reading and
// editing the document, the timeline. No browser needed: these run in Node (vitest).
import { describe, expect, test } from 'vitest'
import * as Y from 'yjs'
import { count, datePattern, dayNumber, daysBetween, formatDate, formatShortDate, isoDate, parseDate, relativeDays, signedDays, timeAgo } from './dates'
import { FIRST_KEY, keyBetween } from './order'
import { absoluteLink, linkEndOfClose, linkEndOfError, parseShareLink, refusesLink } from './link'
import { covers, isUpdateMessage, learnDurable, mergeVectors, syncStatus, type SyncFacts } from './sync-status'
import { byWorkstream, describeField, ownerName, readPlan, slipSummary } from './plan-view'
import { applyDelta, mapPosition, minimalDiff, spliceDelta, type TextDelta } from './text-binding'
import { isProse, proseFields } from './schema'
import { activeConflicts, conflictWords, conflictsOf, takesBack } from './conflicts'
import { undoShortcut } from './undo'
import * as edit from './edits'
import { layoutTimeline, milestoneStates, monthTicks } from './timeline'
import { lineageOrder } from './lineage'
import { subscriptionUrl } from './api'
import type { Health, Slip } from './api'
import { healthSentences } from './health-words'

describe('dates', () => {
  test('only real calendar dates in YYYY-MM-DD are dates', () => {
    expect(dayNumber('2027-04-01')).toBe(20909)
    expect(isoDate(20909)).toBe('2027-04-01')
    for (const bad of ['2027-02-30', '2027-4-1', 'next week', '', 20909, null, '2027-13-01']) expect(dayNumber(bad)).toBeNull()
    expect(dayNumber('2028-02-29')).not.toBeNull()
  })
  test('differences are signed days, and words read naturally', () => {
    expect(daysBetween('2027-01-15', '2027-02-01')).toBe(17)
    expect(daysBetween('2027-02-01', '2027-01-15')).toBe(-17)
    expect(daysBetween('2027-02-01', 'soon')).toBeNull()
    expect(formatDate('2027-02-03', 'en-US')).toBe('02/03/2027')
    expect(formatDate('2027-02-03', 'en-GB')).toBe('03/02/2027')
    expect(formatShortDate('2027-02-03', 'en-GB')).toBe('03/02')
    expect([datePattern('en-US'), datePattern('en-GB'), datePattern('de-DE')]).toEqual(['MM/DD/YYYY', 'DD/MM/YYYY', 'DD.MM.YYYY'])
    expect([parseDate('4/15/2027', 'en-US'), parseDate('15/04/2027', 'en-GB'), parseDate('15.4.27', 'de-DE'), parseDate('2027-04-15', 'en-GB')])
      .toEqual(['2027-04-15', '2027-04-15', '2027-04-15', '2027-04-15'])
    expect([parseDate('04/15/2027', 'en-GB'), parseDate('1', 'en-US'), parseDate('02/30/2027', 'en-US'), parseDate('4/15/227', 'en-US')]).toEqual([null, null, null, null])
    expect([count(1, 'milestone'), count(0, 'milestone'), count(3, 'day')]).toEqual(['1 milestone', '0 milestones', '3 days'])
    expect(formatDate('not a date')).toBe('not a date')
    expect([relativeDays(0), relativeDays(1), relativeDays(-1), relativeDays(5), relativeDays(-3)])
      .toEqual(['today', 'tomorrow', 'yesterday', 'in 5 days', '3 days ago'])
    expect([signedDays(17), signedDays(-1), signedDays(null)]).toEqual(['17 days later', '1 day earlier', 'date cleared'])
    const now = Date.parse('2026-11-22T12:00:00Z')
    expect(timeAgo('2026-11-22T11:58:00Z', now)).toBe('2 min ago')
    expect(timeAgo('2026-11-20T12:00:00Z', now)).toBe('2 days ago')
    expect(timeAgo(null, now)).toBe('never')
  })
})

describe('ordering keys', () => {
  test('a key between two keys sorts between them, as text', () => {
    const pairs: Array<[string | null, string | null]> = [[null, null], [null, 'a0'], ['a0', null], ['a0', 'a1'], ['a0', 'a0V'], ['V', 'W'], ['zz', null], [null, '1'], ['a', 'b']]
    for (const [lo, hi] of pairs) {
      const key = keyBetween(lo, hi)
      if (lo !== null) expect(key > lo, `${key} > ${lo}`).toBe(true)
      if (hi !== null) expect(key < hi, `${key} < ${hi}`).toBe(true)
    }
  })
  test('a thousand inserts at random places keep a strict order and short keys', () => {
    let seed = 42
    const random = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 }
    const keys = [FIRST_KEY]
    for (let i = 0; i < 1000; i++) {
      const at = Math.floor(random() * (keys.length + 1))
      keys.splice(at, 0, keyBetween(keys[at - 1] ?? null, keys[at] ?? null))
    }
    for (let i = 1; i < keys.length; i++) expect(keys[i - 1] < keys[i]).toBe(true)
    expect(Math.max(...keys.map(k => k.length))).toBeLessThan(30)
  })
  test('keys out of order (concurrent inserts) still give a key after the first', () => {
    expect(keyBetween('b', 'a') > 'b').toBe(true)
    expect(keyBetween('a', 'a') > 'a').toBe(true)
  })
})

describe('share links', () => {
  const plan = '01a2059a-d9f0-74c0-b4ee-bd9b3075a75d'
  test('the plan comes from the path and the token from the fragment', () => {
    expect(parseShareLink(`/p/${plan}`, '#token=s_abc')).toEqual({ planId: plan, token: 's_abc' })
    expect(parseShareLink(`/p/${plan.toUpperCase()}/`, '#token=s_abc&x=1')).toEqual({ planId: plan, token: 's_abc' })
    expect(parseShareLink(`/p/${plan}`, '')).toBe('no_token')
    expect(parseShareLink(`/p/${plan}`, '#token=')).toBe('no_token')
    expect(parseShareLink('/p/not-a-plan', '#token=s_abc')).toBe('no_plan')
    expect(parseShareLink('/', '#token=s_abc')).toBe('no_plan')
  })
  test('relative links from the server become absolute', () => {
    expect(absoluteLink('/p/x#token=t', 'http://localhost:8080')).toBe('http://localhost:8080/p/x#token=t')
    expect(absoluteLink('https://plans.example.com/p/x#token=t', 'http://localhost')).toBe('https://plans.example.com/p/x#token=t')
  })
  test('an ended link says why: revoked, expired, or not valid at all', () => {
    expect(linkEndOfClose('this share link was revoked')).toBe('revoked')
    expect(linkEndOfClose('this share link has expired')).toBe('expired')
    expect(linkEndOfClose('')).toBe('revoked')
    expect(['share_revoked', 'share_expired', 'invalid_token', 'missing_token', 'wrong_plan', 'plan_not_found'].map(linkEndOfError))
      .toEqual(['revoked', 'expired', 'invalid', 'invalid', 'invalid', 'invalid'])
  })
  test('only Mapline\'s own refusals end a link: a proxy\'s 404 or a server error wipes nothing', () => {
    expect(refusesLink(401, 'share_revoked')).toBe(true)
    expect(refusesLink(403, 'wrong_plan')).toBe(true)
    expect(refusesLink(404, 'plan_not_found')).toBe(true)
    expect(refusesLink(404, 'http_error')).toBe(false)
    expect(refusesLink(404, 'not_found')).toBe(false)
    expect(refusesLink(500, 'internal')).toBe(false)
    expect(refusesLink(503, 'storage_unavailable')).toBe(false)
  })
})

describe('sync status', () => {
  const live: SyncFacts = { online: true, connected: true, synced: true, sent: 1, acknowledged: 1, covered: true, closedForGood: false, firstAttempt: false, readOnly: false }
  test('saved only when every sent update is acknowledged and the durable state covers ours', () => {
    expect(syncStatus(live)).toBe('saved')
    expect(syncStatus({ ...live, sent: 3, acknowledged: 2 })).toBe('syncing')
    expect(syncStatus({ ...live, covered: false })).toBe('syncing')
    expect(syncStatus({ ...live, synced: false })).toBe('syncing')
    expect(syncStatus({ ...live, sent: 0, acknowledged: 0 })).toBe('syncing')
  })
  test('offline, connecting, view only and revoked', () => {
    expect(syncStatus({ ...live, online: false })).toBe('offline')
    expect(syncStatus({ ...live, connected: false })).toBe('offline')
    expect(syncStatus({ ...live, connected: false, firstAttempt: true })).toBe('connecting')
    expect(syncStatus({ ...live, readOnly: true, sent: 2, acknowledged: 1 })).toBe('live')
    expect(syncStatus({ ...live, closedForGood: true })).toBe('revoked')
  })
  test('state vectors and which messages count', () => {
    expect(covers(new Map([[1, 5], [2, 3]]), new Map([[1, 5]]))).toBe(true)
    expect(covers(new Map([[1, 4]]), new Map([[1, 5]]))).toBe(false)
    expect(covers(new Map(), new Map([[7, 1]]))).toBe(false)
    expect([[0, 0], [0, 1], [0, 2], [1, 0], [0]].map(bytes => isUpdateMessage(new Uint8Array(bytes)))).toEqual([false, true, true, false, false])
  })
  test('durable facts merge clock by clock; what the server sent is durable for the clients it advanced', () => {
    expect(mergeVectors(new Map([[1, 5], [2, 3]]), new Map([[1, 4], [3, 9]]))).toEqual(new Map([[1, 5], [2, 3], [3, 9]]))
    const durable = new Map([[1, 5]])
    // Client 2 advanced (received); client 7, this device, was already at 4 and did not move.
    expect(learnDurable(durable, new Map([[1, 5], [2, 1], [7, 4]]), new Map([[1, 5], [2, 6], [7, 4]]))).toEqual(new Map([[1, 5], [2, 6]]))
    expect(learnDurable(durable, new Map([[7, 4]]), new Map([[7, 4]]))).toBe(durable)
  })

  /** A page's document and what it knows is durable, as session.ts keeps them: the vectors of
   * acknowledgements, and what transactions with the server as origin brought. */
  function page (server: Y.Doc) {
    const doc = new Y.Doc()
    const state = { doc, durable: new Map<number, number>(), sent: 0, acknowledged: 0 }
    doc.on('afterTransaction', (tr: Y.Transaction) => {
      if (tr.origin === 'server') state.durable = learnDurable(state.durable, tr.beforeState, tr.afterState)
    })
    // Joining: the server's state arrives, the page's sync step 2 goes up and is acknowledged.
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(server), 'server')
    state.sent++
    state.acknowledged++
    state.durable = mergeVectors(state.durable, Y.decodeStateVector(Y.encodeStateVector(server)))
    return state
  }
  const statusOf = (p: ReturnType<typeof page>) => syncStatus({ ...live, sent: p.sent, acknowledged: p.acknowledged, covered: covers(p.durable, Y.decodeStateVector(Y.encodeStateVector(p.doc))) })

  test('a page that only received the other side\'s edits is saved, both ways round', () => {
    const server = new Y.Doc()
    server.getMap('meta').set('title', 'Rollout')
    const seller = page(server)
    const buyer = page(server)
    expect([statusOf(seller), statusOf(buyer)]).toEqual(['saved', 'saved'])
    for (const [editor, other] of [[seller, buyer], [buyer, seller], [seller, buyer]]) {
      // The editor sends its edit; the server stores it, acknowledges it and relays it.
      const before = Y.encodeStateVector(server)
      editor.doc.getMap('meta').set('objective', `by ${editor.doc.clientID}`)
      editor.sent++
      expect(statusOf(editor)).toBe('syncing')
      Y.applyUpdate(server, Y.encodeStateAsUpdate(editor.doc, before))
      editor.acknowledged++
      editor.durable = mergeVectors(editor.durable, Y.decodeStateVector(Y.encodeStateVector(server)))
      Y.applyUpdate(other.doc, Y.encodeStateAsUpdate(server, Y.encodeStateVector(other.doc)), 'server')
      expect([statusOf(editor), statusOf(other)]).toEqual(['saved', 'saved'])
    }
  })

  test('receiving others\' edits does not make this device\'s own edits durable', () => {
    const server = new Y.Doc()
    const buyer = page(server)
    const seller = page(server)
    // The buyer's edit is not on the server yet (made while the socket was away, say).
    buyer.doc.getMap('meta').set('objective', 'mine')
    seller.doc.getMap('meta').set('title', 'theirs')
    Y.applyUpdate(server, Y.encodeStateAsUpdate(seller.doc))
    Y.applyUpdate(buyer.doc, Y.encodeStateAsUpdate(server, Y.encodeStateVector(buyer.doc)), 'server')
    expect(statusOf(buyer)).toBe('syncing')
    expect(buyer.durable.has(buyer.doc.clientID)).toBe(false)
  })
})

function planDoc (): Y.Doc {
  const doc = new Y.Doc()
  doc.transact(() => {
    const meta = doc.getMap('meta')
    meta.set('title', 'Rollout')
    meta.set('goLive', '2027-04-01')
    const people = doc.getMap('stakeholders')
    const dev = new Y.Map(); dev.set('name', 'Dev Patel'); dev.set('order', 'a0'); people.set('st-dev', dev)
    const milestones = doc.getMap('milestones')
    const add = (id: string, fields: Record<string, string>, deps: string[] = []) => {
      const m = new Y.Map<unknown>()
      for (const [k, v] of Object.entries(fields)) m.set(k, v)
      const arr = new Y.Array<string>(); arr.push(deps); m.set('dependsOn', arr)
      milestones.set(id, m)
    }
    add('ms-a', { title: 'Scope', workstream: 'technical_validation', due: '2027-01-10', status: 'done', order: 'a0', owner: 'st-dev' })
    add('ms-b', { title: 'Security', workstream: 'security_compliance', due: '2027-02-01', order: 'a1' }, ['ms-a'])
    add('ms-c', { title: 'Sign', workstream: 'legal_procurement', due: '2027-01-20', order: 'a2' }, ['ms-b', 'ms-gone'])
    add('ms-d', { title: 'Party', workstream: 'Celebration', due: 'soon', order: 'a3' })
    milestones.set('junk', 'not a map')
    doc.getMap('meta').set('objective', 42 as unknown as string)
  })
  return doc
}

describe('reading the plan', () => {
  test('collections come in order, wrong values read as null, dangling dependencies drop', () => {
    const plan = readPlan(planDoc())
    expect(plan.milestones.map(m => m.id)).toEqual(['ms-a', 'ms-b', 'ms-c', 'ms-d'])
    expect(plan.meta.objective).toBeNull()
    expect(plan.milestones[2].dependsOn).toEqual(['ms-b'])
    expect(ownerName(plan, 'st-dev')).toBe('Dev Patel')
    expect(ownerName(plan, 'Priya')).toBe('Priya')
    const groups = byWorkstream(plan.milestones, ['technical_validation', 'security_compliance', 'legal_procurement'])
    expect(groups.map(([name]) => name)).toEqual(['technical_validation', 'security_compliance', 'legal_procurement', 'Celebration'])
  })
  test('what someone edits reads as words', () => {
    const plan = readPlan(planDoc())
    expect(describeField(plan, 'milestones.ms-b.due')).toBe('due date of “Security”')
    expect(describeField(plan, 'stakeholders.st-dev.notes')).toBe('notes of “Dev Patel”')
    expect(describeField(plan, 'meta.goLive')).toBe('go-live date')
    expect(describeField(plan, 'meta.title')).toBe('the plan title')
    expect(describeField(plan, 'milestones.gone.due')).toBe('due date')
    expect(describeField(plan, 'whatever')).toBe('whatever')
  })
  test('slip summaries count moves and net days per milestone', () => {
    const slip = (milestoneId: string, days: number | null): Slip => ({ seq: 1, subject: 'milestone', milestoneId, from: null, to: null, days, reason: null, who: { kind: 'admin' }, at: '' })
    expect(slipSummary([slip('ms-a', 5), slip('ms-a', -2), slip('ms-b', 9), slip('ms-a', null)], 'ms-a')).toEqual({ count: 3, days: 3 })
    expect(slipSummary([], 'ms-a')).toEqual({ count: 0, days: 0 })
  })
})

describe('editing the plan', () => {
  test('moving a date writes the date and the reason in one update', () => {
    const doc = planDoc()
    const updates: Uint8Array[] = []
    doc.on('update', (u: Uint8Array) => updates.push(u))
    edit.moveDue(doc, 'ms-b', '2027-02-15', 'Security team away')
    expect(updates).toHaveLength(1)
    const copy = new Y.Doc()
    Y.applyUpdate(copy, Y.encodeStateAsUpdate(planDoc()))
    const m = doc.getMap('milestones').get('ms-b') as Y.Map<unknown>
    expect([m.get('due'), m.get('slipReason')]).toEqual(['2027-02-15', 'Security team away'])
    edit.moveGoLive(doc, '2027-05-01', 'Board moved')
    expect(updates).toHaveLength(2)
    // A go-live move writes its own slip reason; why the date matters is not touched.
    doc.getMap('meta').set('goLiveReason', 'Fiscal year starts')
    edit.moveGoLive(doc, '2027-05-08', 'Board moved again')
    expect([doc.getMap('meta').get('goLive'), doc.getMap('meta').get('goLiveSlipReason'), doc.getMap('meta').get('goLiveReason')])
      .toEqual(['2027-05-08', 'Board moved again', 'Fiscal year starts'])
  })
  test('an unchanged value writes nothing; an empty one clears the field (prose: empties its text)', () => {
    const doc = planDoc()
    const updates: Uint8Array[] = []
    doc.on('update', (u: Uint8Array) => updates.push(u))
    edit.setEntryField(doc, 'milestones', 'ms-a', 'title', 'Scope')
    edit.setRootField(doc, 'meta', 'title', 'Rollout')
    edit.setEntryField(doc, 'milestones', 'ms-a', 'status', 'done')
    expect(updates).toHaveLength(0)
    edit.setEntryField(doc, 'milestones', 'ms-a', 'status', '')
    expect((doc.getMap('milestones').get('ms-a') as Y.Map<unknown>).has('status')).toBe(false)
    edit.setEntryField(doc, 'milestones', 'ms-a', 'title', '')
    expect(readPlan(doc).milestones[0].text.title).toBeNull()
    edit.setEntryField(doc, 'milestones', 'nope', 'title', 'x')
    expect(doc.getMap('milestones').has('nope')).toBe(false)
  })
  test('prose is edited in its Y.Text by the minimal splice; a v1 string becomes a Y.Text on its first edit', () => {
    const doc = planDoc()
    const m = doc.getMap('milestones').get('ms-a') as Y.Map<unknown>
    edit.setEntryField(doc, 'milestones', 'ms-a', 'title', 'Scope call')
    const text = m.get('title')
    expect(text).toBeInstanceOf(Y.Text)
    const deltas: TextDelta[] = []
    ;(text as Y.Text).observe(e => deltas.push(e.delta as TextDelta))
    edit.setEntryField(doc, 'milestones', 'ms-a', 'title', 'Scope kickoff call')
    expect(m.get('title')).toBe(text)
    expect(deltas).toEqual([[{ retain: 6 }, { insert: 'kickoff ' }]])
    expect(readPlan(doc).milestones[0].text.title).toBe('Scope kickoff call')
    // A plain field stays plain.
    edit.setEntryField(doc, 'milestones', 'ms-a', 'status', 'blocked')
    expect(m.get('status')).toBe('blocked')
  })
  test('two people typing in the same note apart both keep what they typed', () => {
    const a = planDoc()
    edit.setEntryField(a, 'milestones', 'ms-b', 'notes', 'Kickoff')
    const b = new Y.Doc()
    Y.applyUpdate(b, Y.encodeStateAsUpdate(a))
    edit.setEntryField(a, 'milestones', 'ms-b', 'notes', 'Kickoff alpha')
    edit.setEntryField(b, 'milestones', 'ms-b', 'notes', 'beta Kickoff')
    Y.applyUpdate(a, Y.encodeStateAsUpdate(b))
    Y.applyUpdate(b, Y.encodeStateAsUpdate(a))
    for (const doc of [a, b]) expect(readPlan(doc).milestones.find(x => x.id === 'ms-b')?.text.notes).toBe('beta Kickoff alpha')
  })
  test('new entries hold their prose fields as Y.Text, and the rest as plain values', () => {
    const doc = planDoc()
    const id = edit.addEntry(doc, 'risks', { text: 'Budget freeze', status: 'open' }, [])
    const entry = doc.getMap('risks').get(id) as Y.Map<unknown>
    for (const field of proseFields('risks')) expect(entry.get(field)).toBeInstanceOf(Y.Text)
    expect((entry.get('text') as Y.Text).toString()).toBe('Budget freeze')
    expect(entry.get('status')).toBe('open')
    expect([isProse('milestones', 'notes'), isProse('milestones', 'due'), isProse('meta', 'goLiveSlipReason'), isProse('stakeholders', 'name')]).toEqual([true, false, false, false])
  })
  test('a stakeholder\'s power and engagement are never read from the plan document', () => {
    const doc = planDoc()
    const dev = doc.getMap('stakeholders').get('st-dev') as Y.Map<unknown>
    dev.set('power', 'blocker'); dev.set('engagement', 'dark')
    const text = readPlan(doc).stakeholders[0].text
    expect([text.name, 'power' in text, 'engagement' in text]).toEqual(['Dev Patel', false, false])
  })
  test('undo takes back only this page\'s edits, a discrete edit as its own step', () => {
    const doc = planDoc()
    const undo = new Y.UndoManager(['meta', 'milestones'].map(n => doc.getMap(n)), { trackedOrigins: new Set([edit.LOCAL]), captureTimeout: 60_000 })
    edit.registerUndo(doc, undo)
    edit.setEntryField(doc, 'milestones', 'ms-b', 'notes', 'Mine')
    edit.setEntryField(doc, 'milestones', 'ms-b', 'status', 'blocked')
    // Someone else's edits arrive (another origin), one of them in the text I started.
    doc.transact(() => (doc.getMap('milestones').get('ms-a') as Y.Map<unknown>).set('status', 'in_progress'), 'remote')
    doc.transact(() => ((doc.getMap('milestones').get('ms-b') as Y.Map<unknown>).get('notes') as Y.Text).insert(4, ' and theirs'), 'remote')
    undo.undo()
    const m = () => readPlan(doc).milestones.find(x => x.id === 'ms-b')?.text
    expect([m()?.status, m()?.notes]).toEqual([undefined, 'Mine and theirs'])
    undo.undo()
    expect(m()?.notes).toBe(' and theirs')
    expect(undo.canUndo()).toBe(false)
    expect(readPlan(doc).milestones[0].text.status).toBe('in_progress')
    undo.redo()
    expect(m()?.notes).toBe('Mine and theirs')
  })
  test('adding, reordering and deleting entries keeps the order and the dependencies right', () => {
    const doc = planDoc()
    const id = edit.addEntry(doc, 'milestones', { title: 'Pilot', workstream: 'technical_validation' }, readPlan(doc).milestones, 'ms-a')
    expect(readPlan(doc).milestones.map(m => m.id)).toEqual(['ms-a', id, 'ms-b', 'ms-c', 'ms-d'])
    edit.moveEntry(doc, 'milestones', id, readPlan(doc).milestones, -1)
    expect(readPlan(doc).milestones.map(m => m.id)).toEqual([id, 'ms-a', 'ms-b', 'ms-c', 'ms-d'])
    edit.moveEntry(doc, 'milestones', 'ms-d', readPlan(doc).milestones, 1)
    expect(readPlan(doc).milestones.map(m => m.id).at(-1)).toBe('ms-d')
    edit.addDependency(doc, 'ms-c', id)
    edit.addDependency(doc, 'ms-c', id)
    edit.addDependency(doc, 'ms-c', 'ms-c')
    expect(readPlan(doc).milestones.find(m => m.id === 'ms-c')?.dependsOn).toEqual(['ms-b', id])
    edit.deleteEntry(doc, 'milestones', 'ms-b')
    const after = readPlan(doc)
    expect(after.milestones.map(m => m.id)).toEqual([id, 'ms-a', 'ms-c', 'ms-d'])
    const raw = (doc.getMap('milestones').get('ms-c') as Y.Map<unknown>).get('dependsOn') as Y.Array<string>
    expect(raw.toArray()).toEqual(['ms-gone', id])
    edit.removeDependency(doc, 'ms-c', id)
    expect(raw.toArray()).toEqual(['ms-gone'])
  })
  test('concurrent edits on two devices merge without losing either', () => {
    const a = planDoc()
    const b = new Y.Doc()
    Y.applyUpdate(b, Y.encodeStateAsUpdate(a))
    edit.moveDue(a, 'ms-b', '2027-02-20', 'A moved it')
    edit.setEntryField(b, 'milestones', 'ms-b', 'notes', 'B wrote this')
    Y.applyUpdate(a, Y.encodeStateAsUpdate(b))
    Y.applyUpdate(b, Y.encodeStateAsUpdate(a))
    for (const doc of [a, b]) {
      const m = readPlan(doc).milestones.find(x => x.id === 'ms-b')
      expect([m?.text.due, m?.text.notes]).toEqual(['2027-02-20', 'B wrote this'])
    }
  })
})

describe('timeline', () => {
  test('states follow the server\'s health rules on this device\'s date', () => {
    const plan = readPlan(planDoc())
    const states = milestoneStates(plan, '2027-01-25')
    expect(Object.fromEntries(states)).toEqual({ 'ms-a': 'done', 'ms-b': 'at_risk', 'ms-c': 'overdue', 'ms-d': 'undated' })
    // Sign is due before Security, which it waits for: impossible, so at risk while not yet due.
    expect(milestoneStates(plan, '2026-12-01').get('ms-c')).toBe('at_risk')
    expect(milestoneStates(plan, '2026-12-01').get('ms-b')).toBe('open')
  })
  test('points sit on their dates, rows per workstream, links from dependency to dependent', () => {
    const plan = readPlan(planDoc())
    const layout = layoutTimeline(plan, '2026-12-01', 1000, ['technical_validation', 'security_compliance', 'legal_procurement'])
    expect(layout.points.map(p => p.id)).toEqual(['ms-a', 'ms-b', 'ms-c'])
    const x = Object.fromEntries(layout.points.map(p => [p.id, p.x]))
    expect(x['ms-a']).toBeLessThan(x['ms-c'])
    expect(x['ms-c']).toBeLessThan(x['ms-b'])
    expect(layout.today).not.toBeNull()
    expect(layout.today! < x['ms-a']).toBe(true)
    expect(layout.goLive! > x['ms-b']).toBe(true)
    expect(layout.goLive! <= 1000).toBe(true)
    expect(layout.rows.map(r => r.workstream)).toEqual(['technical_validation', 'security_compliance', 'legal_procurement'])
    expect(layout.links.map(l => `${l.from}>${l.to}:${l.backwards}`)).toEqual(['ms-a>ms-b:false', 'ms-b>ms-c:true'])
  })
  test('month ticks are first days of months, at most eight', () => {
    const start = dayNumber('2026-11-15')!
    expect(monthTicks(start, dayNumber('2027-02-10')!).map(isoDate)).toEqual(['2026-12-01', '2027-01-01', '2027-02-01'])
    expect(monthTicks(start, dayNumber('2029-11-15')!).length).toBeLessThanOrEqual(8)
  })
})

describe('share lineage', () => {
  const order = (shares: Array<[string, string | null]>): string[] =>
    lineageOrder(shares.map(([id, parentId]) => ({ id, parentId }))).map(({ share, depth }) => `${'-'.repeat(depth)}${share.id}`)
  test('each link comes right after the link it was minted with, indented one deeper', () => {
    expect(order([['a', null], ['b', 'a'], ['d', null], ['c', 'b'], ['e', 'a']])).toEqual(['a', '-b', '--c', '-e', 'd'])
  })
  test('a link whose parent is not listed, or that lists itself, is a root; every link appears once', () => {
    expect(order([['b', 'gone'], ['c', 'b'], ['s', 's']])).toEqual(['b', '-c', 's'])
    expect(order([['x', 'y'], ['y', 'x']])).toEqual(['x', '-y'])
    expect(order([])).toEqual([])
  })
})

describe('subscriptionUrl', () => {
  test('makes the feed from /me a webcal address and keeps its feed token', () => {
    expect(subscriptionUrl('/api/plans/p1/calendar.ics?token=f_abc', 'http://localhost:8080/'))
      .toBe('webcal://localhost:8080/api/plans/p1/calendar.ics?token=f_abc')
    expect(subscriptionUrl('https://plans.example.com/api/plans/p1/calendar.ics?token=f_abc', 'http://localhost:8080/'))
      .toBe('webcals://plans.example.com/api/plans/p1/calendar.ics?token=f_abc')
  })
})

describe('healthSentences', () => {
  const health = (over: Partial<Health> = {}): Health => ({
    verdict: 'at_risk', reasons: ['1 milestone overdue'], overdue: [{ id: 'a', title: 'A', due: '2027-01-01', daysLate: 3 }],
    dueSoon: [], blocked: [], impossible: [], criticalPath: { milestones: [], slackDays: 1 }, goLiveDriftDays: null,
    nextUp: { buyer: { id: 'b', title: 'Sign the order form', due: '2027-02-03', owner: 'Ana', side: 'buyer', status: null }, seller: null },
    daysSinceLastUpdate: 0, stalled: false, ...over
  } as Health)
  test('says the verdict with its reasons, the counts, the time to spare and whose turn it is', () => {
    expect(healthSentences(health())).toEqual([
      'At risk: 1 milestone overdue.',
      '1 step overdue, no steps due this week, no steps blocked.',
      'The longest chain of steps leaves 1 day to spare before go-live.',
      // Dates read one way everywhere: the browser's locale, numerically (02/03/2027 in en-US).
      `Next for the buyer: Sign the order form, due ${formatDate('2027-02-03')} (Ana).`
    ])
    expect(formatDate('2027-02-03', 'en-US')).toBe('02/03/2027')
  })
  test('a go-live overrun reads as days after go-live; no reasons, no colon', () => {
    const words = healthSentences(health({ verdict: 'off_track', reasons: [], overdue: [], criticalPath: { milestones: [], slackDays: -12 } }))
    expect(words.slice(0, 3)).toEqual(['Off track.', 'No steps overdue, no steps due this week, no steps blocked.', 'The longest chain of steps ends 12 days after go-live.'])
  })
})

describe('text binding', () => {
  const check = (before: string, after: string, expected: [number, number, string] | null) => {
    const splice = minimalDiff(before, after)
    expect(splice === null ? null : [splice.index, splice.remove, splice.insert]).toEqual(expected)
    if (splice !== null) expect(before.slice(0, splice.index) + splice.insert + before.slice(splice.index + splice.remove)).toBe(after)
  }
  test('the minimal diff is one delete and one insert between the common prefix and suffix', () => {
    check('same', 'same', null)
    check('', 'abc', [0, 0, 'abc'])
    check('abc', '', [0, 3, ''])
    check('hello world', 'hello brave world', [6, 0, 'brave '])
    check('hello brave world', 'hello world', [6, 6, ''])
    check('abc', 'axc', [1, 1, 'x'])
    // Repeated letters: the prefix takes what it can, the suffix never overlaps it.
    check('aaa', 'aaaa', [3, 0, 'a'])
    check('aaaa', 'aa', [2, 2, ''])
    // A surrogate pair is never split: 😀 and 😃 share their high half.
    check('a😀b', 'a😃b', [1, 2, '😃'])
    check('😀', '😀😀', [2, 0, '😀'])
  })
  const caret = (position: number, delta: TextDelta, expected: number) => expect(mapPosition(position, delta)).toBe(expected)
  test('a caret mapped through a remote delta stays after the same character', () => {
    // 'hello world', caret before 'w' (6).
    caret(6, [{ insert: 'Oh, ' }], 10)
    caret(6, [{ retain: 2 }, { insert: 'XY' }], 8)
    caret(6, [{ retain: 6 }, { insert: 'big ' }], 6)
    caret(6, [{ retain: 8 }, { insert: '!' }], 6)
    caret(6, [{ delete: 6 }], 0)
    caret(6, [{ retain: 1 }, { delete: 2 }], 4)
    caret(6, [{ retain: 4 }, { delete: 4 }], 4)
    caret(6, [{ retain: 6 }, { delete: 5 }], 6)
    caret(6, [{ retain: 2 }, { delete: 1 }, { insert: 'LL' }], 7)
    caret(0, [{ insert: 'x' }], 0)
    expect(mapPosition(6, [{ retain: 6 }, { insert: 'big ' }], true)).toBe(10)
  })
  test('a delta applies to the text it was made for, and only to it', () => {
    expect(applyDelta('hello world', [{ retain: 6 }, { insert: 'big ' }])).toBe('hello big world')
    expect(applyDelta('hello world', [{ delete: 6 }])).toBe('world')
    expect(applyDelta('hi', [{ retain: 5 }])).toBeNull()
    expect(applyDelta('hi', [{ delete: 3 }])).toBeNull()
    const splice = minimalDiff('hello world', 'hello, wide world')!
    expect(applyDelta('hello world', spliceDelta(splice))).toBe('hello, wide world')
  })
})

describe('conflicts', () => {
  const who = (label: string) => ({ kind: 'share' as const, label, side: 'buyer' as const })
  const history = [
    { seq: 9, at: '', who: who('x'), changes: [{ entity: 'milestones', entityId: 'ms-b', field: 'due', kind: 'conflict', kept: { value: '2027-03-19', who: who('Seller team'), at: '2027-01-01T10:00:00Z' }, lost: { value: '2027-03-12', who: who('Buyer team'), at: '2027-01-01T10:05:00Z' } }] },
    { seq: 4, at: '', who: who('x'), changes: [{ entity: 'milestones', entityId: 'ms-b', field: 'due', kind: 'updated', old: null, new: '2027-02-01' }, { entity: 'meta', entityId: null, field: 'goLive', kind: 'conflict', kept: { value: '2027-04-01', who: null, at: null }, lost: { value: '2027-05-01', who: { kind: 'admin' as const }, at: null } }] },
    { seq: 3, at: '', who: who('x'), changes: [{ entity: 'milestones', entityId: 'ms-b', field: 'due', kind: 'conflict', kept: 'garbage', lost: null }] }
  ]
  test('conflict changes are read from the history, newest first, malformed ones skipped', () => {
    expect(conflictsOf(history).map(c => c.key)).toEqual(['9:milestones:ms-b:due', '4:meta::goLive'])
  })
  test('a conflict shows while its field holds the kept value, and not once dismissed', () => {
    const doc = planDoc()
    const conflicts = conflictsOf(history)
    expect(activeConflicts(conflicts, doc, new Set()).map(c => c.key)).toEqual(['4:meta::goLive'])
    edit.moveDue(doc, 'ms-b', '2027-03-19', 'x')
    expect(activeConflicts(conflicts, doc, new Set()).map(c => c.key)).toEqual(['9:milestones:ms-b:due', '4:meta::goLive'])
    expect(activeConflicts(conflicts, doc, new Set(['4:meta::goLive'])).map(c => c.key)).toEqual(['9:milestones:ms-b:due'])
    edit.moveDue(doc, 'ms-b', '2027-03-12', 'took the other')
    expect(activeConflicts(conflicts, doc, new Set()).map(c => c.key)).toEqual(['4:meta::goLive'])
  })
  test('only a plain lost value can be taken back (a lost text or list is recorded without content)', () => {
    const [due, goLive] = conflictsOf(history)
    expect(takesBack(due)).toBe(true)
    expect(takesBack(goLive)).toBe(true)
    expect(takesBack({ ...due, lost: { ...due.lost, value: null } })).toBe(false)
    expect(takesBack({ ...due, lost: { ...due.lost, value: ['ms-a'] } })).toBe(false)
  })
  test('a move\'s reason lost with its date shows with the date, not as a banner of its own', () => {
    const doc = planDoc()
    edit.moveDue(doc, 'ms-b', '2027-03-19', 'Board')
    const reasonLost = [{ seq: 12, at: '', who: who('x'), changes: [
      { entity: 'milestones', entityId: 'ms-b', field: 'due', kind: 'conflict', kept: { value: '2027-03-19', who: null, at: null }, lost: { value: '2027-03-12', who: null, at: null } },
      { entity: 'milestones', entityId: 'ms-b', field: 'slipReason', kind: 'conflict', kept: { value: 'Board', who: null, at: null }, lost: { value: 'Legal', who: null, at: null } }
    ] }]
    expect(activeConflicts(conflictsOf(reasonLost), doc, new Set()).map(c => c.key)).toEqual(['12:milestones:ms-b:due'])
  })
  test('the banner names who set the lost value, the kept one, and which was set offline', () => {
    const [due, goLive] = conflictsOf(history)
    expect(conflictWords(due, 'en-GB')).toBe('Buyer team set 12/03/2027 offline; 19/03/2027 was kept')
    expect(conflictWords({ ...due, lost: { ...due.lost, at: '2027-01-01T09:00:00Z' } }, 'en-GB')).toBe('Buyer team set 12/03/2027; 19/03/2027, set offline by Seller team, was kept')
    expect(conflictWords(goLive, 'en-US')).toBe('The admin set 05/01/2027; 04/01/2027 was kept')
  })
})

describe('undo shortcuts', () => {
  const key = (k: string, mods: Partial<{ ctrlKey: boolean, metaKey: boolean, shiftKey: boolean, altKey: boolean }> = {}) =>
    undoShortcut({ key: k, ctrlKey: false, metaKey: false, shiftKey: false, altKey: false, ...mods })
  test('Ctrl/Cmd+Z undoes; Ctrl/Cmd+Shift+Z and Ctrl+Y redo; nothing else', () => {
    expect([key('z', { ctrlKey: true }), key('z', { metaKey: true }), key('Z', { ctrlKey: true, shiftKey: true }), key('z', { metaKey: true, shiftKey: true }), key('y', { ctrlKey: true })])
      .toEqual(['undo', 'undo', 'redo', 'redo', 'redo'])
    expect([key('z'), key('y'), key('z', { ctrlKey: true, altKey: true }), key('a', { ctrlKey: true })]).toEqual([null, null, null, null])
  })
})
