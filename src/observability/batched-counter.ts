/**
 * A prom-client Counter whose hottest series are counted in plain numbers.
 * prom-client hashes the label values on every `inc`, even through a child
 * from `labels()`; counted for every request, that was a few µs of a warm
 * page GET (bench/RESULTS.md, 2026-12-05). A series from `series()` adds up
 * its increments and hands the sum to the counter when the counter is
 * collected (a scrape, or `get()`), so every reader sees the same totals.
 */
import { Counter, type CounterConfiguration, type LabelValues } from 'prom-client'

/** One label set of a BatchedCounter, counted without hashing. */
export interface CounterSeries {
  inc(value?: number): void
}

class Series<T extends string> implements CounterSeries {
  pending = 0
  /** Counted since the last flush, even by 0: the series shows up as prom-client's would. */
  touched = false

  constructor(readonly labels: LabelValues<T>) {}

  inc(value = 1): void {
    if (!Number.isFinite(value) || value < 0)
      throw new TypeError(`a counter only grows by a finite amount, not ${value}`)
    this.pending += value
    this.touched = true
  }
}

export class BatchedCounter<T extends string> extends Counter<T> {
  readonly #series: Series<T>[] = []

  constructor(configuration: Omit<CounterConfiguration<T>, 'collect'>) {
    super({
      ...configuration,
      collect(this: Counter<T>) {
        if (this instanceof BatchedCounter) this.flush()
      },
    })
  }

  /** A series of these labels; keep it (each call makes a new one). */
  series(labels: LabelValues<T>): CounterSeries {
    const series = new Series(labels)
    this.#series.push(series)
    return series
  }

  /** Adds what every series counted since the last flush to the counter. */
  flush(): void {
    for (const series of this.#series) {
      if (!series.touched) continue
      this.inc(series.labels, series.pending)
      series.pending = 0
      series.touched = false
    }
  }
}
