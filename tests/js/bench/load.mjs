// Load generator: real yjs + y-websocket clients against Mapline and, in the same run, against
// @y/websocket-server (which persists nothing) as the baseline. Prints a Markdown table.
//
//   node bench/load.mjs [--plans 100] [--clients 4] [--rate 5] [--seconds 20]
//                       [--connect-clients 2000] [--connect-plans 500] [--ingest 20000] [--idle 1000]
//
// Mapline runs from target/release/mapline (build it first: cargo build --release -p mapline).
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { readFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

const here = dirname(fileURLToPath(import.meta.url))
const repo = join(here, '..', '..', '..')
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : fallback
}
const P = {
  plans: arg('plans', 100), clients: arg('clients', 4), rate: arg('rate', 5), seconds: arg('seconds', 20),
  connectClients: arg('connect-clients', 2000), connectPlans: arg('connect-plans', 500),
  ingest: arg('ingest', 20000), idle: arg('idle', 1000)
}
const ADMIN = 'bench-admin-token-0123456789abcdef'
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
async function until (check, timeout = 120000) {
  const deadline = Date.now() + timeout
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('benchmark step timed out')
    await sleep(2)
  }
}

function procStats (pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  const ticks = Number(stat[11]) + Number(stat[12])
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = key => Number(status.match(new RegExp(`${key}:\\s+(\\d+)`))[1])
  return { cpu: ticks / 100, rss: kb('VmRSS') * 1024, peak: kb('VmHWM') * 1024 }
}
const selfCpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6 }

async function startMapline (dataDir, binary = join(repo, 'target', 'release', 'mapline'), label = '') {
  const proc = spawn(binary, ['serve', '--addr', '127.0.0.1:0',
    '--data', join(dataDir, 'm.redb'), '--admin-token', ADMIN, '--web', '/nonexistent'],
  { env: { ...process.env, MAPLINE_LOG: 'warn' }, stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  proc.stdout.on('data', c => { out += c })
  await until(() => /listening on/.test(out), 20000)
  const url = out.match(/listening on (http:\/\/[\d.:]+)/)[1]
  return {
    name: `Mapline${label} (redb, fsync per batch)`,
    proc,
    ws: url.replace('http', 'ws') + '/sync',
    async plan () {
      const r = await fetch(url + '/api/plans', {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ title: 'Bench', buyerOrg: 'B', sellerOrg: 'S', goLive: '2027-04-01' })
      })
      const body = await r.json()
      return { room: body.id, token: body.shares[0].token }
    },
    stop: () => new Promise(resolve => { proc.on('exit', resolve); proc.kill('SIGTERM') })
  }
}

/** A port that was free a moment ago (the baseline server takes a port number, not 0). */
function freePort () {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address()
      probe.close(() => resolve(port))
    })
  })
}

async function startBaseline () {
  const port = await freePort()
  const proc = spawn(process.execPath, [join(here, '..', 'node_modules', '@y', 'websocket-server', 'src', 'server.js')],
    { env: { ...process.env, HOST: '127.0.0.1', PORT: String(port) }, stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  proc.stdout.on('data', c => { out += c })
  await until(() => /running at/.test(out), 20000)
  let n = 0
  return {
    name: '@y/websocket-server 0.1.1 (in memory)',
    proc,
    ws: `ws://127.0.0.1:${port}`,
    async plan () { return { room: `bench-${n++}`, token: 'none' } },
    stop: () => new Promise(resolve => { proc.on('exit', resolve); proc.kill('SIGTERM') })
  }
}

function connect (server, plan) {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(server.ws, plan.room, doc, {
    WebSocketPolyfill: WebSocket, params: { token: plan.token }, disableBc: true
  })
  return { doc, provider }
}
const destroyAll = clients => clients.forEach(c => c.provider.destroy())
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]

/** P plans × C clients × R updates/s for S seconds: delivery latency to the other clients. */
async function fanout (server) {
  const plans = await Promise.all(Array.from({ length: P.plans }, () => server.plan()))
  const clients = plans.flatMap(plan => Array.from({ length: P.clients }, () => ({ plan, ...connect(server, plan) })))
  await until(() => clients.every(c => c.provider.synced))
  // A plan of realistic size, written by a client so every server (and every build) gets the
  // same documents: 17 milestones like the enterprise template's.
  for (let p = 0; p < clients.length; p += P.clients) {
    const doc = clients[p].doc
    doc.transact(() => {
      for (let k = 0; k < 17; k++) {
        doc.getMap('milestones').set(`ms-${k}`, new Y.Map([
          ['title', `Milestone ${k} of the plan, with a realistic title`], ['workstream', 'legal_procurement'],
          ['side', 'joint'], ['owner', 'Dana Whitfield'], ['due', `2027-03-${String(k + 1).padStart(2, '0')}`],
          ['status', 'not_started'], ['dependsOn', Y.Array.from(k ? [`ms-${k - 1}`] : [])], ['order', `a${k}`]
        ]))
      }
    })
  }
  // Every client edits the notes of its own milestone: plan data, so the server derives a
  // change record for every update.
  clients.forEach((c, i) => c.doc.getMap('milestones').set(`bench-${i}`, new Y.Map([['title', `Bench ${i}`]])))
  await until(() => clients.every(c => c.doc.getMap('milestones').size >= 17 + P.clients))
  const latencies = []
  for (const c of clients) {
    c.doc.getMap('milestones').observeDeep((events, txn) => {
      if (txn.local) return
      for (const event of events) {
        if (event.path.length !== 1) continue
        for (const key of event.keysChanged) {
          if (key === 'notes') latencies.push(performance.now() - Number(event.target.get('notes')))
        }
      }
    })
  }
  const before = procStats(server.proc.pid)
  const selfBefore = selfCpu()
  const started = performance.now()
  let sent = 0
  const timers = clients.map((c, i) => setInterval(() => {
    c.doc.getMap('milestones').get(`bench-${i}`).set('notes', String(performance.now()))
    sent++
  }, 1000 / P.rate))
  await sleep(P.seconds * 1000)
  timers.forEach(clearInterval)
  await sleep(500) // let the last deliveries arrive before reading the counters
  const after = procStats(server.proc.pid)
  const elapsed = (performance.now() - started) / 1000
  destroyAll(clients)
  latencies.sort((a, b) => a - b)
  return {
    sent,
    delivered: latencies.length,
    p50: pct(latencies, 0.5),
    p99: pct(latencies, 0.99),
    serverCpu: after.cpu - before.cpu,
    peakRss: after.peak,
    loadCpu: selfCpu() - selfBefore,
    elapsed
  }
}

/** N clients over M plans connecting at once: time until every one has synced. */
async function connectStorm (server) {
  const plans = await Promise.all(Array.from({ length: P.connectPlans }, () => server.plan()))
  const started = performance.now()
  const clients = Array.from({ length: P.connectClients }, (_, i) => connect(server, plans[i % plans.length]))
  await until(() => clients.every(c => c.provider.synced))
  const ms = performance.now() - started
  destroyAll(clients)
  return ms
}

/** Idle connections: server RSS growth per connection. */
async function idleRss (server) {
  const plan = await server.plan()
  const before = procStats(server.proc.pid).rss
  const clients = Array.from({ length: P.idle }, () => connect(server, plan))
  await until(() => clients.every(c => c.provider.synced))
  await sleep(1000)
  const after = procStats(server.proc.pid).rss
  destroyAll(clients)
  return (after - before) / P.idle
}

/** N small updates sent one by one into one plan: server CPU to ingest them. */
async function ingest (server) {
  const plan = await server.plan()
  const writer = connect(server, plan)
  const observer = connect(server, plan)
  await until(() => writer.provider.synced && observer.provider.synced)
  const before = procStats(server.proc.pid)
  const map = writer.doc.getMap('log')
  for (let i = 0; i < P.ingest; i++) {
    map.set(`k${i % 500}`, i)
    if (i % 200 === 199) await sleep(0)
  }
  await until(() => observer.doc.getMap('log').get(`k${(P.ingest - 1) % 500}`) === P.ingest - 1)
  const cpu = procStats(server.proc.pid).cpu - before.cpu
  destroyAll([writer, observer])
  return { cpu, plan }
}

const fmt = (n, d = 1) => n === undefined ? '–' : n.toFixed(d)
// MAPLINE_COMPARE_BIN=<path to another mapline binary> adds a run of that build (e.g. the
// previous commit) in the same invocation, to measure what a change costs.
const targets = [{ label: '', start: dir => startMapline(dir), mapline: true }]
if (process.env.MAPLINE_COMPARE_BIN) {
  const bin = process.env.MAPLINE_COMPARE_BIN
  const label = ` [${process.env.MAPLINE_COMPARE_LABEL || bin}]`
  targets.push({ start: dir => startMapline(dir, bin, label), mapline: true })
}
targets.push({ start: startBaseline, mapline: false })
const rows = []
for (const target of targets) {
  const dataDir = mkdtempSync(join(tmpdir(), 'mapline-bench-'))
  let server = await target.start(dataDir)
  const f = await fanout(server)
  const storm = await connectStorm(server)
  const idle = await idleRss(server)
  const ing = await ingest(server)
  let cold
  if (target.mapline) {
    await server.stop()
    server = await target.start(dataDir)
    const t = performance.now()
    const c = connect(server, ing.plan)
    await until(() => c.provider.synced)
    cold = performance.now() - t
    destroyAll([c])
  }
  await server.stop()
  rmSync(dataDir, { recursive: true, force: true })
  rows.push({ name: server.name, f, storm, idle, ing, cold })
  console.error(`done: ${server.name}`)
}

console.log(`Parameters: ${JSON.stringify(P)}; node ${process.version}; ${new Date().toISOString()}\n`)
console.log('| server | delivered | p50 ms | p99 ms | server CPU s | peak RSS MiB | load-gen CPU s | connect storm ms | idle RSS/conn KiB | ingest CPU s | cold load ms |')
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
for (const r of rows) {
  console.log(`| ${r.name} | ${r.f.delivered}/${r.f.sent * (P.clients - 1)} | ${fmt(r.f.p50, 2)} | ${fmt(r.f.p99, 2)} | ${fmt(r.f.serverCpu, 2)} | ${fmt(r.f.peakRss / 1048576)} | ${fmt(r.f.loadCpu, 2)} | ${fmt(r.storm, 0)} | ${fmt(r.idle / 1024)} | ${fmt(r.ing.cpu, 2)} | ${r.cold === undefined ? 'n/a' : fmt(r.cold, 1)} |`)
}
process.exit(0)
