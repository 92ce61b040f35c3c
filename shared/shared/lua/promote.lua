-- Move delayed jobs whose time has come back onto their priority's stream, oldest due first.
-- Job hashes are addressed from the queue's key stem; they share its hash tag, so this stays a
-- single-slot script on a cluster.
-- KEYS: delayed set, high stream, normal stream, low stream
-- ARGV: now ms, batch size, job key stem ('conduit:{q}:job:'), data field
local streams = {high = KEYS[2], normal = KEYS[3], low = KEYS[4]}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  local job = ARGV[3] .. id
  local fields = redis.call('HMGET', job, 'envelope', 'priority')
  local envelope, priority = fields[1], fields[2]
  if envelope then
    local entry = redis.call('XADD', streams[priority] or KEYS[3], '*', ARGV[4], envelope)
    redis.call('HSET', job, 'state', 'queued', 'entry', entry)
  end
  redis.call('ZREM', KEYS[1], id)
end
return #due
