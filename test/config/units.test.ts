import t from 'tap'
import { formatSize, parseDuration, parseSize } from '../../src/config/units.ts'

t.test('parses binary and decimal sizes', async (t) => {
  t.equal(parseSize('50GiB'), 50 * 2 ** 30)
  t.equal(parseSize('512MiB'), 512 * 2 ** 20)
  t.equal(parseSize('10GB'), 10e9)
  t.equal(parseSize('1.5KiB'), 1536)
  t.equal(parseSize('1024'), 1024)
  t.equal(parseSize(2048), 2048)
  t.equal(parseSize('2 tib'), 2 * 2 ** 40)
})

t.test('rejects sizes it cannot read', async (t) => {
  for (const bad of ['', 'lots', '10XB', '-5MiB', 'GiB', '1e3MB', '5 GiB extra']) {
    t.equal(parseSize(bad), undefined, bad)
  }
  t.equal(parseSize(-1), undefined)
  t.equal(parseSize(Number.NaN), undefined)
})

t.test('parses durations to milliseconds', async (t) => {
  t.equal(parseDuration('5m'), 300_000)
  t.equal(parseDuration('30s'), 30_000)
  t.equal(parseDuration('250ms'), 250)
  t.equal(parseDuration('1h'), 3_600_000)
  t.equal(parseDuration('7d'), 7 * 86_400_000)
  t.equal(parseDuration('1.5s'), 1500)
  t.equal(parseDuration(100), 100)
  t.equal(parseDuration('100'), 100)
})

t.test('rejects durations it cannot read', async (t) => {
  for (const bad of ['soon', '5 minutes', '1w', '-1s', 's'])
    t.equal(parseDuration(bad), undefined, bad)
})

t.test('formats sizes for humans', async (t) => {
  t.equal(formatSize(512), '512 B')
  t.equal(formatSize(1536), '1.5 KiB')
  t.equal(formatSize(50 * 2 ** 30), '50.0 GiB')
})
