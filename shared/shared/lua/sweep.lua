-- Drop the index entries of jobs whose records expire before `cutoff` (the caller looks a little
-- ahead, so each owner is still readable from the record), and the per-minute counters older
-- than `oldest minute`. Keys built here share the queue's hash tag: one cluster slot.
-- KEYS: expiring set, jobs index, counts
-- ARGV: cutoff ms, batch size, job key stem ('conduit:{q}:job:'), the owner's jobs index key
--       before and after the owner ('conduit:{q}:owner:', ':jobs'), oldest minute kept
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local owner = redis.call('HGET', ARGV[3] .. id, 'owner')
  if owner then redis.call('ZREM', ARGV[4] .. owner .. ARGV[5], id) end
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[1], id)
end
local oldest = tonumber(ARGV[6])
for _, field in ipairs(redis.call('HKEYS', KEYS[3])) do
  local minute = tonumber(string.match(field, ':(%d+)$'))
  if minute and minute < oldest then redis.call('HDEL', KEYS[3], field) end
end
return #ids
