export { QueueAdmin, type QueueAdminOptions, type SharedStats } from './admin.js'
export type {
  BackfillInfo,
  FailedFilter,
  FailedPage,
  HistoryPoint,
  Inspection,
  ItemState,
  PauseState,
  QueueAdminApi,
  WorkerInfo,
} from './admin-types.js'
export {
  BULK_MAX_ID_LENGTH,
  BULK_MAX_LABEL_LENGTH,
  type BulkCallOptions,
  type BulkEmbedder,
  type BulkItemResult,
  type BulkJob,
  type BulkJobState,
  type BulkRequest,
  type BulkSubmitOptions,
  isTerminalBulkState,
} from './bulk.js'
export type { DeadLetter } from './codec.js'
export { decodeVector, encodeVector } from './codec.js'
export {
  type DashboardHandler,
  type DashboardOptions,
  type DashboardSource,
  dashboardHandler,
  discoverQueues,
} from './dashboard/index.js'
export type { Embedder, EmbedOptions } from './embedder.js'
export {
  EmbedderError,
  type EmbedderErrorOptions,
  EmbedderReplyError,
  EmbedderTimeoutError,
  EmbeddingFailedError,
  EmbedqError,
  EmbedTimeoutError,
  EvictionPolicyError,
  ForeignVectorError,
  InvalidInputError,
  LostToEvictionError,
  QueueCorruptedError,
  QueueFullError,
  QueueStoppedError,
  QuotaExhaustedError,
  RedisOutOfMemoryError,
  RedisUnavailableError,
  TargetVersionConflictError,
  TargetWriteError,
} from './errors.js'
export {
  type HealthServer,
  type HealthServerOptions,
  healthStatus,
  readiness,
  startHealthServer,
} from './health.js'
export { HISTORY_MINUTES, LATENCY_BUCKETS_MS } from './history.js'
export { type QueueKeys, queueKeys, rateLimitKeys } from './keys.js'
export type { Logger } from './logger.js'
export {
  createQueueMetrics,
  DEFAULT_METRIC_BUCKETS,
  type MetricBuckets,
  type MetricsRegistry,
  type QueueMetrics,
  type QueueMetricsOptions,
} from './metrics.js'
export type { BulkLaneOptions, CacheOptions, QueueOptions, RateLimitOptions } from './options.js'
export * from './providers/index.js'
export {
  type BulkStats,
  EmbeddingBatchQueue,
  type EmbedJob,
  type EnqueueItem,
  type EnqueueOptions,
  type FlushOptions,
  type FlushResult,
  type Lane,
  type QueueEvents,
  type QueueStats,
  type RateLimitStats,
} from './queue.js'
export {
  type EnsureResult,
  type SchemaField,
  type SearchEngine,
  type SearchHit,
  type SearchOptions,
  type StructuredFilter,
  type VectorAlgorithm,
  type VectorDistance,
  VectorIndex,
  VectorIndexMismatchError,
  type VectorIndexOptions,
} from './vector-index.js'
export { WorkerState } from './worker.js'
