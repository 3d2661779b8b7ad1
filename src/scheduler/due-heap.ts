// A binary min-heap of scheduled entries ordered by due time (ties by insertion order), with
// removal by handle: one timer serves every job, and a reconcile removes jobs in O(log n).

export interface HeapEntry {
  dueAt: number;
  /** Tie-breaker: earlier-added entries run first when due at the same millisecond. */
  readonly order: number;
  /** Position in the heap, -1 when not in it; maintained by DueHeap only. */
  heapIndex: number;
}

export class DueHeap<T extends HeapEntry> {
  private readonly items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(entry: T): void {
    entry.heapIndex = this.items.length;
    this.items.push(entry);
    this.up(entry.heapIndex);
  }

  pop(): T | undefined {
    const top = this.items[0];
    if (top !== undefined) this.removeAt(0);
    return top;
  }

  remove(entry: T): boolean {
    const i = entry.heapIndex;
    if (i < 0 || this.items[i] !== entry) return false;
    this.removeAt(i);
    return true;
  }

  /** Every entry, in no particular order. */
  values(): readonly T[] {
    return this.items;
  }

  /** Rebuilds the order after due times were changed in place (e.g. a clock jump). */
  reorder(): void {
    for (let i = (this.items.length >> 1) - 1; i >= 0; i--) this.down(i);
  }

  private removeAt(i: number): void {
    const items = this.items;
    const entry = items[i] as T;
    const last = items.pop() as T;
    entry.heapIndex = -1;
    if (last === entry) return;
    items[i] = last;
    last.heapIndex = i;
    this.down(i);
    this.up(last.heapIndex);
  }

  private less(a: T, b: T): boolean {
    return a.dueAt < b.dueAt || (a.dueAt === b.dueAt && a.order < b.order);
  }

  private up(i: number): void {
    const items = this.items;
    const entry = items[i] as T;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items[parent] as T;
      if (!this.less(entry, p)) break;
      items[i] = p;
      p.heapIndex = i;
      i = parent;
    }
    items[i] = entry;
    entry.heapIndex = i;
  }

  private down(i: number): void {
    const items = this.items;
    const n = items.length;
    const entry = items[i] as T;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let c = l;
      if (r < n && this.less(items[r] as T, items[l] as T)) c = r;
      const child = items[c] as T;
      if (!this.less(child, entry)) break;
      items[i] = child;
      child.heapIndex = i;
      i = c;
    }
    items[i] = entry;
    entry.heapIndex = i;
  }
}
