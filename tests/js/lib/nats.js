// A real NATS JetStream cluster on loopback for the cluster black-box tests: three `nats-server`
// processes, JetStream with its own store dir each and `sync_interval: always`, routes to each
// other and a monitoring port each. The binary is `MAPLINE_NATS_SERVER` or
// `target/venv/bin/nats-server` (scripts/install-nats.sh); a missing binary fails the test, it
// never skips. Mirrors crates/mapline-cluster/tests/common/mod.rs.
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { existsSync, mkdtempSync, mkdirSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { repoRoot, waitFor } from './harness.js'

/** How long a cluster may take to start, or a node to come back healthy. */
export const START_TIMEOUT = 30000

/** The nats-server binary; throws (fails the test) with what to run when it is not there. */
export function natsServerBinary () {
  const path = process.env.MAPLINE_NATS_SERVER || join(repoRoot, 'target', 'venv', 'bin', 'nats-server')
  if (!existsSync(path)) {
    throw new Error(`no nats-server at ${path}: run ./scripts/install-nats.sh (or set MAPLINE_NATS_SERVER)`)
  }
  return path
}

/** Listens on `port` on loopback; resolves the listening server, or null if it is taken. */
function hold (port) {
  return new Promise(resolve => {
    const probe = createServer()
    probe.once('error', () => resolve(null))
    probe.listen(port, '127.0.0.1', () => resolve(probe))
  })
}

const FIRST_PORT = 20000
const PORT_SPAN = 12000
let nextPort = FIRST_PORT + (process.pid * 97) % PORT_SPAN

/**
 * `n` distinct free loopback ports. They are taken below Linux's ephemeral range (32768–60999),
 * so no outgoing connection (the nodes' routes to each other, a client) can take one between
 * choosing it and a node binding it, and each is held until all are chosen (as the Rust
 * harness does: bind(0) ports collided with outgoing route connections).
 */
export async function freePorts (n) {
  const held = []
  for (let tried = 0; held.length < n; tried++) {
    if (tried >= PORT_SPAN) throw new Error(`no ${n} free loopback ports in ${FIRST_PORT}..${FIRST_PORT + PORT_SPAN}`)
    const port = FIRST_PORT + (nextPort++ - FIRST_PORT) % PORT_SPAN
    const server = await hold(port)
    if (server) held.push(server)
  }
  const ports = held.map(s => s.address().port)
  await Promise.all(held.map(s => new Promise(resolve => s.close(resolve))))
  return ports
}

/** `GET url` with a short timeout: { status, body (JSON or text) }, or null while nothing answers. */
export async function httpGet (url, timeout = 2000) {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeout) })
    const text = await response.text()
    let body
    try { body = JSON.parse(text) } catch { body = text }
    return { status: response.status, body }
  } catch {
    return null
  }
}

class NatsNode {
  constructor ({ name, binary, config, log, clientPort, httpPort }) {
    Object.assign(this, { name, binary, config, log, clientPort, httpPort })
    this.proc = null
    this.exited = null
  }

  get url () { return `nats://127.0.0.1:${this.clientPort}` }
  get monitorUrl () { return `http://127.0.0.1:${this.httpPort}` }
  get running () { return this.proc !== null }

  /** Starts the process on its config (same ports, same store dir every time). */
  start () {
    if (this.proc) throw new Error(`${this.name} is already running`)
    const fd = openSync(this.log, 'a')
    const proc = spawn(this.binary, ['-c', this.config], { stdio: ['ignore', 'ignore', fd] })
    closeSync(fd)
    this.proc = proc
    this.exited = new Promise(resolve => proc.on('exit', (code, signal) => resolve({ code, signal })))
  }

  /** SIGKILL: no shutdown, nothing flushed beyond what was fsynced. Resolves once it is gone. */
  async kill9 () {
    if (!this.proc) return
    const { proc, exited } = this
    this.proc = null
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
    await exited
  }

  /** Resolves once `/healthz?js-enabled-only=true` … and then plain `/healthz` answer 200. */
  async healthy (timeout = START_TIMEOUT) {
    await waitFor(async () => {
      if (this.proc && (this.proc.exitCode !== null || this.proc.signalCode !== null)) {
        throw new Error(`${this.name} exited while starting; its log:\n${this.logText()}`)
      }
      return (await httpGet(`${this.monitorUrl}/healthz`))?.status === 200
    }, { timeout, what: `nats node ${this.name} to be healthy` }).catch(err => {
      throw new Error(`${err.message}; its log (tail):\n${this.logText().slice(-4000)}`)
    })
  }

  /** The node's JetStream view (`/jsz`) with account and stream details. */
  async jsz () {
    return (await httpGet(`${this.monitorUrl}/jsz?accounts=true&streams=true`))?.body ?? null
  }

  logText () {
    try { return readFileSync(this.log, 'utf8') } catch { return '' }
  }
}

/**
 * Starts `n` nats-server nodes (a cluster when n > 1) and waits until each is healthy.
 * `syncAlways: false` leaves the server's default fsync interval, which Mapline must refuse.
 * Returns the cluster: `nodes`, `urls`, `monitors` (comma-separated, for --cluster /
 * --nats-monitor), `streamLeader(stream)`, `node(name)`, `kill9(node)`, `restart(node)`,
 * `stop()` (kills all and removes the store dirs).
 */
export async function startNats (n = 3, { syncAlways = true } = {}) {
  const binary = natsServerBinary()
  const dir = mkdtempSync(join(tmpdir(), 'mapline-nats-'))
  const ports = await freePorts(n * 3)
  const triples = Array.from({ length: n }, (_, i) => ports.slice(i * 3, i * 3 + 3))
  const routes = triples.map(([, route]) => `nats-route://127.0.0.1:${route}`)
  const nodes = triples.map(([client, route, http], i) => {
    const name = `n${i + 1}`
    const store = join(dir, name)
    mkdirSync(store)
    const config = join(dir, `${name}.conf`)
    const cluster = n > 1
      ? `cluster {\n  name: mapline-test\n  listen: 127.0.0.1:${route}\n  routes: [${routes.join(', ')}]\n}\n`
      : ''
    writeFileSync(config,
      `server_name: ${name}\nlisten: 127.0.0.1:${client}\nhttp: 127.0.0.1:${http}\n` +
      `jetstream {\n  store_dir: "${store}"${syncAlways ? '\n  sync_interval: always' : ''}\n}\n${cluster}`)
    return new NatsNode({ name, binary, config, log: join(dir, `${name}.log`), clientPort: client, httpPort: http })
  })
  for (const node of nodes) node.start()
  const cluster = {
    dir,
    nodes,
    urls: nodes.map(node => node.url).join(','),
    monitors: nodes.map(node => node.monitorUrl).join(','),
    node: name => {
      const found = nodes.find(node => node.name === name)
      if (!found) throw new Error(`no nats node named ${name}`)
      return found
    },
    /**
     * The server name of `stream`'s Raft leader as a running node's `/jsz` reports it, or
     * null while none is known (no running node reports the stream with a leader).
     */
    async streamLeader (stream) {
      for (const node of nodes.filter(x => x.running)) {
        const jsz = await node.jsz()
        for (const account of jsz?.account_details ?? []) {
          const found = (account.stream_detail ?? []).find(s => s.name === stream)
          const leader = found?.cluster?.leader
          if (leader && nodes.some(x => x.name === leader && x.running)) return leader
        }
      }
      return null
    },
    /** Waits until `stream` has a leader among the running nodes and returns its node. */
    async waitStreamLeader (stream, timeout = START_TIMEOUT) {
      const name = await waitFor(() => cluster.streamLeader(stream), { timeout, what: `a leader of stream ${stream}` })
      return cluster.node(name)
    },
    /** The running nodes that are not `stream`'s leader (once it has one). */
    async followers (stream) {
      const leader = await cluster.waitStreamLeader(stream)
      return nodes.filter(node => node.running && node !== leader)
    },
    kill9: node => node.kill9(),
    /**
     * Waits until every running node is healthy and sees a meta leader and, for every stream
     * it knows (the log, the KV bucket's, the object store's), a leader among the running
     * nodes: the cluster is whole again, so the next kill is a single failure, not a second
     * one on top of a recovery still under way.
     */
    async settled (timeout = START_TIMEOUT) {
      const running = nodes.filter(node => node.running)
      await Promise.all(running.map(node => node.healthy(timeout)))
      await waitFor(async () => {
        for (const node of running) {
          const jsz = await node.jsz()
          const up = name => running.some(x => x.name === name)
          if (!jsz || !up(jsz.meta_cluster?.leader)) return false
          for (const account of jsz.account_details ?? []) {
            for (const stream of account.stream_detail ?? []) {
              if (!up(stream.cluster?.leader)) return false
            }
          }
        }
        return true
      }, { timeout, what: 'every stream to have a leader on every running nats node' })
    },
    /** Starts a killed node again on the same ports and store dir; waits until all is settled. */
    async restart (node) {
      node.start()
      await cluster.settled()
    },
    /** Kills every node and removes the stores and logs. */
    async stop () {
      await Promise.all(nodes.map(node => node.kill9()))
      rmSync(dir, { recursive: true, force: true })
    },
    logs: () => nodes.map(node => `--- ${node.name} ---\n${node.logText().slice(-4000)}`).join('\n')
  }
  try {
    await Promise.all(nodes.map(node => node.healthy()))
  } catch (err) {
    await cluster.stop()
    throw err
  }
  return cluster
}
