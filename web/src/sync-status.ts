// What the status pill says, from the connection's facts. Pure, so every case is unit-tested.
//
// "All changes saved" rests on the server's durability acknowledgement (docs/protocol.md,
// message 100): the server has acknowledged every update message this connection sent, and its
// durable state vector covers everything this device holds.

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
  /** Whether the server's durable state vector covers the local one. */
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
