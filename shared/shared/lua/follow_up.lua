-- Shared by the scripts that finish a job (prepended to them when loaded): queue a follow-up job
-- in the same step, so that a job's outcome and the job that reports it cannot come apart.
-- `record` is a flat list of field, value pairs of the follow-up's record.
local function follow_up(job, stream, events, envelope, event, record, events_maxlen, data)
  redis.call('HSET', job, unpack(record))
  local entry = redis.call('XADD', stream, '*', data, envelope)
  redis.call('HSET', job, 'state', 'queued', 'entry', entry, 'envelope', envelope)
  redis.call('XADD', events, 'MAXLEN', '~', events_maxlen, '*', data, event)
end

-- ARGV from `first` on: follow-up envelope ('' for none), its queued event, its record pairs.
local function follow_up_from_argv(job, stream, events, first, events_maxlen, data)
  if ARGV[first] == '' then return end
  local record = {}
  for i = first + 2, #ARGV do record[#record + 1] = ARGV[i] end
  follow_up(job, stream, events, ARGV[first], ARGV[first + 1], record, events_maxlen, data)
end
