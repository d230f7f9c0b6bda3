/**
 * The embedding providers. Each factory returns an `Embedder`; optional SDKs (Gemini's
 * `@google/genai`) are imported on first use, so importing this module loads none of them.
 */
export { type GeminiEmbedderOptions, type GeminiTaskType, geminiEmbedder } from './gemini.js'
export { type HashingEmbedderOptions, hashingEmbedder } from './hashing.js'
export { type OllamaEmbedderOptions, ollamaEmbedder } from './ollama.js'
export { type OpenAIEmbedderOptions, openAIEmbedder } from './openai.js'
