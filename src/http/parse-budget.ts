// One budget, shared by every ingest request, on the body bytes being read and parsed at once.
// Parsing costs memory several times the body (strings, objects, lines): without a global bound,
// eight concurrent 16 MiB bodies took the agent to 3 GB. A request that does not fit is answered
// 503 with Retry-After, its body dropped unparsed.

export interface ParseBudgetOptions {
  /** Body bytes (after decompression) all requests together may hold while being parsed. */
  maxBytes: number;
}

/** Bytes one request holds; given back with `release()` once its answer is decided. */
export class Reservation {
  bytes = 0;
  constructor(private readonly budget: ParseBudget) {}

  /** Takes `n` more bytes; false (and nothing taken) when the budget cannot give them. */
  take(n: number): boolean {
    if (!this.budget.tryTake(n, this.bytes)) return false;
    this.bytes += n;
    return true;
  }

  release(): void {
    this.budget.give(this.bytes);
    this.bytes = 0;
  }
}

export class ParseBudget {
  private inUse = 0;
  /** Requests refused (503) since start. */
  refused = 0;

  constructor(private readonly opts: ParseBudgetOptions) {
    if (!(opts.maxBytes > 0)) throw new Error('ParseBudget: maxBytes must be positive');
  }

  reserve(): Reservation {
    return new Reservation(this);
  }

  /**
   * A request alone may always go beyond the budget (a maxBodyBytes larger than the budget must
   * not make its largest bodies wait forever); beside others it must fit.
   */
  tryTake(n: number, alreadyHeld: number): boolean {
    const othersHold = this.inUse - alreadyHeld;
    if (othersHold > 0 && this.inUse + n > this.opts.maxBytes) {
      this.refused++;
      return false;
    }
    this.inUse += n;
    return true;
  }

  give(n: number): void {
    this.inUse = Math.max(0, this.inUse - n);
  }

  status(): { maxBytes: number; inUseBytes: number; refused: number } {
    return { maxBytes: this.opts.maxBytes, inUseBytes: this.inUse, refused: this.refused };
  }
}
