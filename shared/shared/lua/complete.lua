-- Finish an attempt with success: store the result, ack the entry, count it, emit
-- `job.completed`, and queue the follow-up job (the outcome's callback) when there is one.
-- Refused (0) when the token is not the current attempt's: a reclaimed attempt cannot commit.
-- KEYS: job hash, stream, events, counts, expiring set, jobs index, follow-up job hash (the job
--       hash when none), normal stream, follow-up owner's jobs index (the jobs index when none)
-- ARGV: token, entry id, group, now ms, result, completed event, ttl s, events maxlen, data field,
--       job id, then the follow-up (see common.lua)
local job, stream, events = KEYS[1], KEYS[2], KEYS[3]
if redis.call('HGET', job, 'token') ~= ARGV[1] then return 0 end
redis.call('HSET', job, 'state', 'completed', 'result', ARGV[5], 'finished_ms', ARGV[4])
redis.call('HDEL', job, 'token', 'envelope')
expire_job(job, KEYS[5], ARGV[10], ARGV[4], ARGV[7])
count(KEYS[4], 'completed', ARGV[4])
redis.call('XACK', stream, ARGV[3], ARGV[2])
redis.call('XDEL', stream, ARGV[2])
redis.call('XADD', events, 'MAXLEN', '~', ARGV[8], '*', ARGV[9], ARGV[6])
follow_up_from_argv(KEYS[7], KEYS[8], events, KEYS[6], KEYS[9], 11, ARGV[8], ARGV[9])
return 1
