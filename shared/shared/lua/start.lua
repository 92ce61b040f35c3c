-- Begin an attempt: fence it with a fresh token and emit `job.started`.
-- Returns 1 when the attempt may run, 0 when the job is gone or finished (ack and skip it).
-- KEYS: job hash, events
-- ARGV: token, attempt, now ms, started event, events maxlen, data field
local job, events = KEYS[1], KEYS[2]
local state = redis.call('HGET', job, 'state')
if state ~= 'queued' and state ~= 'active' then return 0 end
redis.call('HSET', job, 'state', 'active', 'token', ARGV[1], 'attempt', ARGV[2],
  'started_ms', ARGV[3], 'progress', '')
redis.call('XADD', events, 'MAXLEN', '~', ARGV[5], '*', ARGV[6], ARGV[4])
return 1
