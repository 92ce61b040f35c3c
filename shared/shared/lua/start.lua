-- Begin a batch of attempts: fence each with a fresh token and emit its `job.started`.
-- Answers one outcome per job, in order: 1 when the attempt may run; 0 when the job is gone or
-- finished (ack and skip it); -1 when the entry is no longer this consumer's (another worker
-- reclaimed it: leave it alone). Each job is checked on its own, so one stale entry does not
-- hold back the others.
-- KEYS: events, then per job: job hash, stream
-- ARGV: events maxlen, data field, group, consumer, then per job: token, attempt, now ms,
--       started event, entry id
local events = KEYS[1]
local maxlen, data, group, consumer = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local function start(job, stream, token, attempt, now_ms, event, entry)
  local pending = redis.call('XPENDING', stream, group, entry, entry, 1)
  if #pending == 0 or pending[1][2] ~= consumer then return -1 end
  local state = redis.call('HGET', job, 'state')
  if state ~= 'queued' and state ~= 'active' then return 0 end
  redis.call('HSET', job, 'state', 'active', 'token', token, 'attempt', attempt,
    'started_ms', now_ms, 'progress', '')
  redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', data, event)
  return 1
end

local outcomes = {}
for i = 0, (#KEYS - 1) / 2 - 1 do
  local a = 5 + i * 5
  outcomes[#outcomes + 1] = start(KEYS[2 + i * 2], KEYS[3 + i * 2], ARGV[a], ARGV[a + 1],
    ARGV[a + 2], ARGV[a + 3], ARGV[a + 4])
end
return outcomes
