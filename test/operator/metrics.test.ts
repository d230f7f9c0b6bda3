/**
 * #12 metrics: the worker count, a backlog with no live worker and the operator pause are
 * gauges read from stats() at scrape time.
 */
import { describe, expect, it } from 'vitest'
import { createQueueMetrics } from '../../src/index.js'
import { useQueueHarness } from '../helpers/queue-harness.js'

const h = useQueueHarness()

const gauge = (text: string, name: string, queue: string): number => {
  const m = new RegExp(`^${name}\\{queue="${queue}"\\} (\\S+)$`, 'm').exec(text)
  if (!m) throw new Error(`no ${name} for ${queue} in:\n${text}`)
  return Number(m[1])
}

describe('#12 metrics of the operator view', () => {
  it('embedq_workers, embedq_backlog_without_worker and embedq_paused follow Redis', async () => {
    const producer = h.queue({ worker: false })
    const metrics = await createQueueMetrics(producer)
    try {
      await producer.enqueue('m:1', 'waiting')
      let text = await metrics.metrics()
      expect(gauge(text, 'embedq_workers', producer.name)).toBe(0)
      expect(gauge(text, 'embedq_backlog_without_worker', producer.name)).toBe(1)
      expect(gauge(text, 'embedq_paused', producer.name)).toBe(0)

      await producer.pause()
      const worker = h.queue({ name: producer.name })
      await worker.start()
      await new Promise((r) => setTimeout(r, 300)) // past the gauges' 250 ms snapshot
      text = await metrics.metrics()
      expect(gauge(text, 'embedq_workers', producer.name)).toBe(1)
      expect(gauge(text, 'embedq_backlog_without_worker', producer.name)).toBe(0)
      expect(gauge(text, 'embedq_paused', producer.name)).toBe(1)
    } finally {
      metrics.close()
    }
  })
})
