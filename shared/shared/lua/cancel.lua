-- Cancel a job that waits (delayed, queued or waiting for a retry): it will not run. A queued
-- entry stays on the stream; the worker that reads it finds the job cancelled and drops it.
-- Returns 1 when cancelled, 0 when the job is running or finished, -1 when there is no job.
-- KEYS: job hash, delayed set, events, expiring set
-- ARGV: job id, now ms, cancelled event, ttl s, events maxlen, data field
local job, delayed, events = KEYS[1], KEYS[2], KEYS[3]
local state = redis.call('HGET', job, 'state')
if not state then return -1 end
if state ~= 'delayed' and state ~= 'queued' and state ~= 'retrying' then return 0 end
redis.call('ZREM', delayed, ARGV[1])
redis.call('HSET', job, 'state', 'cancelled', 'finished_ms', ARGV[2])
redis.call('HDEL', job, 'envelope')
expire_job(job, KEYS[4], ARGV[1], ARGV[2], ARGV[4])
redis.call('XADD', events, 'MAXLEN', '~', ARGV[5], '*', ARGV[6], ARGV[3])
return 1
