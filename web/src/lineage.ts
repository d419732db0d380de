// Share-link lineage for the link manager: which link each link was minted with, as a tree.

export interface Lineal { id: string, parentId: string | null }

/**
 * The links in tree order: each link right after the link it was minted with (children in the
 * order given, i.e. oldest first), with its depth. A link whose parent is not in the list (or
 * that has none) is a root. Every link appears exactly once, whatever the input.
 */
export function lineageOrder<T extends Lineal> (shares: readonly T[]): Array<{ share: T, depth: number }> {
  const ids = new Set(shares.map(s => s.id))
  const children = new Map<string, T[]>()
  const roots: T[] = []
  for (const share of shares) {
    if (share.parentId !== null && share.parentId !== share.id && ids.has(share.parentId)) {
      const siblings = children.get(share.parentId) ?? []
      siblings.push(share)
      children.set(share.parentId, siblings)
    } else {
      roots.push(share)
    }
  }
  const out: Array<{ share: T, depth: number }> = []
  const seen = new Set<string>()
  const visit = (share: T, depth: number): void => {
    if (seen.has(share.id)) return
    seen.add(share.id)
    out.push({ share, depth })
    for (const child of children.get(share.id) ?? []) visit(child, depth + 1)
  }
  for (const root of roots) visit(root, 0)
  // Links on a cycle (impossible from the server) are still shown, as roots.
  for (const share of shares) visit(share, 0)
  return out
}
