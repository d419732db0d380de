// Dates on the plan page, in a real browser: typed and shown in the browser's locale format,
// committed on Enter / leaving the field / the picker (never on a keystroke); the date-move
// dialog warns about what a move puts out of order and offers to move the go-live step with
// go-live; a move made offline shows in "Date changes" as not saved yet; the small wording
// defects (plurals, "+N days later", sentence case, "On track" with no slack, "Not a date:
// undefined").
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createPlan, api, waitFor } from './lib/harness.js'
import { join } from 'node:path'
import { openLink, untilStatus, untilValue, artifacts, browserSuite, noPageErrors } from './lib/browser.js'

let server, browser
browserSuite(started => ({ server, browser } = started))

const DAY = 86_400_000
const iso = ms => new Date(ms).toISOString().slice(0, 10)

/** A mid-market plan (ids `ms-{key}`, the last step `ms-go-live` due on go-live) going live in
 * about two months. */
async function newPlan (title = 'Northwind × Mapline rollout') {
  const goLive = iso(Date.now() + 60 * DAY)
  return createPlan(server, { title, buyerOrg: 'Northwind', sellerOrg: 'Mapline Inc', goLive, template: 'mid-market' })
}

async function planNow (plan) {
  return (await api(server, 'GET', `/api/plans/${plan.id}`)).body.plan
}

async function milestone (plan, id) {
  return (await planNow(plan)).milestones.find(m => m.id === id)
}

/** The plan's page in a browser context with the given locale (which sets both `Intl` and the
 * native date field's format). */
function openIn (locale, plan, token = plan.seller) {
  return openLink(browser, server, plan.id, token, { locale })
}

/** Lets the page handle what was just typed: a task, a frame, and a task again (the page reacts
 * to a change event within one task and renders in the next frame). Not a timed wait. */
function settle (page) {
  return page.evaluate(() => new Promise(resolve => setTimeout(() => requestAnimationFrame(() => setTimeout(resolve, 0)), 0)))
}

/** "04/15/2027" (en-US) or "15/04/2027" (en-GB) for an ISO date. */
function localeDate (locale, isoDate) {
  const [y, m, d] = isoDate.split('-')
  return locale === 'en-US' ? `${m}/${d}/${y}` : `${d}/${m}/${y}`
}

/** Types a date into a date field in the locale's format and presses Enter. */
async function enterDate (field, locale, isoDate) {
  await field.fill(localeDate(locale, isoDate))
  await field.press('Enter')
}

for (const locale of ['en-US', 'en-GB']) {
  test(`${locale}: a due date is typed in the locale format and commits on Enter, never on a keystroke`, async () => {
    const plan = await newPlan()
    const person = await openIn(locale, plan)
    try {
      const { page } = person
      await untilStatus(page, 'saved')
      const signature = await milestone(plan, 'ms-signature')
      const later = iso(Date.parse(signature.due) + 3 * DAY)
      const due = page.getByLabel(`Due date of ${signature.title}`)
      const dialog = page.getByRole('dialog', { name: 'Why is this date moving?' })

      // The field shows the date in the locale's format and says how to type one.
      assert.equal(await due.inputValue(), localeDate(locale, signature.due))
      assert.equal(await due.getAttribute('placeholder'), locale === 'en-US' ? 'MM/DD/YYYY' : 'DD/MM/YYYY')
      // One ↑, then emptied and one digit typed: neither is a move (nor a cleared date).
      await due.focus()
      await page.keyboard.press('ArrowUp')
      await settle(page)
      assert.equal(await dialog.count(), 0, 'ArrowUp does not open the move dialog')
      const [first, ...rest] = localeDate(locale, later)
      await page.keyboard.press('ControlOrMeta+a')
      await page.keyboard.press('Backspace')
      await settle(page)
      assert.equal(await dialog.count(), 0, 'an emptied field is not a cleared date until Enter or leaving it')
      await page.keyboard.type(first)
      await settle(page)
      assert.equal(await dialog.count(), 0, 'a first digit does not open the move dialog')
      assert.equal((await milestone(plan, 'ms-signature')).due, signature.due, 'nothing was written')

      // The whole date, in the locale's order, then Enter: one move from the old date to it.
      await page.keyboard.type(rest.join(''))
      await settle(page)
      assert.equal(await dialog.count(), 0, 'a whole date typed is not committed before Enter')
      await page.keyboard.press('Enter')
      await dialog.waitFor()
      const words = await dialog.textContent()
      assert.ok(words.includes(`${localeDate(locale, signature.due)} → ${localeDate(locale, later)}`), `the dialog shows both dates in the ${locale} format: ${words}`)
      assert.match(words, /\(3 days later\)/)
      assert.doesNotMatch(words, /\+3|no date|cleared/)
      await dialog.getByLabel('Reason').fill('The budget holder is away that week')
      await dialog.getByRole('button', { name: 'Move the date' }).click()
      await dialog.waitFor({ state: 'detached' })
      await untilValue(due, localeDate(locale, later), 'the moved due date in the field')
      assert.equal(await due.getAttribute('data-date'), later)
      const slip = page.getByTestId('slip').filter({ hasText: 'The budget holder is away that week' })
      await slip.waitFor()
      const slipText = await slip.textContent()
      assert.ok(slipText.includes(localeDate(locale, later)), slipText)
      assert.match(slipText, /(?<!\+)3 days later/)
      const { body } = await api(server, 'GET', `/api/plans/${plan.id}/slips`)
      assert.deepEqual(body.slips.map(s => [s.milestoneId, s.from, s.to, s.reason]), [['ms-signature', signature.due, later, 'The budget holder is away that week']])

      // A half-typed date left behind is not a move either: the field goes back to the date.
      const kickoff = await milestone(plan, 'ms-kickoff')
      const kickoffDue = page.getByLabel(`Due date of ${kickoff.title}`)
      await kickoffDue.focus()
      await page.keyboard.press('End')
      for (let i = 0; i < 5; i++) await page.keyboard.press('Backspace') // "04/15" or "15/04"
      await page.keyboard.press('Tab')
      await settle(page)
      assert.equal(await dialog.count(), 0, 'leaving a half-typed date does not open the move dialog')
      await untilValue(kickoffDue, localeDate(locale, kickoff.due), 'the kept date after a half-typed one')
      assert.match(await page.getByRole('alert').filter({ hasText: 'is not a date' }).textContent(), new RegExp(`type it as ${locale === 'en-US' ? 'MM/DD/YYYY' : 'DD/MM/YYYY'}`))
      assert.equal((await milestone(plan, 'ms-kickoff')).due, kickoff.due)

      // One format everywhere: the header, the field's tooltip; no "15 Apr 2027", no ISO text.
      const goLive = (await planNow(plan)).meta.goLive
      assert.ok((await page.locator('header .orgs').textContent()).includes(localeDate(locale, goLive)))
      assert.equal(await due.getAttribute('title'), localeDate(locale, later))
      const text = await page.locator('body').innerText()
      assert.doesNotMatch(text, /\b\d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4}\b/, 'no "15 Apr 2027" dates')
      assert.doesNotMatch(text, /\b\d{4}-\d{2}-\d{2}\b/, 'no ISO dates on the page')
      noPageErrors(person)
    } finally {
      await person.context.close()
    }
  })
}

test('a date picked as a whole (the picker) still commits at once', async () => {
  const plan = await newPlan()
  const person = await openIn('en-US', plan)
  try {
    const { page } = person
    await untilStatus(page, 'saved')
    const trial = await milestone(plan, 'ms-trial')
    const later = iso(Date.parse(trial.due) + 2 * DAY)
    // The picker beside the field is the browser's own; `fill` sets its whole value and fires
    // input + change, as a choice in it does.
    await page.getByRole('button', { name: `Pick a date on a calendar for ${trial.title}` }).click()
    await settle(page)
    await page.keyboard.press('Escape')
    await page.locator('[data-milestone="ms-trial"] [data-testid="date-picker"]').fill(later, { force: true })
    const dialog = page.getByRole('dialog', { name: 'Why is this date moving?' })
    await dialog.waitFor()
    assert.ok((await dialog.textContent()).includes(`${localeDate('en-US', trial.due)} → ${localeDate('en-US', later)}`))
    noPageErrors(person)
  } finally {
    await person.context.close()
  }
})

test('moving a step past one that waits for it warns in the move dialog', async () => {
  const plan = await newPlan()
  const person = await openIn('en-GB', plan)
  try {
    const { page } = person
    await untilStatus(page, 'saved')
    const kickoff = await milestone(plan, 'ms-kickoff')
    const trial = await milestone(plan, 'ms-trial') // waits for kickoff
    const past = iso(Date.parse(trial.due) + 7 * DAY)
    await enterDate(page.getByLabel(`Due date of ${kickoff.title}`), 'en-GB', past)
    const dialog = page.getByRole('dialog', { name: 'Why is this date moving?' })
    await dialog.waitFor()
    const warning = dialog.getByTestId('move-warning').filter({ hasText: trial.title })
    assert.equal(await warning.textContent(),
      `${trial.title} waits for this step and is due ${localeDate('en-GB', trial.due)}; moving this to ${localeDate('en-GB', past)} puts it after.`)
    await page.screenshot({ path: join(artifacts, 'date-move-warning.png') })
    await dialog.getByRole('button', { name: 'Keep the old date' }).click()
    await dialog.waitFor({ state: 'detached' })

    // A move that keeps the order warns about nothing.
    const earlier = iso(Date.parse(kickoff.due) - 2 * DAY)
    await enterDate(page.getByLabel(`Due date of ${kickoff.title}`), 'en-GB', earlier)
    await dialog.waitFor()
    assert.equal(await dialog.getByTestId('move-warning').count(), 0)
    await dialog.getByRole('button', { name: 'Keep the old date' }).click()
    noPageErrors(person)
  } finally {
    await person.context.close()
  }
})

test('moving go-live offers to move the go-live step too, and does it', async () => {
  const plan = await newPlan()
  const person = await openIn('en-US', plan)
  try {
    const { page } = person
    await untilStatus(page, 'saved')
    const step = await milestone(plan, 'ms-go-live')
    const goLive = (await planNow(plan)).meta.goLive
    assert.equal(step.due, goLive)
    const later = iso(Date.parse(goLive) + 7 * DAY)
    await enterDate(page.getByLabel('Go-live date', { exact: true }), 'en-US', later)
    const dialog = page.getByRole('dialog', { name: 'Why is this date moving?' })
    await dialog.waitFor()
    const offer = dialog.getByRole('checkbox', { name: /Also move the go-live step “Go live”/ })
    assert.equal(await offer.isChecked(), true, 'checked: the step is due on go-live day')
    await page.screenshot({ path: join(artifacts, 'go-live-move.png') })
    assert.match(await dialog.locator('label.check').textContent(), new RegExp(`\\(due ${localeDate('en-US', goLive)}\\) to ${localeDate('en-US', later)}`))
    await dialog.getByLabel('Reason').fill('Customer board meeting moved')
    await dialog.getByRole('button', { name: 'Move the date' }).click()
    await dialog.waitFor({ state: 'detached' })
    await untilValue(page.getByLabel(`Due date of ${step.title}`), localeDate('en-US', later), 'the go-live step moved along')
    // The server records each move shortly after it has the update: wait for both.
    const slips = await waitFor(async () => {
      const { body } = await api(server, 'GET', `/api/plans/${plan.id}/slips`)
      return body.slips.length >= 2 && body.slips
    }, { what: 'the go-live slip and the go-live step slip' })
    assert.deepEqual(slips.map(s => [s.subject, s.milestoneId ?? null, s.from, s.to, s.reason]).sort(), [
      ['go_live', null, goLive, later, 'Customer board meeting moved'],
      ['milestone', 'ms-go-live', goLive, later, 'Customer board meeting moved']
    ])
    noPageErrors(person)
  } finally {
    await person.context.close()
  }
})

test('a date moved offline shows in "Date changes" as not saved yet, then as saved', async () => {
  const plan = await newPlan()
  const person = await openIn('en-GB', plan)
  try {
    const { page, context } = person
    await untilStatus(page, 'saved')
    const onboarding = await milestone(plan, 'ms-onboarding')
    const later = iso(Date.parse(onboarding.due) + 2 * DAY)
    await context.setOffline(true)
    await untilStatus(page, 'offline')
    await enterDate(page.getByLabel(`Due date of ${onboarding.title}`), 'en-GB', later)
    const dialog = page.getByRole('dialog', { name: 'Why is this date moving?' })
    await dialog.getByLabel('Reason').fill('Setup slot moved by two days')
    await dialog.getByRole('button', { name: 'Move the date' }).click()
    const pending = page.locator('#changes [data-testid="pending-slip"]').filter({ hasText: 'Setup slot moved by two days' })
    await pending.waitFor()
    const text = await pending.textContent()
    assert.match(text, /Not saved yet/)
    assert.match(text, /(?<!\+)2 days later/)
    assert.ok(text.includes(onboarding.title) && text.includes(`${localeDate('en-GB', onboarding.due)} → ${localeDate('en-GB', later)}`), text)
    assert.deepEqual((await api(server, 'GET', `/api/plans/${plan.id}/slips`)).body.slips, [], 'nothing reached the server')

    // Back online: the server's record has it, and the local "not saved yet" goes.
    await context.setOffline(false)
    await untilStatus(page, 'saved')
    await page.locator('#changes [data-testid="slip"]').filter({ hasText: 'Setup slot moved by two days' }).waitFor()
    await pending.waitFor({ state: 'detached' })
    noPageErrors(person, /ERR_INTERNET_DISCONNECTED|Failed to load resource/)
  } finally {
    await person.context.close()
  }
})

test('the words: no slack is not "On track", plurals, sentence case, an undated step says so', async () => {
  const plan = await newPlan()
  const person = await openIn('en-US', plan)
  try {
    const { page } = person
    await untilStatus(page, 'saved')
    const health = page.getByTestId('health')
    // The template's last step is due on go-live day: no days to spare.
    await health.getByText('No slack', { exact: true }).waitFor()
    const words = await health.innerText()
    assert.match(words, /At risk/)
    assert.doesNotMatch(words, /On track|0 days to spare/)
    assert.doesNotMatch(words, /\(s\)/)
    const reasons = await health.locator('.reasons').textContent()
    for (const reason of reasons.split(' · ')) assert.match(reason, /^[A-Z0-9]/, `sentence case: ${reason}`)

    // A new step has no date: its field says so (not "Not a date: undefined").
    await page.getByRole('button', { name: '+ Add a step to Implementation' }).click()
    const due = page.getByLabel('Due date of New step')
    await due.waitFor()
    assert.equal(await due.getAttribute('title'), 'No date yet')
    noPageErrors(person)
  } finally {
    await person.context.close()
  }
})
