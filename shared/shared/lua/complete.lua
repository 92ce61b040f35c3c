-- Finish an attempt with success: store the result, ack the entry, emit `job.completed`, and
-- queue the follow-up job (the outcome's callback) when there is one.
-- Refused (0) when the token is not the current attempt's: a reclaimed attempt cannot commit.
-- KEYS: job hash, stream, events, follow-up job hash (the job hash when none), normal stream
-- ARGV: token, entry id, group, now ms, result, completed event, ttl s, events maxlen, data field,
--       then the follow-up (see follow_up.lua)
local job, stream, events = KEYS[1], KEYS[2], KEYS[3]
if redis.call('HGET', job, 'token') ~= ARGV[1] then return 0 end
redis.call('HSET', job, 'state', 'completed', 'result', ARGV[5], 'finished_ms', ARGV[4])
redis.call('HDEL', job, 'token', 'envelope')
redis.call('EXPIRE', job, ARGV[7])
redis.call('XACK', stream, ARGV[3], ARGV[2])
redis.call('XDEL', stream, ARGV[2])
redis.call('XADD', events, 'MAXLEN', '~', ARGV[8], '*', ARGV[9], ARGV[6])
follow_up_from_argv(KEYS[4], KEYS[5], events, 10, ARGV[8], ARGV[9])
return 1
