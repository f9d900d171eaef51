// Acknowledgements can arrive out of order (a sink retries one batch while the next one
// succeeds), but a checkpoint must never pass a line that was not delivered. So each file
// keeps its outstanding batches in file order, and the committed offset only moves over a
// prefix of them that is fully acknowledged.

interface Outstanding {
  start: number;
  end: number;
  /** Acknowledged up to here (start <= acked <= end). */
  acked: number;
}

/** Ack bookkeeping of one file (one "epoch": a truncation starts a new track). */
export class AckTrack {
  /** Offset below which everything is acknowledged: what the checkpoint stores. */
  committed: number;
  private readonly queue: Outstanding[] = [];
  private head = 0;

  constructor(committed: number) {
    this.committed = committed;
  }

  /** Registers a batch handed to the consumer; returns the handle to acknowledge it with. */
  add(start: number, end: number): Outstanding {
    const entry = { start, end, acked: start };
    this.queue.push(entry);
    return entry;
  }

  /**
   * Marks `entry` acknowledged up to `upTo` (clamped to the batch). Returns the number of
   * bytes newly acknowledged; `committed` moves over the contiguous acknowledged prefix.
   */
  ack(entry: Outstanding, upTo: number): number {
    const target = Math.min(Math.max(upTo, entry.start), entry.end);
    if (target <= entry.acked) return 0;
    const freed = target - entry.acked;
    entry.acked = target;
    this.advance();
    return freed;
  }

  /** Bytes handed out and not acknowledged. */
  get outstanding(): number {
    let sum = 0;
    for (let i = this.head; i < this.queue.length; i++)
      sum += this.queue[i].end - this.queue[i].acked;
    return sum;
  }

  private advance(): void {
    while (this.head < this.queue.length) {
      const first = this.queue[this.head];
      if (first.acked > this.committed && first.start <= this.committed)
        this.committed = first.acked;
      if (first.acked < first.end) break;
      this.head++;
    }
    // Drop the consumed prefix now and then instead of shifting on every ack.
    if (this.head > 64 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }
}
