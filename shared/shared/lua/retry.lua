-- Fail an attempt that has attempts left: park the job in the delayed set until its retry is
-- due, ack the entry, count the failure, emit `job.retrying`. Refused (0) for a stale token.
-- KEYS: job hash, stream, delayed set, events, counts
-- ARGV: token, entry id, group, due ms, errors, next envelope, retrying event, events maxlen,
--       data field, job id, now ms
local job, stream, delayed, events = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('HGET', job, 'token') ~= ARGV[1] then return 0 end
redis.call('HSET', job, 'state', 'retrying', 'errors', ARGV[5], 'envelope', ARGV[6])
redis.call('HDEL', job, 'token')
redis.call('ZADD', delayed, ARGV[4], ARGV[10])
count(KEYS[5], 'failed', ARGV[11])
redis.call('XACK', stream, ARGV[3], ARGV[2])
redis.call('XDEL', stream, ARGV[2])
redis.call('XADD', events, 'MAXLEN', '~', ARGV[8], '*', ARGV[9], ARGV[7])
return 1
