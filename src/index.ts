export type { DeadLetter } from './codec.js'
export { decodeVector, encodeVector } from './codec.js'
export type { Embedder, EmbedOptions } from './embedder.js'
export {
  EmbedderError,
  type EmbedderErrorOptions,
  EmbeddingFailedError,
  EmbedqError,
  EmbedTimeoutError,
  EvictionPolicyError,
  InvalidInputError,
  LostToEvictionError,
  QueueCorruptedError,
  QueueFullError,
  QueueStoppedError,
  RedisOutOfMemoryError,
  RedisUnavailableError,
  TargetWriteError,
} from './errors.js'
export { type HealthServer, type HealthServerOptions, healthStatus, startHealthServer } from './health.js'
export { type QueueKeys, queueKeys, rateLimitKeys } from './keys.js'
export type { Logger } from './logger.js'
export {
  createQueueMetrics,
  DEFAULT_METRIC_BUCKETS,
  type MetricBuckets,
  type QueueMetrics,
  type QueueMetricsOptions,
} from './metrics.js'
export type { CacheOptions, QueueOptions, RateLimitOptions } from './options.js'
export * from './providers/index.js'
export {
  EmbeddingBatchQueue,
  type EmbedJob,
  type EnqueueItem,
  type FlushResult,
  type QueueEvents,
  type QueueStats,
} from './queue.js'
export { WorkerState } from './worker.js'
