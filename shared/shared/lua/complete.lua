-- Finish a batch of attempts with success: for each, store the result, ack the entry, count it,
-- emit `job.completed`, and queue the follow-up job (the outcome's callback) when there is one.
-- Each job is fenced on its own: one whose token is not the current attempt's is refused (0)
-- and left as it is, since a reclaimed attempt cannot commit; the others commit (1).
-- Answers one outcome per job, in order.
-- KEYS: events, counts, expiring set, jobs index, then per job: job hash, stream, follow-up job
--       hash (the job hash when none), normal stream, follow-up owner's jobs index (the jobs
--       index when none)
-- ARGV: group, ttl s, events maxlen, data field, then per job: token, entry id, now ms, result,
--       completed event, job id, how many follow-up arguments follow, the follow-up (see
--       common.lua)
local events, counts, expiring, jobs = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, ttl_s, maxlen, data = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local outcomes = {}
local a = 5
for k = 5, #KEYS, 5 do
  local job, stream = KEYS[k], KEYS[k + 1]
  local token, entry, now_ms, result, event, id = ARGV[a], ARGV[a + 1], ARGV[a + 2],
    ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  local follow_first, follow_last = a + 7, a + 6 + tonumber(ARGV[a + 6])
  a = follow_last + 1
  if redis.call('HGET', job, 'token') ~= token then
    outcomes[#outcomes + 1] = 0
  else
    redis.call('HSET', job, 'state', 'completed', 'result', result, 'finished_ms', now_ms)
    redis.call('HDEL', job, 'token', 'envelope')
    expire_job(job, expiring, id, now_ms, ttl_s)
    count(counts, 'completed', now_ms)
    redis.call('XACK', stream, group, entry)
    redis.call('XDEL', stream, entry)
    redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', data, event)
    follow_up_from_argv(KEYS[k + 2], KEYS[k + 3], events, jobs, KEYS[k + 4], follow_first,
      follow_last, maxlen, data)
    outcomes[#outcomes + 1] = 1
  end
end
return outcomes
