-- Record the running attempt's progress and emit `job.progress`; refused for a stale token.
-- KEYS: job hash, events
-- ARGV: token, progress, progress event, events maxlen, data field
local job, events = KEYS[1], KEYS[2]
if redis.call('HGET', job, 'token') ~= ARGV[1] then return 0 end
redis.call('HSET', job, 'progress', ARGV[2])
redis.call('XADD', events, 'MAXLEN', '~', ARGV[4], '*', ARGV[5], ARGV[3])
return 1
