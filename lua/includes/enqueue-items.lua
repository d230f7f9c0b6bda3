-- Shared by the online and the bulk enqueue scripts (needs `common`).
--
-- assignVersions: hands out n versions, max(seq + 1, TIME in µs) onward, and writes the
-- highest back to seq. With maxPending > 0, refuses (returns nil, unfinished) when the chunk
-- would take the unfinished count (ZCARD versions) over it: nothing is written then.
local function assignVersions(versionsKey, seqKey, maxPending, n)
  if maxPending > 0 then
    local unfinished = redis.call('ZCARD', versionsKey)
    if unfinished + n > maxPending then return nil, unfinished end
  end
  local now = nowUs()
  local base = num(redis.call('GET', seqKey))
  if base < now then base = now end
  redis.call('SET', seqKey, fmt(base + n))
  return base
end

-- chunkItems: the n (key, text) pairs in ARGV from index `first`, as the keys, HSET
-- arguments (key, text, …), ZADD arguments (version, key, …) and the reply { 0, versions… }.
local function chunkItems(first, n, base)
  local keys, hset, vadd, out = {}, {}, {}, { 0 }
  for i = 1, n do
    local at = first + 2 * (i - 1)
    local key = ARGV[at]
    local v = fmt(base + i)
    keys[i] = key
    hset[#hset + 1] = key
    hset[#hset + 1] = ARGV[at + 1]
    vadd[#vadd + 1] = v
    vadd[#vadd + 1] = key
    out[i + 1] = v
  end
  return keys, hset, vadd, out
end
