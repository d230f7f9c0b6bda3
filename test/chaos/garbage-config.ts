/** Settings shared by the garbage-replies chaos test and its worker processes. */

/** The marker of a text the embedder always answers with garbage. */
export const GARBAGE = '#GARBAGE#'
/** The queue's bound on one embedder call in this test (some calls hang and ignore their signal). */
export const GARBAGE_EMBED_TIMEOUT_MS = 400
