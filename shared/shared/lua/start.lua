-- Begin an attempt: fence it with a fresh token and emit `job.started`.
-- Returns 1 when the attempt may run; 0 when the job is gone or finished (ack and skip it);
-- -1 when the entry is no longer this consumer's (another worker reclaimed it: leave it alone).
-- KEYS: job hash, events, stream
-- ARGV: token, attempt, now ms, started event, events maxlen, data field, group, consumer, entry id
local job, events, stream = KEYS[1], KEYS[2], KEYS[3]
local pending = redis.call('XPENDING', stream, ARGV[7], ARGV[9], ARGV[9], 1)
if #pending == 0 or pending[1][2] ~= ARGV[8] then return -1 end
local state = redis.call('HGET', job, 'state')
if state ~= 'queued' and state ~= 'active' then return 0 end
redis.call('HSET', job, 'state', 'active', 'token', ARGV[1], 'attempt', ARGV[2],
  'started_ms', ARGV[3], 'progress', '')
redis.call('XADD', events, 'MAXLEN', '~', ARGV[5], '*', ARGV[6], ARGV[4])
return 1
