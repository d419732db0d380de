// What the status pill says, from the connection's facts. Pure, so every case is unit-tested.
//
// "All changes saved" rests on what the page knows is durable on the server: the server has
// acknowledged every update message this connection sent (docs/protocol.md, message 100), and
// the durable state vector the page has learnt covers everything this device holds. The page
// learns that vector from two facts: the vector each acknowledgement carries, and whatever the
// server sent it (the server relays only after commit, so what it sends is durable) — without
// the second, a page that only received others' edits would wait for an acknowledgement of
// them that never comes.

export type SyncStatus =
  | 'offline' // not connected: edits stay on this device
  | 'connecting'
  | 'syncing' // connected, catching up or waiting for the server to store our edits
  | 'saved' // everything on this device is durable on the server
  | 'live' // a view-only link, up to date with the server
  | 'revoked' // the server closed this link for good (revoked or expired)

export interface SyncFacts {
  online: boolean
  connected: boolean
  synced: boolean
  /** Update messages sent on the current connection. */
  sent: number
  /** Of those, how many the server says are durable. */
  acknowledged: number
  /** Whether the durable state vector the page learnt (`learnDurable`) covers the local one. */
  covered: boolean
  closedForGood: boolean
  /** No connection has opened or failed yet (the page just started). */
  firstAttempt: boolean
  /** A view-only link: nothing of this device's is ever saved, so "saved" never applies. */
  readOnly: boolean
}

export function syncStatus (facts: SyncFacts): SyncStatus {
  if (facts.closedForGood) return 'revoked'
  if (!facts.online) return 'offline'
  if (!facts.connected) return facts.firstAttempt ? 'connecting' : 'offline'
  if (!facts.synced || facts.sent === 0) return 'syncing'
  if (facts.readOnly) return 'live'
  return facts.acknowledged >= facts.sent && facts.covered ? 'saved' : 'syncing'
}

/** Whether state vector `durable` has every clock of `local` (clients map to next clock). */
export function covers (durable: Map<number, number>, local: Map<number, number>): boolean {
  for (const [client, clock] of local) {
    if ((durable.get(client) ?? 0) < clock) return false
  }
  return true
}

/** The larger clock of each client: two facts about what is durable make one. */
export function mergeVectors (a: Map<number, number>, b: Map<number, number>): Map<number, number> {
  const merged = new Map(a)
  for (const [client, clock] of b) if ((merged.get(client) ?? 0) < clock) merged.set(client, clock)
  return merged
}

/**
 * What is durable after a transaction that applied a message from the server (state vectors
 * before and after it): every client's clock it advanced is durable up to where it got. Clients
 * it did not advance say nothing (in particular this device's own edits made meanwhile, which
 * only their acknowledgement makes durable).
 */
export function learnDurable (durable: Map<number, number>, before: Map<number, number>, after: Map<number, number>): Map<number, number> {
  const received = new Map<number, number>()
  for (const [client, clock] of after) if (clock > (before.get(client) ?? 0)) received.set(client, clock)
  return received.size === 0 ? durable : mergeVectors(durable, received)
}

/** Words shown for each status. */
export const STATUS_WORDS: Record<SyncStatus, { label: string, detail: string }> = {
  offline: { label: 'Offline', detail: 'Your edits are kept on this device and sync when you reconnect.' },
  connecting: { label: 'Connecting…', detail: 'Opening the plan.' },
  syncing: { label: 'Saving…', detail: 'Sending your edits and waiting for the server to store them.' },
  live: { label: 'Live · view only', detail: 'You see every change as it is made.' },
  saved: { label: 'All changes saved', detail: 'Everything on this device is stored on the server.' },
  revoked: { label: 'Link no longer valid', detail: 'This link was revoked or has expired. Ask the seller for a new one.' }
}

/** Whether an outgoing y-websocket message carries an update (sync step 2 or update): the
 * messages the server's acknowledgement counts. */
export function isUpdateMessage (data: Uint8Array): boolean {
  return data.length >= 2 && data[0] === 0 && (data[1] === 1 || data[1] === 2)
}
