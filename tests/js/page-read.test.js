// The read view (issue 13, defect 6): a viewer link opens the plan as a document with no form
// field; editors switch between Read and Edit and the choice survives a reload; it prints to PDF
// (A4 and Letter) with every step in it, and reads on a phone without sideways scrolling.
// Screenshots (desktop, phone, the printed first page) are saved in tests/js/artifacts.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync, writeFileSync, copyFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createPlan, api, mintShare, client, synced, destroy, waitFor } from './lib/harness.js'
import { openLink, untilStatus, artifacts, browserSuite, noPageErrors } from './lib/browser.js'

let server, browser
browserSuite(started => ({ server, browser } = started))


/** A mid-market plan going live in about two months, with a criterion quoted in the buyer's
 * words, a risk and a success definition, so every section of the read view has content. */
async function fullPlan (title = 'Northwind Health × Mapline — onboarding rollout') {
  const goLive = new Date(Date.now() + 60 * 86_400_000).toISOString().slice(0, 10)
  const plan = await createPlan(server, { title, buyerOrg: 'Northwind Health', sellerOrg: 'Mapline Inc', goLive, template: 'mid-market' })
  const seller = client(server, plan.id, plan.seller)
  await synced(seller)
  const Y = (await import('yjs'))
  seller.doc.transact(() => {
    const meta = seller.map('meta')
    meta.set('objective', 'Cut onboarding time for new support agents from 6 weeks to 3')
    meta.set('goLiveReason', 'The new support season starts the week after')
    meta.set('costOfInaction', 'Each month of delay costs about $40,000 in contractor hours')
    seller.map('criteria').set('cr-sso', new Y.Map([['text', 'SSO with Okta on day one'], ['priority', 'must'],
      ['quote', 'If it is not behind Okta, security says no'], ['source', 'CISO, discovery call'], ['order', 'a0']]))
    seller.map('risks').set('rk-budget', new Y.Map([['text', 'Budget freeze in Q1'], ['kind', 'budget'], ['status', 'open'],
      ['mitigation', 'Sign before the freeze'], ['order', 'a0']]))
    seller.map('success').set('definition', 'Every new agent handles tickets alone by week 3')
  })
  await waitFor(async () => (await api(server, 'GET', `/api/plans/${plan.id}`)).body.plan.criteria.length === 1, { what: 'the plan content stored' })
  destroy(seller)
  const { body } = await api(server, 'GET', `/api/plans/${plan.id}`)
  return { ...plan, steps: body.plan.milestones.map(m => m.title) }
}

async function untilReadView (page) {
  await page.getByTestId('read-view').waitFor()
  await page.getByTestId('read-health').waitFor()
}

/** Form controls anywhere in the page's main content (the read view must have none). */
function formFields (page) {
  return page.evaluate(() => [...document.querySelectorAll('main input, main select, main textarea, main [contenteditable]:not([contenteditable="false"])')]
    .map(el => el.outerHTML.slice(0, 100)))
}

/** Whether the page is wider than its window (a phone would scroll sideways or zoom out). */
function overflow (page) {
  return page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, window: window.innerWidth }))
}

/** The text of a PDF, with `pdftotext` (Debian's poppler-utils), and its page count. */
function pdfText (pdf, dir, name) {
  const file = join(dir, `${name}.pdf`)
  writeFileSync(file, pdf)
  const text = execFileSync('pdftotext', ['-layout', file, '-'], { encoding: 'utf8' })
  const pages = text.split('\f').filter(p => p.trim() !== '').length
  return { file, text, pages }
}

test('a viewer link opens the read view: the plan as a document, every step as text, no form field', async () => {
  const plan = await fullPlan()
  const token = await mintShare(server, plan.id, { side: 'buyer', role: 'viewer', label: 'Ana Ruiz (CFO)' })
  const cfo = await openLink(browser, server, plan.id, token)
  try {
    await untilStatus(cfo.page, 'live')
    await untilReadView(cfo.page)
    assert.deepEqual(await formFields(cfo.page), [], 'no input, select, textarea or contenteditable')
    // The whole page: no form field in the header either (Export and Download PDF are buttons).
    assert.equal(await cfo.page.locator('input, select, textarea, [contenteditable]:not([contenteditable="false"])').count(), 0)
    // Viewers have no Read/Edit switch: there is nothing to edit.
    assert.equal(await cfo.page.getByRole('group', { name: 'View' }).count(), 0)

    const read = cfo.page.getByTestId('read-view')
    const text = await read.innerText()
    // Up top: go-live and why, objective, cost of inaction; then health in words.
    for (const part of ['The new support season starts the week after', 'Cut onboarding time for new support agents from 6 weeks to 3',
      'Each month of delay costs about $40,000 in contractor hours', 'Budget freeze in Q1', 'Sign before the freeze',
      'Every new agent handles tickets alone by week 3', 'SSO with Okta on day one', '“If it is not behind Okta, security says no”', 'CISO, discovery call']) {
      assert.ok(text.includes(part), `the read view says ${JSON.stringify(part)}`)
    }
    assert.equal(await cfo.page.getByRole('heading', { level: 1 }).innerText(), 'Northwind Health × Mapline — onboarding rollout')
    assert.match(await cfo.page.getByTestId('read-health').innerText(), /^(On track|At risk|Off track)/)
    // Every section, in the order.
    const headings = await read.locator('h2').allInnerTexts()
    assert.deepEqual(headings, ["Why we're doing this", 'How the plan is doing', 'Timeline', 'Plan steps', "Who's involved",
      'What matters in the decision', 'Risks and open questions', 'What success looks like', 'Date changes'])
    // The timeline is labelled: each dated step with its date, plus go-live.
    const timeline = await read.locator('.read-timeline li').allInnerTexts()
    assert.ok(timeline.some(t => t.includes('Go-live')), 'go-live on the timeline')
    // The steps as tables: step, side, owner, due, status, waits for; every step title as text.
    assert.deepEqual(await read.locator('.steps-table').first().locator('thead th').allInnerTexts(), ['Step', 'Side', 'Owner', 'Due', 'Status', 'Waits for'])
    const rows = await read.locator('.steps-table tbody th').allInnerTexts()
    assert.deepEqual([...rows].sort(), [...plan.steps].sort(), 'every step title, once, as text')
    for (const title of plan.steps) assert.ok(timeline.some(t => t.includes(title)), `${title} on the timeline`)

    await cfo.page.screenshot({ path: join(artifacts, 'read-desktop.png'), fullPage: true })
    noPageErrors(cfo)
  } finally {
    await cfo.context.close()
  }
})

test('the read view prints to PDF (A4 and Letter) with every step title, without controls, and renders as a page image', async () => {
  const plan = await fullPlan('Contoso × Mapline rollout')
  const token = await mintShare(server, plan.id, { side: 'buyer', role: 'viewer', label: 'CFO' })
  const cfo = await openLink(browser, server, plan.id, token)
  const dir = mkdtempSync(join(tmpdir(), 'mapline-pdf-'))
  try {
    await untilStatus(cfo.page, 'live')
    await untilReadView(cfo.page)
    // "Download PDF" is the browser's print: the button calls window.print().
    await cfo.page.evaluate(() => { window.__printed = 0; window.print = () => { window.__printed++ } })
    await cfo.page.getByRole('button', { name: 'Download PDF' }).click()
    assert.equal(await cfo.page.evaluate(() => window.__printed), 1)

    for (const format of ['A4', 'Letter']) {
      const pdf = pdfText(await cfo.page.pdf({ format, printBackground: true }), dir, format)
      const flat = pdf.text.replace(/\s+/g, ' ')
      for (const title of plan.steps) assert.ok(flat.includes(title.replace(/\s+/g, ' ')), `${format}: the PDF has “${title}”`)
      assert.ok(flat.includes('Contoso × Mapline rollout'), `${format}: the title`)
      // No controls printed, and the sections after the timeline start on their own pages.
      for (const control of ['Download PDF', 'Export', 'Skip to the plan steps']) assert.ok(!flat.includes(control), `${format}: no “${control}”`)
      assert.ok(pdf.pages >= 6, `${format}: sections on their own pages (${pdf.pages} pages)`)
      const pages = pdf.text.split('\f')
      const stepsPage = pages.findIndex(p => p.includes('Plan steps'))
      assert.ok(stepsPage > 0 && /^\s*Plan steps/.test(pages[stepsPage]), `${format}: Plan steps starts a page`)
      if (format === 'A4') {
        execFileSync('pdftoppm', ['-png', '-r', '60', '-f', '1', '-l', '2', pdf.file, join(dir, 'printed')])
        const images = readdirSync(dir).filter(f => f.startsWith('printed') && f.endsWith('.png')).sort()
        assert.equal(images.length, 2, 'two printed pages rendered')
        images.forEach((image, i) => copyFileSync(join(dir, image), join(artifacts, `read-printed-page-${i + 1}.png`)))
      }
    }
    noPageErrors(cfo)
  } finally {
    rmSync(dir, { recursive: true, force: true })
    await cfo.context.close()
  }
})

test('an editor switches between Read and Edit, and the choice survives a reload on this device', async () => {
  const plan = await fullPlan()
  const seller = await openLink(browser, server, plan.id, plan.seller)
  try {
    await untilStatus(seller.page, 'saved')
    // Editors start in Edit: the form.
    const view = seller.page.getByRole('group', { name: 'View' })
    assert.equal(await view.getByRole('button', { name: 'Edit' }).getAttribute('aria-pressed'), 'true')
    await seller.page.getByLabel('Objective', { exact: true }).waitFor()
    assert.ok((await formFields(seller.page)).length > 0)

    await view.getByRole('button', { name: 'Read' }).click()
    await untilReadView(seller.page)
    assert.deepEqual(await formFields(seller.page), [])
    assert.equal(await view.getByRole('button', { name: 'Read' }).getAttribute('aria-pressed'), 'true')

    // A reload keeps Read.
    await seller.page.reload()
    await untilStatus(seller.page, 'saved')
    await untilReadView(seller.page)
    assert.deepEqual(await formFields(seller.page), [])

    // Back to Edit, and a reload keeps Edit.
    await seller.page.getByRole('group', { name: 'View' }).getByRole('button', { name: 'Edit' }).click()
    await seller.page.getByLabel('Objective', { exact: true }).waitFor()
    await seller.page.reload()
    await untilStatus(seller.page, 'saved')
    await seller.page.getByLabel('Objective', { exact: true }).waitFor()
    assert.equal(await seller.page.getByTestId('read-view').count(), 0)
    noPageErrors(seller)
  } finally {
    await seller.context.close()
  }
})

test('the read view on a phone (390 px) has no sideways scroll (screenshot saved)', async () => {
  const plan = await fullPlan()
  const token = await mintShare(server, plan.id, { side: 'buyer', role: 'viewer', label: 'Ana Ruiz (CFO)' })
  const phone = await openLink(browser, server, plan.id, token, { viewport: { width: 390, height: 844 }, isMobile: true })
  try {
    await untilStatus(phone.page, 'live')
    await untilReadView(phone.page)
    const { scroll, window: width } = await overflow(phone.page)
    assert.ok(scroll <= 390 && width === 390, `the read view is ${scroll}px wide on a ${width}px screen`)
    // Nothing inside is cut off either: no element reaches past the right edge.
    const wide = await phone.page.evaluate(() => [...document.querySelectorAll('main *')]
      .filter(el => el.getBoundingClientRect().right > window.innerWidth + 0.5)
      .map(el => `${el.tagName.toLowerCase()}.${el.className}`).slice(0, 5))
    assert.deepEqual(wide, [])
    // Usable, not just squeezed: each step reads as a block the width of the screen, its values
    // under their labels, rather than six columns a few letters wide.
    const cells = await phone.page.locator('.steps-table tbody th').evaluateAll(cells => cells.map(c => Math.round(c.getBoundingClientRect().width)))
    assert.ok(cells.length > 0 && cells.every(w => w >= 300), `step cells are ${cells.join(', ')} px wide`)
    const label = await phone.page.locator('.steps-table tbody td[data-label="Due"]').first().evaluate(td => getComputedStyle(td, '::before').content)
    assert.equal(label, '"Due: "', 'each value is labelled on a phone')
    await phone.page.screenshot({ path: join(artifacts, 'read-phone.png'), fullPage: true })
    noPageErrors(phone)
  } finally {
    await phone.context.close()
  }
})
