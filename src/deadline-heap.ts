/**
 * One timer for any number of deadlines: a binary min-heap of entries ordered by `deadline`
 * (ms, `Date.now()` clock), with a single `setTimeout` armed for the earliest. Entries carry
 * their own heap index, so removing one (a result that arrived in time) is O(log n) and
 * leaves nothing behind. A million waiting results cost one timer and one array slot each,
 * not a million `Timeout` objects.
 */

export interface Deadline {
  /** When the entry expires (ms since the epoch). */
  deadline: number
  /** Position in the heap; -1 when the entry is not in it. Managed by the heap. */
  slot: number
}

export class DeadlineHeap<T extends Deadline> {
  private readonly items: T[] = []
  private timer: NodeJS.Timeout | undefined
  /** The deadline the timer is armed for (Infinity when none). */
  private armedFor = Number.POSITIVE_INFINITY

  /** `onExpire` is called once per entry whose deadline passed (the entry is already removed). */
  constructor(private readonly onExpire: (entry: T) => void) {}

  get size(): number {
    return this.items.length
  }

  add(entry: T): void {
    entry.slot = this.items.length
    this.items.push(entry)
    this.up(entry.slot)
    if (entry.deadline < this.armedFor) this.arm()
  }

  /** Removes `entry` if it is in the heap. */
  remove(entry: T): void {
    const i = entry.slot
    if (i < 0 || this.items[i] !== entry) return
    entry.slot = -1
    const last = this.items.pop() as T
    if (i < this.items.length) {
      this.items[i] = last
      last.slot = i
      this.down(i)
      this.up(last.slot)
    }
    // The timer may now fire early: it finds nothing due and re-arms for the new minimum.
    if (this.items.length === 0) this.disarm()
  }

  /** Drops every entry (their `slot` is left as is) and clears the timer. */
  clear(): void {
    this.items.length = 0
    this.disarm()
  }

  private arm(): void {
    this.disarm()
    const first = this.items[0]
    if (!first) return
    this.armedFor = first.deadline
    // setTimeout takes at most 2^31-1 ms; a later deadline re-arms when this one fires.
    const ms = Math.min(Math.max(0, first.deadline - Date.now()), 2_147_483_647)
    this.timer = setTimeout(() => this.expire(), ms)
  }

  private disarm(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    this.armedFor = Number.POSITIVE_INFINITY
  }

  private expire(): void {
    this.timer = undefined
    this.armedFor = Number.POSITIVE_INFINITY
    const now = Date.now()
    for (let first = this.items[0]; first && first.deadline <= now; first = this.items[0]) {
      this.remove(first)
      this.onExpire(first)
    }
    if (this.items.length > 0 && this.timer === undefined) this.arm()
  }

  private up(i: number): void {
    const { items } = this
    const entry = items[i] as T
    while (i > 0) {
      const parent = (i - 1) >> 1
      const p = items[parent] as T
      if (p.deadline <= entry.deadline) break
      items[i] = p
      p.slot = i
      i = parent
    }
    items[i] = entry
    entry.slot = i
  }

  private down(i: number): void {
    const { items } = this
    const n = items.length
    const entry = items[i] as T
    for (;;) {
      const left = 2 * i + 1
      if (left >= n) break
      const right = left + 1
      let child = left
      if (right < n && (items[right] as T).deadline < (items[left] as T).deadline) child = right
      const c = items[child] as T
      if (c.deadline >= entry.deadline) break
      items[i] = c
      c.slot = i
      i = child
    }
    items[i] = entry
    entry.slot = i
  }
}
