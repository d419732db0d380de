// Browser harness: Debian's Chromium driven by playwright-core, against the real server serving
// the built web client (web/dist). Waits are for conditions, never fixed sleeps.
import { chromium } from 'playwright-core'
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { before, after } from 'node:test'
import assert from 'node:assert/strict'
import { repoRoot, waitFor, startServer, tempData } from './harness.js'

export const webRoot = join(repoRoot, 'web', 'dist')
export const artifacts = join(repoRoot, 'tests', 'js', 'artifacts')
const executablePath = process.env.MAPLINE_CHROMIUM || '/usr/bin/chromium'

/** Launches headless Chromium; fails with a clear message when it or the build is missing. */
export async function launch () {
  if (!existsSync(executablePath)) throw new Error(`no Chromium at ${executablePath}: install Debian's chromium (./scripts/test.sh does)`)
  if (!existsSync(join(webRoot, 'index.html'))) throw new Error('web/dist is not built: run npm run build in web/ (./scripts/test.sh does)')
  mkdirSync(artifacts, { recursive: true })
  return chromium.launch({
    executablePath,
    headless: true,
    // The flags that keep Chromium off the network it cannot reach here (see the machine notes).
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-default-apps']
  })
}

/**
 * Opens a share link in a new browser context (a separate person: own storage, own IndexedDB).
 * Uncaught script errors are collected in `errors`, console errors in `consoleErrors`, and
 * Content-Security-Policy violations (`securitypolicyviolation` events, reported from the page
 * before any of its own scripts run) in `violations`; tests assert there are none. `setup(context)`
 * runs before the page opens. A `null` token opens the plan's address without a fragment.
 */
export async function openLink (browser, server, planId, token, { viewport = { width: 1280, height: 900 }, isMobile = false, setup = null, locale = undefined } = {}) {
  const context = await browser.newContext({ viewport, isMobile, hasTouch: isMobile, ...(locale === undefined ? {} : { locale, timezoneId: 'UTC' }) })
  // Whatever a test must install before the page's first script (clock, init scripts).
  if (setup !== null) await setup(context)
  const violations = []
  await context.exposeBinding('__maplineCspViolation', (_source, violation) => { violations.push(violation) })
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', e => {
      window.__maplineCspViolation(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile}:${e.lineNumber})`)
    })
  })
  const page = await context.newPage()
  const errors = []
  const consoleErrors = []
  page.on('pageerror', error => errors.push(error.message))
  page.on('console', message => { if (message.type() === 'error') consoleErrors.push(message.text()) })
  await page.goto(`${server.url}/p/${planId}${token === null ? '' : `#token=${token}`}`)
  return { context, page, errors, consoleErrors, violations }
}

/** The sync status the page shows (`saved`, `syncing`, `offline`, `connecting`, `revoked`). */
export function syncStatus (page) {
  return page.getByTestId('sync-status').getAttribute('data-status')
}

export async function untilStatus (page, status, timeout = 15000) {
  await page.locator(`[data-testid="sync-status"][data-status="${status}"]`).waitFor({ timeout })
}

/** Waits for the page shown instead of a plan (`revoked`, `expired`, `invalid`, `no_token`). */
export async function untilLinkPage (page, problem, timeout = 15000) {
  await page.locator(`[data-testid="link-page"][data-problem="${problem}"]`).waitFor({ timeout })
}

/** What this browser keeps of a plan: its IndexedDB databases with how many records each holds,
 * and its localStorage keys. */
export function planCopy (page, planId) {
  return page.evaluate(async id => {
    const databases = []
    for (const { name } of await indexedDB.databases()) {
      if (!name.includes(id)) continue
      const db = await new Promise((resolve, reject) => {
        const request = indexedDB.open(name)
        request.onsuccess = () => resolve(request.result)
        request.onerror = () => reject(request.error)
      })
      let records = 0
      for (const store of db.objectStoreNames) {
        records += await new Promise((resolve, reject) => {
          const request = db.transaction(store).objectStore(store).count()
          request.onsuccess = () => resolve(request.result)
          request.onerror = () => reject(request.error)
        })
      }
      db.close()
      databases.push({ name, records })
    }
    return { databases, storage: Object.keys(localStorage).filter(key => key.includes(id)) }
  }, planId)
}

/** Whether a kept copy (`planCopy`) holds nothing of the plan: no database with a record, no
 * localStorage key. */
export function copyIsGone (copy) {
  return copy.databases.every(db => db.records === 0) && copy.storage.length === 0
}

/** Waits until an input (or textarea) shows `value`. */
export function untilValue (locator, value, what = 'the field') {
  return waitFor(async () => (await locator.inputValue()) === value, { what: `${what} to show ${JSON.stringify(value)}` })
}

/** Waits until a date field (`DateField`: typed in the locale's format) holds the ISO date
 * `iso` (its `data-date`), whatever the browser's locale shows. */
export async function untilDate (field, iso, what = 'the date', timeout = 10000) {
  await waitFor(async () => (await field.getAttribute('data-date')) === iso, { timeout, what: `${what} to be ${iso}` })
}

/** Types the ISO date `iso` into a date field (ISO is accepted in every locale) and presses
 * Enter, which commits it. */
export async function enterDate (field, iso) {
  await field.fill(iso)
  await field.press('Enter')
}

/**
 * One server (serving web/dist, on a fresh data file) and one browser for a test file's tests,
 * started before them and stopped after. `started({ server, browser })` hands them over.
 */
export function browserSuite (started) {
  let data, server, browser
  before(async () => {
    data = tempData()
    server = await startServer({ dataFile: data.file, web: webRoot })
    browser = await launch()
    started({ server, browser })
  })
  after(async () => {
    await browser?.close()
    await server?.stop()
    data?.cleanup()
  })
}

/** No script error, no console error and no Content-Security-Policy violation on any page.
 * A last argument that is a RegExp (or null) names console errors a test causes on purpose
 * (e.g. a refused request). */
export function noPageErrors (...people) {
  const last = people.at(-1)
  const expected = last instanceof RegExp || last === null ? people.pop() : null
  for (const person of people) {
    assert.deepEqual(person.errors, [], 'no script errors on the page')
    assert.deepEqual(person.violations, [], 'no Content-Security-Policy violations')
    assert.deepEqual(person.consoleErrors.filter(text => expected === null || !expected.test(text)), [], 'no console errors')
  }
}
