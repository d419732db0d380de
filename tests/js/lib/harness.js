// Test harness: start the real `mapline` binary on port 0 and talk to it over real sockets with
// real Yjs clients (yjs + y-websocket over ws). Waits are for conditions with deadlines, never
// fixed sleeps.
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import * as encoding from 'lib0/encoding'

const here = dirname(fileURLToPath(import.meta.url))
export const repoRoot = join(here, '..', '..', '..')
export const binary = process.env.MAPLINE_BIN || join(repoRoot, 'target', 'debug', 'mapline')
export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef'

// Every y-websocket provider adds a process 'exit' listener; tests open hundreds on purpose.
process.setMaxListeners(0)

/** Waits until `check()` returns a truthy value (returned), or fails after `timeout` ms. */
export async function waitFor (check, { timeout = 10000, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

/** Resolves as `promise` does, or fails after `timeout` ms naming `what`. */
export function within (promise, { timeout = 15000, what = 'promise' } = {}) {
  let timer
  const deadline = new Promise((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeout} ms waiting for ${what}`)), timeout)
  })
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer))
}

/** A fresh data folder, removed by `cleanup()`. */
export function tempData () {
  const dir = mkdtempSync(join(tmpdir(), 'mapline-test-'))
  return { dir, file: join(dir, 'data', 'mapline.redb'), cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

/**
 * Starts the server on a free port with the given data file and resolves once it listens.
 * `web` is the built web client's folder (none by default); `adminToken: null` starts without
 * one (the stored or a generated credential). `listenTimeout` (ms) bounds the wait for the
 * listening line (a cluster node applies the whole log first). Returns { url, wsUrl, stop(),
 * kill9(), output() }.
 */
export async function startServer ({ dataFile, args = [], env = {}, web = join(repoRoot, 'no-web-client-in-tests'), authFailuresPerMinute = 0, adminToken = ADMIN_TOKEN, addr = '127.0.0.1:0', listenTimeout = 15000 } = {}) {
  const proc = spawn(binary, [
    'serve', '--addr', addr, '--data', dataFile, ...(adminToken === null ? [] : ['--admin-token', adminToken]),
    // Tests send bad tokens on purpose, so no limit unless a test asks for one.
    '--web', web, '--auth-failures-per-minute', String(authFailuresPerMinute), ...args
  ], { env: { ...process.env, MAPLINE_LOG: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  proc.stdout.on('data', chunk => { stdout += chunk })
  proc.stderr.on('data', chunk => { stderr += chunk })
  const exited = new Promise(resolve => proc.on('exit', (code, signal) => resolve({ code, signal })))
  const url = await Promise.race([
    waitFor(() => stdout.match(/listening on (http:\/\/[\d.:]+)/)?.[1], { timeout: listenTimeout, what: 'the server to listen' }),
    exited.then(({ code }) => { throw new Error(`server exited with ${code} before listening:\n${stderr}`) })
  ])
  return {
    url,
    wsUrl: url.replace('http://', 'ws://') + '/sync',
    proc,
    exited,
    output: () => ({ stdout, stderr }),
    /** SIGTERM and wait for a clean exit. */
    async stop () {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
      return exited
    },
    /** SIGKILL: the crash case. */
    async kill9 () {
      proc.kill('SIGKILL')
      return exited
    }
  }
}

/** A loopback port free right now (for a server that must know its address up front). */
export function freePort () {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address()
      probe.close(() => resolve(port))
    })
  })
}

/** Calls the JSON API; resolves { status, body }. */
export async function api (server, method, path, { body, token = ADMIN_TOKEN, raw, headers = {} } = {}) {
  const init = { method, headers: { ...headers } }
  if (token) init.headers.authorization = `Bearer ${token}`
  if (raw !== undefined) {
    init.body = raw
  } else if (body !== undefined) {
    init.body = JSON.stringify(body)
    init.headers['content-type'] = 'application/json'
  }
  const response = await fetch(server.url + path, init)
  const text = await response.text()
  let json
  try { json = JSON.parse(text) } catch { json = text }
  return { status: response.status, body: json }
}

/** Creates a plan as admin and returns { id, seller, buyer } (the two default share tokens). */
export async function createPlan (server, fields = {}) {
  const { status, body } = await api(server, 'POST', '/api/plans', {
    body: { title: 'Rollout', buyerOrg: 'Northwind', sellerOrg: 'Mapline', goLive: '2027-04-01', ...fields }
  })
  if (status !== 201) throw new Error(`create plan: ${status} ${JSON.stringify(body)}`)
  const token = side => body.shares.find(s => s.side === side).token
  return { id: body.id, seller: token('seller'), buyer: token('buyer'), shares: body.shares }
}

/** Mints a share link as admin; returns its token. */
export async function mintShare (server, planId, { side = 'buyer', role = 'viewer', label = 'Guest' } = {}) {
  const { status, body } = await api(server, 'POST', `/api/plans/${planId}/shares`, { body: { side, role, label } })
  if (status !== 201) throw new Error(`mint share: ${status} ${JSON.stringify(body)}`)
  return body.token
}

/** A real y-websocket client for a plan. `doc` may be given to reuse a document (offline edits). */
export function client (server, planId, token, { doc = new Y.Doc(), params = {}, connect = true } = {}) {
  const provider = new WebsocketProvider(server.wsUrl, planId, doc, {
    WebSocketPolyfill: WebSocket,
    params: { token, ...params },
    disableBc: true,
    connect,
    maxBackoffTime: 200
  })
  return { doc, provider, map: name => doc.getMap(name) }
}

/** Resolves when the provider has synced with the server. */
export function synced (c, timeout = 10000) {
  return waitFor(() => c.provider.synced, { timeout, what: 'the client to sync' })
}

/** Destroys clients without waiting. */
export function destroy (...clients) {
  for (const c of clients) c.provider.destroy()
}

/**
 * A raw WebSocket to the sync endpoint, for protocol-level tests. Collects binary messages and
 * resolves `closed` with { code, reason } when the server closes it.
 */
export function rawSocket (server, planId, token, { query = '' } = {}) {
  const ws = new WebSocket(`${server.wsUrl}/${planId}?token=${encodeURIComponent(token)}${query}`)
  ws.binaryType = 'nodebuffer'
  const messages = []
  ws.on('message', (data, isBinary) => { if (isBinary) messages.push(new Uint8Array(data)) })
  const opened = new Promise((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('unexpected-response', (_req, res) => reject(new Error(`refused with HTTP ${res.statusCode}`)))
    ws.once('error', reject)
  })
  const closed = new Promise(resolve => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })))
  return { ws, messages, opened, closed }
}

/** The status of a refused WebSocket upgrade (or 101 if it was accepted). */
export function upgradeStatus (url, headers = {}) {
  return new Promise(resolve => {
    const ws = new WebSocket(url, { headers })
    ws.once('unexpected-response', (_req, res) => {
      let text = ''
      res.on('data', chunk => { text += chunk })
      res.on('end', () => { resolve({ status: res.statusCode, body: text ? JSON.parse(text) : null }); ws.terminate() })
    })
    ws.once('open', () => { resolve({ status: 101 }); ws.close() })
    ws.once('error', () => {})
  })
}

/** The value of one Prometheus metric line (first sample with that name). */
export async function metric (server, name) {
  const text = await (await fetch(server.url + '/metrics')).text()
  const line = text.split('\n').find(l => l.startsWith(name + ' ') || l.startsWith(name + '{'))
  return line ? Number(line.split(' ').pop()) : undefined
}

export { Y }

/** A document's content as JSON with sorted keys, so equal states compare equal as strings. */
export function canonical (doc) {
  const sort = value => Array.isArray(value)
    ? value.map(sort)
    : value && typeof value === 'object'
      ? Object.fromEntries(Object.keys(value).sort().map(k => [k, sort(value[k])]))
      : value
  return JSON.stringify(sort(doc.toJSON()))
}

/**
 * An awareness message with the given states, encoded by hand so that invalid ones can be sent:
 * `states` is a list of [clientId, clock, json string].
 */
export function awarenessFrame (states) {
  const inner = encoding.createEncoder()
  encoding.writeVarUint(inner, states.length)
  for (const [id, clock, json] of states) {
    encoding.writeVarUint(inner, id)
    encoding.writeVarUint(inner, clock)
    encoding.writeVarString(inner, json)
  }
  const outer = encoding.createEncoder()
  encoding.writeVarUint(outer, 1)
  encoding.writeVarUint8Array(outer, encoding.toUint8Array(inner))
  return encoding.toUint8Array(outer)
}

/** A sync-protocol update message carrying `update`. */
export function updateFrame (update) {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, 0)
  encoding.writeVarUint(encoder, 2)
  encoding.writeVarUint8Array(encoder, update)
  return encoding.toUint8Array(encoder)
}
