// Merge without loss, in a real browser (issue 12, docs/schema.md): prose fields are Y.Text
// bound to the page's inputs, so two people typing in one note — one of them offline — both keep
// what they typed, and a remote edit keeps the caret where it was; undo takes back only your own
// edits; a lost date move shows as a conflict with one action to take the other value; deleted
// entries can be restored from the page; the seller's judgments of people live in the internal
// document and never reach a buyer's page.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createPlan, api, waitFor, client, synced, destroy, ADMIN_TOKEN, Y } from './lib/harness.js'
import { openLink, untilStatus, untilValue, untilDate, enterDate, browserSuite, noPageErrors } from './lib/browser.js'

let server, browser
browserSuite(started => ({ server, browser } = started))

const DAY = 86_400_000
const iso = ms => new Date(ms).toISOString().slice(0, 10)
const OFFLINE_CONSOLE = /ERR_INTERNET_DISCONNECTED|Failed to load resource/

/** A mid-market plan (ids `ms-{key}`) going live in about two months. */
async function newPlan (title = 'Contoso × Mapline rollout') {
  return createPlan(server, { title, buyerOrg: 'Contoso', sellerOrg: 'Mapline Inc', goLive: iso(Date.now() + 60 * DAY), template: 'mid-market' })
}

async function planNow (plan) {
  return (await api(server, 'GET', `/api/plans/${plan.id}`)).body.plan
}

async function milestone (plan, id) {
  return (await planNow(plan)).milestones.find(m => m.id === id)
}

/** The seller's and the buyer's pages (two editor links, two browser contexts), both saved. */
async function twoPages (plan, options = {}) {
  const a = await openLink(browser, server, plan.id, plan.seller, options)
  const b = await openLink(browser, server, plan.id, plan.buyer, options)
  await untilStatus(a.page, 'saved')
  await untilStatus(b.page, 'saved')
  return [a, b]
}

async function closeAll (...people) {
  for (const person of people) await person?.context.close()
}

/** Puts the caret (or a selection) of a text field at the given offsets. */
function select (field, start, end = start) {
  return field.evaluate((element, [s, e]) => { element.focus(); element.setSelectionRange(s, e) }, [start, end])
}

function caret (field) {
  return field.evaluate(element => [element.selectionStart, element.selectionEnd, document.activeElement === element])
}

test('two people type in the same note, one of them offline: after reconnecting both texts are everywhere', async () => {
  const plan = await newPlan()
  const trial = await milestone(plan, 'ms-trial')
  const [a, b] = await twoPages(plan)
  try {
    const notesA = a.page.getByLabel(`Notes on ${trial.title}`)
    const notesB = b.page.getByLabel(`Notes on ${trial.title}`)
    // A first text both have (the first write of a note makes its Y.Text).
    await notesA.fill('Kickoff')
    await untilValue(notesB, 'Kickoff', 'the buyer\'s notes')

    await b.context.setOffline(true)
    await untilStatus(b.page, 'offline')
    // Both type, each at their own end of the note, neither seeing the other.
    await select(notesA, 'Kickoff'.length)
    await a.page.keyboard.type(' — seller: pilot in March')
    await untilStatus(a.page, 'saved')
    await select(notesB, 0)
    await b.page.keyboard.type('Buyer: IT needs two weeks — ')
    assert.equal(await notesB.inputValue(), 'Buyer: IT needs two weeks — Kickoff')
    assert.equal(await notesA.inputValue(), 'Kickoff — seller: pilot in March', 'nothing reached the seller while offline')

    await b.context.setOffline(false)
    await untilStatus(b.page, 'saved')
    const merged = 'Buyer: IT needs two weeks — Kickoff — seller: pilot in March'
    await untilValue(notesA, merged, 'the seller\'s merged notes')
    await untilValue(notesB, merged, 'the buyer\'s merged notes')
    await waitFor(async () => (await milestone(plan, 'ms-trial')).notes === merged, { what: 'the server\'s notes to hold both texts' })
    noPageErrors(a)
    noPageErrors(b, OFFLINE_CONSOLE)
  } finally {
    await closeAll(a, b)
  }
})

test('Ctrl+Z undoes my own edits, newest first, also from a prose field; Ctrl+Shift+Z redoes; another page\'s edit stays', async () => {
  const plan = await newPlan()
  const trial = await milestone(plan, 'ms-trial')
  const [a, b] = await twoPages(plan)
  try {
    const notesA = a.page.getByLabel(`Notes on ${trial.title}`)
    const notesB = b.page.getByLabel(`Notes on ${trial.title}`)
    const statusA = a.page.getByLabel(`Status of ${trial.title}`)
    const undoButton = a.page.getByRole('button', { name: 'Undo', exact: true })
    const redoButton = a.page.getByRole('button', { name: 'Redo', exact: true })
    assert.equal(await undoButton.isDisabled(), true, 'nothing to undo yet')
    const statusBefore = await statusA.inputValue()

    await notesA.focus()
    await a.page.keyboard.type('Mine')
    // Someone else adds to the same note.
    await untilValue(notesB, 'Mine', 'the buyer\'s notes')
    await select(notesB, 4)
    await b.page.keyboard.type(' and theirs')
    await untilValue(notesA, 'Mine and theirs', 'the seller\'s notes')
    await statusA.selectOption('blocked')
    await untilValue(b.page.getByLabel(`Status of ${trial.title}`), 'blocked', 'the buyer\'s status')
    assert.equal(await undoButton.isDisabled(), false)

    // Undo from the keyboard with the caret in the note: the status first, then my text.
    await select(notesA, 0)
    await a.page.keyboard.press('Control+z')
    await untilValue(statusA, statusBefore, 'the undone status')
    assert.equal(await notesA.inputValue(), 'Mine and theirs', 'the first undo took back the status only')
    await a.page.keyboard.press('Control+z')
    await untilValue(notesA, ' and theirs', 'the note without my text')
    await untilValue(notesB, ' and theirs', 'the buyer\'s note without my text')
    assert.equal(await undoButton.isDisabled(), true, 'nothing more of mine to undo')

    // Redo brings my text back; the other person's stays throughout.
    await a.page.keyboard.press('Control+Shift+z')
    await untilValue(notesA, 'Mine and theirs', 'the redone text')
    await untilValue(notesB, 'Mine and theirs', 'the buyer\'s view of the redone text')
    assert.equal(await redoButton.isDisabled(), false, 'the status can be redone too')
    await untilStatus(a.page, 'saved')
    const stored = await milestone(plan, 'ms-trial')
    assert.equal(stored.notes, 'Mine and theirs')
    assert.equal(stored.status, statusBefore === '' ? 'not_started' : statusBefore)
    noPageErrors(a, b)
  } finally {
    await closeAll(a, b)
  }
})

test('a remote edit before the caret keeps the caret and the selection after the same characters', async () => {
  const plan = await newPlan()
  const trial = await milestone(plan, 'ms-trial')
  const [a, b] = await twoPages(plan)
  try {
    const notesA = a.page.getByLabel(`Notes on ${trial.title}`)
    const notesB = b.page.getByLabel(`Notes on ${trial.title}`)
    await notesA.fill('hello world')
    await untilValue(notesB, 'hello world', 'the buyer\'s notes')

    // A has the caret before "world"; B inserts at the start.
    await select(notesA, 6)
    await select(notesB, 0)
    await b.page.keyboard.type('Oh, ')
    await untilValue(notesA, 'Oh, hello world', 'the seller\'s notes')
    assert.deepEqual(await caret(notesA), [10, 10, true], 'the caret is still before "world"')

    // A selects "world"; B deletes "Oh, " and inserts inside nothing A selected.
    await select(notesA, 10, 15)
    await select(notesB, 0, 4)
    await b.page.keyboard.press('Delete')
    await untilValue(notesA, 'hello world', 'the seller\'s notes')
    assert.deepEqual(await caret(notesA), [6, 11, true], 'the selection still covers "world"')
    // Typing after a remote edit goes where the caret is.
    await a.page.keyboard.type('there')
    await untilValue(notesB, 'hello there', 'the buyer\'s notes')
    noPageErrors(a, b)
  } finally {
    await closeAll(a, b)
  }
})

/** en-GB dates as the page shows them: DD/MM/YYYY. */
const gb = date => date.split('-').reverse().join('/')

test('two moves of one date made apart: the conflict banner names both, and "Use this value" takes the other', async () => {
  const plan = await newPlan()
  const trial = await milestone(plan, 'ms-trial')
  const [a, b] = await twoPages(plan, { locale: 'en-GB' })
  try {
    const offlineDate = iso(Date.parse(trial.due) + 3 * DAY)
    const onlineDate = iso(Date.parse(trial.due) + 10 * DAY)
    const move = async (page, date, reason) => {
      await enterDate(page.getByLabel(`Due date of ${trial.title}`), date)
      const dialog = page.getByRole('dialog', { name: 'Why is this date moving?' })
      await dialog.getByLabel('Reason').fill(reason)
      await dialog.getByRole('button', { name: 'Move the date' }).click()
      await dialog.waitFor({ state: 'detached' })
    }
    await b.context.setOffline(true)
    await untilStatus(b.page, 'offline')
    await move(b.page, offlineDate, 'Pilot team back on the 12th')
    await move(a.page, onlineDate, 'Pilot hardware ships late')
    await untilStatus(a.page, 'saved')
    await b.context.setOffline(false)
    await untilStatus(b.page, 'saved')

    // One value is kept (Yjs decides); the banner shows on both pages while the step holds it.
    const kept = await waitFor(async () => {
      const dueA = await a.page.getByLabel(`Due date of ${trial.title}`).getAttribute('data-date')
      const dueB = await b.page.getByLabel(`Due date of ${trial.title}`).getAttribute('data-date')
      return dueA === dueB && dueA
    }, { what: 'both pages to settle on one date' })
    const lost = kept === onlineDate ? offlineDate : onlineDate
    for (const person of [a, b]) {
      const banner = person.page.locator('[data-milestone="ms-trial"] [data-testid="conflict"]')
      await banner.waitFor({ timeout: 15000 })
      const words = await banner.textContent()
      assert.ok(words.includes(gb(lost)) && words.includes(gb(kept)) && words.includes(`${gb(kept)}`), words)
      assert.match(words, /Mapline Inc team|Contoso team/)
    }

    // Take the other value: the move dialog, with its reason filled in.
    const banner = a.page.locator('[data-milestone="ms-trial"] [data-testid="conflict"]')
    await banner.getByRole('button', { name: 'Use this value' }).click()
    const dialog = a.page.getByRole('dialog', { name: 'Why is this date moving?' })
    await waitFor(async () => await dialog.getByLabel('Reason').inputValue() === 'Took the other value of a conflict',
      { what: 'the reason filled in' })
    await dialog.getByRole('button', { name: 'Move the date' }).click()
    await untilDate(a.page.getByLabel(`Due date of ${trial.title}`), lost, 'the seller\'s date')
    await untilDate(b.page.getByLabel(`Due date of ${trial.title}`), lost, 'the buyer\'s date')
    await waitFor(async () => (await milestone(plan, 'ms-trial')).due === lost, { what: 'the server to hold the other value' })
    await banner.waitFor({ state: 'detached' })
    noPageErrors(a)
    noPageErrors(b, OFFLINE_CONSOLE)
  } finally {
    await closeAll(a, b)
  }
})

test('a deleted step shows under "Recently deleted" with who deleted it, and Restore brings it back on every page', async () => {
  const plan = await newPlan()
  const trial = await milestone(plan, 'ms-trial')
  const [a, b] = await twoPages(plan)
  try {
    a.page.on('dialog', dialog => { void dialog.accept() })
    await a.page.getByRole('button', { name: `Remove ${trial.title}` }).click()
    await b.page.locator('[data-milestone="ms-trial"]').waitFor({ state: 'detached' })
    assert.equal((await planNow(plan)).milestones.some(m => m.id === 'ms-trial'), false)

    const listed = b.page.locator('#deleted [data-testid="deleted"]').filter({ hasText: trial.title })
    await listed.waitFor({ timeout: 15000 })
    assert.match(await listed.textContent(), /deleted by Mapline Inc team/)
    await listed.getByRole('button', { name: `Restore ${trial.title}` }).click()
    await a.page.locator('[data-milestone="ms-trial"]').waitFor()
    await b.page.locator('[data-milestone="ms-trial"]').waitFor()
    await listed.waitFor({ state: 'detached' })
    const back = await milestone(plan, 'ms-trial')
    assert.equal(back.title, trial.title)
    noPageErrors(a, b)
  } finally {
    await closeAll(a, b)
  }
})

test('a buyer\'s page never shows the seller\'s judgments of people; a seller\'s shows them and edits the internal document', async () => {
  const plan = await newPlan()
  // A person in the plan, and the seller's judgments of them in the internal document (the
  // server refuses judgments in the shared stakeholder: schema-v2.test.js).
  const writer = client(server, plan.id, plan.seller)
  const internal = client(server, `${plan.id}/internal`, ADMIN_TOKEN)
  await synced(writer)
  await synced(internal)
  writer.doc.transact(() => {
    const ana = new Y.Map()
    for (const [k, v] of Object.entries({ name: 'Ana Ruiz', side: 'buyer', role: 'finance', order: 'a0' })) ana.set(k, v)
    writer.map('stakeholders').set('st-ana', ana)
  })
  internal.doc.transact(() => {
    const judgment = new Y.Map()
    judgment.set('power', 'decider')
    judgment.set('engagement', 'neutral')
    internal.map('stakeholders').set('st-ana', judgment)
  })
  const sockets = []
  const watch = context => context.on('page', page => page.on('websocket', ws => sockets.push(ws.url())))
  const seller = await openLink(browser, server, plan.id, plan.seller)
  const buyer = await openLink(browser, server, plan.id, plan.buyer, { setup: watch })
  try {
    await untilStatus(seller.page, 'saved')
    await untilStatus(buyer.page, 'saved')
    await untilValue(seller.page.getByLabel('Say in the decision of Ana Ruiz'), 'decider', 'the seller\'s view of the judgment')
    await untilValue(seller.page.getByLabel('Engagement of Ana Ruiz'), 'neutral', 'the seller\'s view of the engagement')

    // The buyer's page: the person, without any judgment, in the edit and the read view.
    await buyer.page.getByLabel('Job title of Ana Ruiz').waitFor()
    const words = ['Say in the decision', 'Engagement', 'Makes the decision', 'Can stop it', 'Gone quiet', 'Neutral', 'Private notes']
    const shows = async () => {
      const text = await buyer.page.locator('body').innerText()
      return words.filter(w => text.includes(w))
    }
    assert.deepEqual(await shows(), [], 'no judgment on the buyer\'s edit view')
    assert.equal(await buyer.page.getByLabel(/Say in the decision|Engagement of/).count(), 0)
    await buyer.page.getByRole('button', { name: 'Read', exact: true }).click()
    await buyer.page.getByTestId('read-view').getByText('Ana Ruiz').waitFor()
    assert.deepEqual(await shows(), [], 'no judgment on the buyer\'s read view')
    assert.equal(sockets.some(url => url.includes('/internal')), false, 'the buyer\'s page never opens the internal document')
    assert.ok(sockets.some(url => url.includes(`/sync/${plan.id}`)), 'the buyer\'s page did open the plan')

    // The seller edits the judgments and private notes: they arrive in the internal document.
    await seller.page.getByLabel('Engagement of Ana Ruiz').selectOption('dark')
    await seller.page.getByLabel('Private notes on Ana Ruiz').focus()
    await seller.page.keyboard.type('Reports to the CFO')
    const judgment = () => internal.map('stakeholders').get('st-ana')
    await waitFor(() => judgment()?.get('engagement') === 'dark', { what: 'the engagement in the internal document' })
    await waitFor(() => judgment()?.get('notes')?.toString() === 'Reports to the CFO', { what: 'the private notes in the internal document' })
    assert.ok(judgment().get('notes') instanceof Y.Text, 'private notes are a Y.Text')
    // The plan document is not where they went.
    const shared = (await planNow(plan)).stakeholders.find(s => s.id === 'st-ana')
    assert.notEqual(shared.notes, 'Reports to the CFO')
    await seller.page.getByRole('button', { name: 'Read', exact: true }).click()
    await seller.page.getByTestId('read-view').getByText('Gone quiet').waitFor()
    assert.deepEqual(await shows(), [], 'still nothing on the buyer\'s page')
    noPageErrors(seller, buyer)
  } finally {
    destroy(writer, internal)
    await closeAll(seller, buyer)
  }
})

test('the page side alone: conflicts and deletions as docs/api.md words them (those two answers stubbed in the browser)', async () => {
  // The two tests above need the server's conflict records and restore API; this one pins the
  // page to the contract with the server's answers to /history, /deleted and /restore stubbed,
  // everything else real.
  const plan = await newPlan()
  const trial = await milestone(plan, 'ms-trial')
  const goLive = (await planNow(plan)).meta.goLive
  const other = iso(Date.parse(trial.due) - 7 * DAY)
  const seller = { kind: 'share', label: 'Mapline Inc team', side: 'seller' }
  const buyer = { kind: 'share', label: 'Contoso team', side: 'buyer' }
  const history = {
    entries: [{
      seq: 99,
      at: '2027-01-02T10:00:00Z',
      who: buyer,
      changes: [
        { entity: 'milestones', entityId: 'ms-trial', field: 'due', kind: 'conflict', kept: { value: trial.due, who: seller, at: '2027-01-02T09:00:00Z' }, lost: { value: other, who: buyer, at: '2027-01-02T10:00:00Z' } },
        { entity: 'meta', entityId: null, field: 'goLive', kind: 'conflict', kept: { value: goLive, who: seller, at: '2027-01-02T09:00:00Z' }, lost: { value: '2030-01-01', who: null, at: null } },
        { entity: 'milestones', entityId: 'ms-old', field: null, kind: 'deleted', old: { title: 'Old step' } }
      ]
    }],
    nextBefore: null
  }
  const deleted = { deleted: [{ collection: 'milestones', id: 'ms-old', seq: 98, at: new Date().toISOString(), who: buyer, entry: { title: 'Old step', due: '2027-01-01' } }] }
  const restores = []
  const stub = async context => {
    await context.route(`**/api/plans/${plan.id}/history*`, route => route.fulfill({ json: history }))
    await context.route(`**/api/plans/${plan.id}/deleted`, route => route.fulfill({ json: deleted }))
    await context.route(`**/api/plans/${plan.id}/restore`, route => {
      restores.push({ body: route.request().postDataJSON(), auth: route.request().headers().authorization })
      return route.fulfill({ json: { seq: 100 } })
    })
  }
  const a = await openLink(browser, server, plan.id, plan.seller, { locale: 'en-GB', setup: stub })
  try {
    await untilStatus(a.page, 'saved')
    const banner = a.page.locator('[data-milestone="ms-trial"] [data-testid="conflict"]')
    await banner.waitFor()
    assert.equal((await banner.locator('span').first().textContent()), `Contoso team set ${gb(other)} offline; ${gb(trial.due)} was kept`)
    const goLiveBanner = a.page.locator('#why [data-testid="conflict"]')
    assert.equal(await goLiveBanner.locator('span').first().textContent(), `Someone set ${gb('2030-01-01')}; ${gb(goLive)} was kept`)

    // Dismiss is remembered on this device.
    await goLiveBanner.getByRole('button', { name: 'Dismiss' }).click()
    await goLiveBanner.waitFor({ state: 'detached' })
    await a.page.reload()
    await untilStatus(a.page, 'saved')
    await banner.waitFor()
    assert.equal(await goLiveBanner.count(), 0, 'a dismissed conflict stays dismissed after a reload')

    // "Use this value": the move dialog with its reason filled in, then the real move.
    await banner.getByRole('button', { name: 'Use this value' }).click()
    const dialog = a.page.getByRole('dialog', { name: 'Why is this date moving?' })
    assert.equal(await dialog.getByLabel('Reason').inputValue(), 'Took the other value of a conflict')
    await dialog.getByRole('button', { name: 'Move the date' }).click()
    await untilDate(a.page.getByLabel(`Due date of ${trial.title}`), other, 'the taken value')
    await banner.waitFor({ state: 'detached' })
    await waitFor(async () => {
      const stored = await milestone(plan, 'ms-trial')
      return stored.due === other && stored.slipReason === 'Took the other value of a conflict'
    }, { what: 'the server to hold the other value with its reason' })

    // Recently deleted, and Restore posts the entry with the link's token.
    const listed = a.page.locator('#deleted [data-testid="deleted"]').filter({ hasText: 'Old step' })
    await listed.waitFor()
    assert.match(await listed.textContent(), /deleted by Contoso team, just now/)
    await listed.getByRole('button', { name: 'Restore Old step' }).click()
    await a.page.locator('#deleted [role="status"]', { hasText: '“Old step” is back.' }).waitFor()
    assert.deepEqual(restores, [{ body: { collection: 'milestones', id: 'ms-old' }, auth: `Bearer ${plan.seller}` }])
    noPageErrors(a)
  } finally {
    await closeAll(a)
  }
})
