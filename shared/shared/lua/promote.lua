-- Move delayed jobs whose time has come back onto the stream, oldest due first.
-- Job hashes are addressed from the queue's key stem; they share its hash tag, so this stays a
-- single-slot script on a cluster.
-- KEYS: delayed set, stream
-- ARGV: now ms, batch size, job key stem ('conduit:{q}:job:'), data field
local delayed, stream = KEYS[1], KEYS[2]
local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  local job = ARGV[3] .. id
  local envelope = redis.call('HGET', job, 'envelope')
  if envelope then
    local entry = redis.call('XADD', stream, '*', ARGV[4], envelope)
    redis.call('HSET', job, 'state', 'queued', 'entry', entry)
  end
  redis.call('ZREM', delayed, id)
end
return #due
