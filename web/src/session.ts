// The live plan on this device: the Yjs document, kept in IndexedDB (so edits survive a reload
// offline) and synced with the server over y-websocket, asking for the server's durability
// acknowledgements (docs/protocol.md) so "All changes saved" means stored on the server.
// A link the server closes for good (revoked, expired, never valid) takes the plan's copy on
// this device with it: the IndexedDB database and the API answers remembered in localStorage.

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { IndexeddbPersistence, clearDocument } from 'y-indexeddb'
import * as decoding from 'lib0/decoding'
import { covers, isUpdateMessage, learnDurable, mergeVectors, syncStatus, type SyncStatus } from './sync-status'
import { Api, ApiFailure } from './api'
import { endOfClose, endOfRefusal, type LinkEnd } from './link'

const MESSAGE_DURABLE = 100
const MESSAGE_REFUSED = 101

/** A browser WebSocket that counts the update messages it sends and the server acknowledged. */
class CountingSocket extends WebSocket {
  sentUpdates = 0
  acknowledged = 0
  onSent: (() => void) | null = null

  send (data: Parameters<WebSocket['send']>[0]): void {
    super.send(data)
    const bytes = data instanceof Uint8Array ? data : data instanceof ArrayBuffer ? new Uint8Array(data) : null
    if (bytes !== null && isUpdateMessage(bytes)) {
      this.sentUpdates++
      this.onSent?.()
    }
  }
}

export interface Peer {
  clientId: number
  name: string
  side: string | null
  color: string
  editing: string | null
}

export interface SessionEvents {
  status: (status: SyncStatus) => void
  peers: (peers: Peer[]) => void
  refused: (reason: string) => void
  closed: (code: number, reason: string) => void
  /** The link no longer opens the plan; the copy on this device is being removed. */
  ended: (end: LinkEnd) => void
}

/** Where the page remembers an API answer about a plan (`kind`: `me`, `health`, `slips`). Every
 * key of a plan ends in `:{planId}`, which is how `forgetRemembered` finds them. */
export function storageKey (kind: string, planId: string): string {
  return `mapline:${kind}:${planId}`
}

/** The name of the plan's IndexedDB database (y-indexeddb). */
export function databaseName (planId: string): string {
  return `mapline:${planId}`
}

/** Removes the localStorage entries the page keeps for a plan. */
export function forgetRemembered (planId: string): void {
  try {
    const keys: string[] = []
    for (let i = 0; i < localStorage.length; i++) {
      const key = localStorage.key(i)
      if (key !== null && key.startsWith('mapline:') && key.endsWith(`:${planId}`)) keys.push(key)
    }
    for (const key of keys) localStorage.removeItem(key)
  } catch { /* storage off: nothing kept */ }
}

const COLORS = ['#1d4ed8', '#b45309', '#047857', '#9333ea', '#be123c', '#0e7490', '#4d7c0f', '#c2410c']

export class PlanSession {
  readonly doc = new Y.Doc()
  readonly provider: WebsocketProvider
  readonly local: IndexeddbPersistence
  private listeners: { [K in keyof SessionEvents]: Array<SessionEvents[K]> } = { status: [], peers: [], refused: [], closed: [], ended: [] }
  private online = navigator.onLine
  private closedForGood = false
  private firstAttempt = true
  private lastStatus: SyncStatus | null = null
  private readOnly = false
  /** Whether the current socket opened (a socket refused at the upgrade never does). */
  private opened = false
  private checkingLink = false
  private readonly api: Api
  /** What the page knows is durable on the server: acknowledged vectors and what it received. */
  private durable = new Map<number, number>()
  private endedAs: LinkEnd | null = null
  /** Resolves once the copy on this device is gone (after `end`). */
  forgotten: Promise<void> = Promise.resolve()
  /** A signed-in member's plan (the session cookie), not a share link's. */
  private readonly member: boolean

  /** `token` null: a signed-in member, whose session cookie goes with the socket. */
  constructor (readonly planId: string, token: string | null, origin: string = location.origin) {
    this.member = token === null
    this.local = new IndexeddbPersistence(databaseName(planId), this.doc)
    this.api = new Api(planId, token, origin)
    const wsOrigin = origin.replace(/^http/, 'ws')
    this.provider = new WebsocketProvider(`${wsOrigin}/sync`, planId, this.doc, {
      params: token === null ? { acks: '1' } : { token, acks: '1' },
      connect: false,
      disableBc: true,
      maxBackoffTime: 5000,
      WebSocketPolyfill: CountingSocket as unknown as typeof WebSocket
    })
    this.provider.messageHandlers[MESSAGE_DURABLE] = (_encoder, decoder, provider) => {
      const count = decoding.readVarUint(decoder)
      const vector = Y.decodeStateVector(decoding.readVarUint8Array(decoder))
      const ws = provider.ws as CountingSocket | null
      if (ws !== null) ws.acknowledged = Math.max(ws.acknowledged, count)
      this.durable = mergeVectors(this.durable, vector)
      this.update()
    }
    this.provider.messageHandlers[MESSAGE_REFUSED] = (_encoder, decoder) => {
      const reason = decoding.readVarString(decoder)
      for (const listener of this.listeners.refused) listener(reason)
    }
    this.provider.on('status', ({ status }) => {
      if (status !== 'connecting') this.firstAttempt = false
      this.opened = status === 'connected'
      const ws = this.provider.ws as CountingSocket | null
      if (ws !== null) ws.onSent = () => this.update()
      this.update()
    })
    this.provider.on('connection-close', event => {
      this.firstAttempt = false
      // `null`: we closed it ourselves (offline, disconnect), which says nothing about the link.
      if (event !== null && !this.opened) void this.checkLink()
      this.update()
    })
    this.provider.on('sync', () => this.update())
    this.provider.on('closed', ({ code, reason }) => {
      if (code === 4401) this.end(endOfClose(this.member, reason))
      for (const listener of this.listeners.closed) listener(code, reason)
      this.update()
    })
    // What the server sent is durable (it relays only after commit, and answers sync step 1 from
    // its durable document): y-websocket applies it with the provider as the origin.
    this.doc.on('afterTransaction', (transaction: Y.Transaction) => {
      if (transaction.origin === this.provider) this.durable = learnDurable(this.durable, transaction.beforeState, transaction.afterState)
    })
    this.doc.on('update', () => this.update())
    this.provider.awareness.on('change', () => this.emitPeers())
    addEventListener('online', this.goOnline)
    addEventListener('offline', this.goOffline)
  }

  /** Loads the copy on this device, then connects (unless offline). */
  async start (): Promise<void> {
    await Promise.race([this.local.whenSynced, new Promise(resolve => setTimeout(resolve, 3000))])
    // The API may have ended the link meanwhile (`end`).
    if (this.online && !this.closedForGood) this.provider.connect()
    this.update()
  }

  /** How the link ended (`null` while it still opens the plan). */
  get ended (): LinkEnd | null {
    return this.endedAs
  }

  /**
   * The server says this link no longer opens the plan (a 4401 close, or 401/403/404 from the
   * API): stop for good and remove the plan's copy from this device — the IndexedDB database and
   * the remembered API answers. (The service worker keeps only the page's own files, never API
   * answers.) Edits not yet saved go too: this link can no longer save them anyway.
   */
  end (end: LinkEnd): void {
    if (this.endedAs !== null) return
    this.endedAs = end
    this.closedForGood = true
    this.provider.disconnect()
    forgetRemembered(this.planId)
    this.forgotten = (async () => {
      try {
        // Another tab holding the database open blocks its deletion: give up waiting after a
        // few seconds rather than leave the page waiting forever.
        const giveUp = new Promise<void>(resolve => setTimeout(resolve, 5000))
        await Promise.race([(async () => {
          await this.local.destroy()
          await clearDocument(databaseName(this.planId))
        })(), giveUp])
      } catch { /* IndexedDB off or gone: nothing kept */ }
      // Anything remembered while the database closed.
      forgetRemembered(this.planId)
    })()
    for (const listener of this.listeners.ended) listener(end)
    this.update()
  }

  /**
   * The socket failed before it opened. A link refused at the upgrade (401, e.g. revoked while
   * this page was closed) looks to the browser like any network failure (1006), and y-websocket
   * would retry it forever; so ask the API whether the link still opens the plan, and if it says
   * no (401, 403, 404), end the link as after a 4401 close. Network failures change nothing.
   */
  private async checkLink (): Promise<void> {
    if (this.checkingLink || this.closedForGood) return
    this.checkingLink = true
    try {
      await this.api.me()
    } catch (error) {
      const end = error instanceof ApiFailure ? endOfRefusal(this.member, error.status, error.code) : null
      if (end !== null) this.end(end)
    } finally {
      this.checkingLink = false
      this.update()
    }
  }

  private readonly goOnline = (): void => {
    this.online = true
    if (!this.closedForGood) this.provider.connect()
    this.update()
  }

  private readonly goOffline = (): void => {
    this.online = false
    this.provider.disconnect()
    this.update()
  }

  on<K extends keyof SessionEvents> (event: K, listener: SessionEvents[K]): void {
    this.listeners[event].push(listener)
  }

  /** Who this device is, for the others' presence list. */
  setIdentity (name: string, side: string | null): void {
    const color = COLORS[this.doc.clientID % COLORS.length]
    this.provider.awareness.setLocalStateField('user', { name, side, color })
  }

  /** Whether this link may only view (the status then says "live", never "saved"). */
  setReadOnly (readOnly: boolean): void {
    this.readOnly = readOnly
    this.update()
  }

  /** What this device is editing (a field key such as `milestones.ms-x.due`), or null. */
  setEditing (field: string | null): void {
    if (this.provider.awareness.getLocalState()?.editing !== field) {
      this.provider.awareness.setLocalStateField('editing', field)
    }
  }

  status (): SyncStatus {
    const ws = this.provider.ws as CountingSocket | null
    return syncStatus({
      online: this.online,
      connected: this.provider.wsconnected,
      synced: this.provider.synced,
      sent: ws?.sentUpdates ?? 0,
      acknowledged: ws?.acknowledged ?? 0,
      covered: covers(this.durable, Y.decodeStateVector(Y.encodeStateVector(this.doc))),
      closedForGood: this.closedForGood,
      firstAttempt: this.firstAttempt,
      readOnly: this.readOnly
    })
  }

  private update (): void {
    const status = this.status()
    if (status === this.lastStatus) return
    this.lastStatus = status
    for (const listener of this.listeners.status) listener(status)
  }

  peers (): Peer[] {
    const peers: Peer[] = []
    for (const [clientId, state] of this.provider.awareness.getStates()) {
      if (clientId === this.doc.clientID) continue
      const user = state.user as { name?: unknown, side?: unknown, color?: unknown } | undefined
      if (user === undefined || typeof user.name !== 'string') continue
      peers.push({
        clientId,
        name: user.name,
        side: typeof user.side === 'string' ? user.side : null,
        color: typeof user.color === 'string' ? user.color : COLORS[0],
        editing: typeof state.editing === 'string' ? state.editing : null
      })
    }
    return peers.sort((a, b) => a.name.localeCompare(b.name) || a.clientId - b.clientId)
  }

  private emitPeers (): void {
    const peers = this.peers()
    for (const listener of this.listeners.peers) listener(peers)
  }

  destroy (): void {
    removeEventListener('online', this.goOnline)
    removeEventListener('offline', this.goOffline)
    this.provider.destroy()
    if (this.endedAs === null) void this.local.destroy()
  }
}
