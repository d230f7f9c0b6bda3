-- The done log: a capped stream next to the done channel, so a subscriber that missed
-- messages (a reconnect, a pub/sub buffer overflow) reads what it missed instead of
-- re-reading every target it waits for. Each entry holds `p` (the ID handed out before it)
-- and `m` (the done entries, dead-letter bodies left out: they are in the failed hash).
-- Returns the header that goes in front of the pub/sub message, '#<prev id>:<id>:', or ''
-- when cap is 0 (the in-process ioredis-mock, whose streams cannot be trimmed safely and
-- whose pub/sub cannot lose messages). A subscriber whose last seen ID is not this message's
-- prev knows it missed something.
local function appendDoneLog(stream, cap, body)
  cap = tonumber(cap)
  if not cap or cap <= 0 then return '' end
  -- prev is the last ID the log handed out, even if that entry was trimmed or deleted since
  -- (XREVRANGE would give the last one still there: '0-0' for a log trimmed to nothing).
  local prev = '0-0'
  if redis.call('EXISTS', stream) == 1 then
    local info = redis.call('XINFO', 'STREAM', stream)
    for i = 1, #info - 1, 2 do
      if info[i] == 'last-generated-id' then prev = info[i + 1] end
    end
  end
  local id = redis.call('XADD', stream, 'MAXLEN', '~', cap, '*', 'p', prev, 'm', body)
  return '#' .. prev .. ':' .. id .. ':'
end
