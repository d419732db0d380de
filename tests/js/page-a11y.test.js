// The plan page for people who use a keyboard or a screen reader, and on a phone: every dialog is
// modal (in view, focus inside and kept there, Escape closes it, focus goes back to its opener),
// the H1 is the plan's title, the timeline's points are named, section links do not hide their
// heading under the sticky header, the header stays small with someone else present, and axe-core
// finds no serious or critical violation. Debian's Chromium (playwright-core) against the real
// binary serving web/dist.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createPlan, api, mintShare, waitFor } from './lib/harness.js'
import { join } from 'node:path'
import { openLink, untilStatus, artifacts, enterDate, untilDate, untilValue, browserSuite, noPageErrors } from './lib/browser.js'

const require = createRequire(import.meta.url)
// The page's CSP (`script-src 'self'`) refuses an injected <script> (addScriptTag): axe is run
// through the DevTools protocol instead (`page.evaluate` of its source), which the CSP does not
// govern, so the page is checked under its real policy.
const axeSource = readFileSync(require.resolve('axe-core'), 'utf8')

let server, browser
browserSuite(started => ({ server, browser } = started))

const LONG_TITLE = 'Northwind Health × Mapline — security review and rollout'

async function newPlan (title = LONG_TITLE) {
  const goLive = new Date(Date.now() + 60 * 86_400_000).toISOString().slice(0, 10)
  return createPlan(server, { title, buyerOrg: 'Northwind Health', sellerOrg: 'Mapline', goLive, template: 'mid-market' })
}

async function storedPlan (plan) {
  return (await api(server, 'GET', `/api/plans/${plan.id}`)).body.plan
}


/** Opens `token`'s page, waits until it is up to date (`saved`, or `live` for a viewer), runs
 * `steps`, checks for page errors, closes. */
async function asPerson (plan, token, steps, { status = 'saved', ...options } = {}) {
  const person = await openLink(browser, server, plan.id, token, options)
  try {
    await untilStatus(person.page, status)
    await steps(person)
    noPageErrors(person)
  } finally {
    await person.context.close()
  }
}

/** Chromium's own accessibility tree (what a screen reader gets), as `{ role, name, level }`. */
async function axTree (page) {
  const cdp = await page.context().newCDPSession(page)
  try {
    const { nodes } = await cdp.send('Accessibility.getFullAXTree')
    return nodes.filter(n => !n.ignored).map(n => ({
      role: n.role?.value,
      name: n.name?.value ?? '',
      level: n.properties?.find(p => p.name === 'level')?.value?.value
    }))
  } finally {
    await cdp.detach()
  }
}

/** Facts about the focused element: whether it is inside the open dialog matching `selector`. */
function focusIn (page, selector) {
  return page.evaluate(s => {
    const active = document.activeElement
    const dialog = document.querySelector(s)
    return dialog !== null && active !== null && active !== dialog.ownerDocument.body && dialog.contains(active) &&
      // …and not inside a dialog nested in it.
      active.closest('dialog') === dialog
  }, selector)
}

/** Whether `selector` is an open modal dialog lying inside the viewport. */
function modalInView (page, selector) {
  return page.evaluate(s => {
    const dialog = document.querySelector(s)
    if (dialog === null || !dialog.matches(':modal')) return false
    const box = dialog.getBoundingClientRect()
    return box.top >= 0 && box.left >= 0 && box.bottom <= innerHeight && box.right <= innerWidth && box.height > 0
  }, selector)
}

/** Presses Tab (and then Shift+Tab) more times than the dialog has controls: focus never leaves. */
async function focusStaysIn (page, selector, presses = 25) {
  for (const key of ['Tab', 'Shift+Tab']) {
    for (let i = 0; i < presses; i++) {
      await page.keyboard.press(key)
      assert.ok(await focusIn(page, selector), `focus stays in ${selector} after ${i + 1}× ${key}`)
    }
  }
}

test('Share opens a modal dialog in view with focus inside and kept there; Escape closes it and focus returns to Share', async () => {
  const plan = await newPlan()
  await mintShare(server, plan.id, { side: 'buyer', role: 'viewer', label: 'Ana Ruiz (CFO)' })
  await asPerson(plan, plan.seller, async ({ page }) => {
    const share = page.getByRole('button', { name: 'Share', exact: true })
    // Scrolled down first: the dialog must show where the person is, not at the page's top or end.
    await page.mouse.wheel(0, 1500)
    await share.click()
    await page.locator('.share-dialog').getByRole('heading', { name: 'Share this plan' }).waitFor()
    assert.ok(await modalInView(page, '.share-dialog'), 'the Share dialog is modal and in view')
    assert.ok(await focusIn(page, '.share-dialog'), 'focus moved into the Share dialog')
    await page.locator('.share-dialog tr', { hasText: 'Ana Ruiz (CFO)' }).waitFor()
    await focusStaysIn(page, '.share-dialog')

    await page.keyboard.press('Escape')
    await page.locator('.share-dialog').waitFor({ state: 'detached' })
    assert.ok(await share.evaluate(b => b === document.activeElement), 'focus is back on Share')

    // Opened again from the keyboard: the same, and Close returns focus too.
    await page.keyboard.press('Enter')
    await page.locator('.share-dialog').getByRole('heading', { name: 'Share this plan' }).waitFor()
    assert.ok(await focusIn(page, '.share-dialog'), 'focus moved into the Share dialog (keyboard)')
    await page.locator('.share-dialog').getByRole('button', { name: 'Close' }).click()
    await page.locator('.share-dialog').waitFor({ state: 'detached' })
    assert.ok(await share.evaluate(b => b === document.activeElement), 'focus is back on Share after Close')
  })
})

test('the revoke confirmation is a modal dialog over Share: focus inside and kept, Escape closes only it, focus back on Revoke', async () => {
  const plan = await newPlan()
  await mintShare(server, plan.id, { side: 'buyer', role: 'viewer', label: 'Ana Ruiz (CFO)' })
  await asPerson(plan, plan.seller, async ({ page }) => {
    await page.getByRole('button', { name: 'Share', exact: true }).click()
    const revoke = page.getByRole('button', { name: 'Revoke the link of Ana Ruiz (CFO)' })
    await revoke.click()
    const confirm = page.getByRole('alertdialog', { name: 'Revoke the link of Ana Ruiz (CFO)?' })
    await confirm.getByRole('button', { name: 'Revoke link', exact: true }).waitFor()
    await waitFor(() => confirm.getByRole('button', { name: 'Revoke link', exact: true }).isEnabled(), { what: 'the confirmation to know what goes' })
    assert.ok(await modalInView(page, '.revoke-confirm'), 'the confirmation is modal and in view')
    assert.ok(await focusIn(page, '.revoke-confirm'), 'focus moved into the confirmation')
    await focusStaysIn(page, '.revoke-confirm', 6)

    await page.keyboard.press('Escape')
    await page.locator('.revoke-confirm').waitFor({ state: 'detached' })
    assert.ok(await modalInView(page, '.share-dialog'), 'the Share dialog stays open under it')
    assert.ok(await revoke.evaluate(b => b === document.activeElement), 'focus is back on Revoke')
    // Nothing was revoked.
    const { body } = await api(server, 'GET', `/api/plans/${plan.id}/shares`)
    assert.ok(body.shares.filter(s => s.label === 'Ana Ruiz (CFO)').every(s => s.status === 'active'))
  })
})

test('the date-move reason dialog is modal and in view; Escape keeps the old date and focus returns to the date', async () => {
  const plan = await newPlan()
  const before = await storedPlan(plan)
  const step = before.milestones.find(m => m.id === 'ms-trial')
  await asPerson(plan, plan.seller, async ({ page }) => {
    const due = page.getByLabel(`Due date of ${step.title}`, { exact: true })
    await untilDate(due, step.due, 'the due date')
    const shownBefore = await due.inputValue()
    // The date is typed and committed with Enter (the field is text in the locale's format).
    const later = new Date(Date.parse(step.due) + 14 * 86_400_000).toISOString().slice(0, 10)
    await enterDate(due, later)
    await page.getByRole('heading', { name: 'Why is this date moving?' }).waitFor()
    assert.ok(await modalInView(page, '.reason-dialog'), 'the reason dialog is modal and in view')
    assert.ok(await focusIn(page, '.reason-dialog'), 'focus moved into the reason dialog')
    await page.getByLabel('Reason').fill('Security review moved')
    await focusStaysIn(page, '.reason-dialog', 8)

    await page.keyboard.press('Escape')
    await page.locator('.reason-dialog').waitFor({ state: 'detached' })
    assert.ok(await due.evaluate(i => i === document.activeElement), 'focus is back on the date')
    await untilDate(due, step.due, 'the kept due date')
    await untilValue(due, shownBefore, 'the due date')
  })
  assert.equal((await storedPlan(plan)).milestones.find(m => m.id === 'ms-trial').due, step.due)
})

test('the H1 is the plan\'s title, for an editor and for a viewer', async () => {
  const plan = await newPlan()
  const viewer = await mintShare(server, plan.id, { side: 'buyer', role: 'viewer', label: 'Ana Ruiz (CFO)' })
  for (const [token, status] of [[plan.seller, 'saved'], [viewer, 'live']]) {
    await asPerson(plan, token, async ({ page }) => {
      await page.getByRole('heading', { level: 1 }).waitFor()
      const headings = (await axTree(page)).filter(n => n.role === 'heading' && n.level === 1)
      assert.deepEqual(headings.map(h => h.name), [LONG_TITLE], `one H1, read as the plan title (${status})`)
      if (status === 'saved') {
        // The editor's H1 holds a named field to edit the title.
        const field = page.getByRole('heading', { level: 1 }).getByRole('textbox', { name: 'Plan title' })
        assert.equal(await field.inputValue(), LONG_TITLE)
      }
    }, { status })
  }
})

test('the timeline\'s points are named with the step, its date and its state', async () => {
  const plan = await newPlan()
  const stored = await storedPlan(plan)
  const dated = stored.milestones.filter(m => m.due !== null)
  assert.ok(dated.length > 3)
  const escape = text => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  await asPerson(plan, plan.seller, async ({ page }) => {
    await page.locator('#timeline .point').first().waitFor()
    const timeline = page.locator('#timeline')
    for (const m of dated) {
      const year = m.due.slice(0, 4)
      // Found by role and name as the accessibility tree defines them (an img's children are
      // presentational, so points inside an svg role=img would have no name to find).
      const name = new RegExp(`^${escape(m.title)}, due .*${year}.*, (on track|at risk|overdue|done|cancelled)$`)
      assert.equal(await timeline.getByRole('button', { name }).count(), 1, `one timeline point named for "${m.title}" with its date and state`)
    }
    // Chromium's own tree says the same.
    const names = (await axTree(page)).filter(n => n.role === 'button').map(n => n.name)
    for (const m of dated) assert.ok(names.some(n => n.startsWith(`${m.title}, due `)), `Chromium names the point of "${m.title}"`)
  })
})

test('a section link scrolls its heading into view below the sticky header', async () => {
  const plan = await newPlan()
  await asPerson(plan, plan.seller, async ({ page }) => {
    for (const [link, heading] of [['Risks', 'risks'], ['Steps', 'steps'], ['Date changes', 'changes']]) {
      await page.locator('nav.toc').getByRole('link', { name: link, exact: true }).click()
      await waitFor(() => page.evaluate(id => location.hash === `#${id}`, heading), { what: `#${heading} in the address` })
      const { top, headerBottom, scrolled } = await page.evaluate(id => ({
        top: document.getElementById(`${id}-title`).getBoundingClientRect().top,
        headerBottom: document.querySelector('header.top').getBoundingClientRect().bottom,
        scrolled: scrollY
      }), heading)
      assert.ok(scrolled > 0, 'the page scrolled')
      assert.ok(top >= headerBottom, `the "${link}" heading (top ${top}) is below the header (bottom ${headerBottom})`)
    }
  })
})

/** The title as shown (whether its whole text fits its box) and the header's layout. */
function titleAndHeader (page) {
  return page.evaluate(() => {
    const h1 = document.querySelector('h1')
    const field = h1.querySelector('input, textarea') ?? h1
    const box = selector => document.querySelector(selector).getBoundingClientRect()
    return {
      fits: field.scrollWidth <= field.clientWidth && field.scrollHeight <= field.clientHeight + 1,
      header: box('header.top').height,
      titleBottom: box('header.top .title-block').bottom,
      controlsTop: box('header.top .top-right').top,
      viewport: innerHeight
    }
  })
}

test('someone else arriving does not grow the header, and the whole title shows, on a phone and a desktop', async () => {
  const plan = await newPlan()
  for (const [viewport, isMobile] of [[{ width: 390, height: 844 }, true], [{ width: 1280, height: 900 }, false]]) {
    await asPerson(plan, plan.seller, async ({ page }) => {
      await page.getByTestId('presence').getByText('Only you are here').waitFor()
      const alone = await titleAndHeader(page)
      assert.ok(alone.fits, `the whole title is shown at ${viewport.width} px`)

      // The buyer arrives and edits a field, so presence has someone, and what they are doing.
      const other = await openLink(browser, server, plan.id, plan.buyer)
      try {
        await untilStatus(other.page, 'saved')
        await other.page.getByLabel('Objective', { exact: true }).focus()
        const peer = page.getByTestId('presence').locator('.peer', { hasText: 'Northwind Health team' })
        await peer.waitFor()
        await waitFor(async () => (await peer.getAttribute('title')) === 'Northwind Health team: editing objective', { what: 'presence to say what the buyer edits' })
        const shown = await titleAndHeader(page)
        await page.screenshot({ path: join(artifacts, `a11y-header-${viewport.width}.png`) })
        assert.ok(shown.fits, `the whole title is shown at ${viewport.width} px with someone else present`)
        assert.ok(shown.header <= alone.header + 1, `the header stays ${alone.header} px high with someone else present (${shown.header} px)`)
        if (!isMobile) {
          // Status, presence and actions sit beside the title: two lines, not three.
          assert.ok(shown.controlsTop < shown.titleBottom, `the header's controls (top ${shown.controlsTop}) sit beside the title (bottom ${shown.titleBottom}), not on a line of their own`)
        }
        assert.ok(shown.header <= (isMobile ? 0.3 : 0.15) * shown.viewport, `the header (${shown.header} px) is a small part of the ${shown.viewport} px screen`)
        noPageErrors(other)
      } finally {
        await other.context.close()
      }
      // The editor's Read view (the Read/Edit switch and Download PDF in the header) keeps it small too.
      await page.getByRole('button', { name: 'Read', exact: true }).click()
      await page.getByTestId('read-view').waitFor()
      const reading = await page.evaluate(() => ({ header: document.querySelector('header.top').getBoundingClientRect().height, viewport: innerHeight }))
      assert.ok(reading.header <= (isMobile ? 0.3 : 0.15) * reading.viewport, `in the Read view the header (${reading.header} px) is a small part of the ${reading.viewport} px screen`)
    }, { viewport, isMobile })
  }
})

/** axe-core's serious and critical violations on the page as it is now. */
async function seriousViolations (page) {
  await page.evaluate(axeSource)
  const results = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }))
  return results.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')}`)
}

test('axe-core finds no serious or critical violation on the edit view, the Share dialog, an editor\'s read view and a viewer\'s page', async () => {
  const plan = await newPlan()
  await mintShare(server, plan.id, { side: 'buyer', role: 'viewer', label: 'Ana Ruiz (CFO)' })
  await asPerson(plan, plan.seller, async ({ page }) => {
    await page.locator('#timeline .point').first().waitFor()
    await page.getByTestId('health').waitFor()
    assert.deepEqual(await seriousViolations(page), [], 'the edit view')
    await page.getByRole('button', { name: 'Share', exact: true }).click()
    await page.locator('.share-dialog tr', { hasText: 'Ana Ruiz (CFO)' }).waitFor()
    assert.deepEqual(await seriousViolations(page), [], 'the Share dialog')
    await page.keyboard.press('Escape')
    await page.locator('.share-dialog').waitFor({ state: 'detached' })
    // An editor's Read view: the Read/Edit switch and Download PDF in the header.
    await page.getByRole('button', { name: 'Read', exact: true }).click()
    await page.getByTestId('read-view').waitFor()
    await page.getByTestId('read-health').waitFor()
    assert.deepEqual(await seriousViolations(page), [], 'an editor\'s read view')
  })
  // A viewer's page is the read view: a document with the plan's health, timeline and tables.
  const viewer = await mintShare(server, plan.id, { side: 'buyer', role: 'viewer', label: 'CFO' })
  await asPerson(plan, viewer, async ({ page }) => {
    await page.getByTestId('read-view').waitFor()
    await page.getByTestId('read-health').waitFor()
    assert.deepEqual(await seriousViolations(page), [], 'the viewer\'s page')
  }, { status: 'live' })
})
