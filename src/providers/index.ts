/**
 * The embedding providers. Each factory returns an `Embedder`; optional SDKs (Gemini's
 * `@google/genai`) are imported on first use, so importing this module loads none of them.
 */
export { type GeminiEmbedderOptions, type GeminiTaskType, geminiEmbedder } from './gemini.js'
export {
  GEMINI_BULK_MAX_REQUESTS,
  type GeminiBatchOptions,
  geminiBatch,
} from './gemini-batch.js'
export { type HashingEmbedderOptions, hashingEmbedder } from './hashing.js'
export { type OllamaEmbedderOptions, ollamaEmbedder } from './ollama.js'
export { type OpenAIEmbedderOptions, openAIEmbedder } from './openai.js'
export { OPENAI_BULK_MAX_REQUESTS, type OpenAIBatchOptions, openAIBatch } from './openai-batch.js'
