-- Fail an attempt for good: copy the job with its error history to the dead-letter stream, ack
-- the entry, count the failure, emit `job.dead_lettered`, and queue the follow-up job (the
-- outcome's callback) when there is one. Refused (0) for a stale token.
-- KEYS: job hash, stream, dead-letter stream, events, counts, expiring set, jobs index,
--       follow-up job hash (the job hash when none), normal stream, follow-up owner's jobs index
--       (the jobs index when none)
-- ARGV: token, entry id, group, now ms, errors, dead letter, dead event, ttl s, events maxlen,
--       data field, job id, then the follow-up (see common.lua)
local job, stream, dead, events = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('HGET', job, 'token') ~= ARGV[1] then return 0 end
local letter = redis.call('XADD', dead, '*', ARGV[10], ARGV[6])
-- The dead-letter entry keeps the envelope for a replay; the record need not.
redis.call('HSET', job, 'state', 'dead', 'errors', ARGV[5], 'finished_ms', ARGV[4],
  'dead_entry', letter)
redis.call('HDEL', job, 'token', 'envelope')
expire_job(job, KEYS[6], ARGV[11], ARGV[4], ARGV[8])
count(KEYS[5], 'failed', ARGV[4])
redis.call('XACK', stream, ARGV[3], ARGV[2])
redis.call('XDEL', stream, ARGV[2])
redis.call('XADD', events, 'MAXLEN', '~', ARGV[9], '*', ARGV[10], ARGV[7])
follow_up_from_argv(KEYS[8], KEYS[9], events, KEYS[7], KEYS[10], 12, #ARGV, ARGV[9],
  ARGV[10])
return 1
