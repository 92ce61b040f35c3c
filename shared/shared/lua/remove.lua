-- Remove a finished job for good: its record, its index entries and its dead letter.
-- Returns 1 when removed, 0 when the job has not finished, -1 when there is no job.
-- KEYS: job hash, jobs index, owner's jobs index, expiring set, dead-letter stream
-- ARGV: job id
local state, letter = unpack(redis.call('HMGET', KEYS[1], 'state', 'dead_entry'))
if not state then return -1 end
if state ~= 'completed' and state ~= 'dead' and state ~= 'cancelled' then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
if letter then redis.call('XDEL', KEYS[5], letter) end
return 1
