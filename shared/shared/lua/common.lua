-- Shared by every script (prepended to each when loaded): the steps several scripts take, so
-- that each is written once.

-- Index a job for listing: by queue and by owner, scored by its creation ms.
local function index_job(jobs, owner_jobs, id, created_ms)
  redis.call('ZADD', jobs, created_ms, id)
  redis.call('ZADD', owner_jobs, created_ms, id)
end

-- A finished job's record expires after `ttl_s`; the sweeper drops it from the indexes then.
local function expire_job(job, expiring, id, now_ms, ttl_s)
  redis.call('EXPIRE', job, ttl_s)
  redis.call('ZADD', expiring, tonumber(now_ms) + tonumber(ttl_s) * 1000, id)
end

-- Count an outcome (`completed`, `failed`) in all and in its minute.
local function count(counts, what, now_ms)
  redis.call('HINCRBY', counts, what, 1)
  redis.call('HINCRBY', counts, what .. ':' .. math.floor(tonumber(now_ms) / 60000), 1)
end

-- Queue a follow-up job in the same step as the job it follows finishes, so that a job's outcome
-- and the job that reports it cannot come apart. `record` is a flat list of field, value pairs.
local function follow_up(job, stream, events, jobs, owner_jobs, id, created_ms, envelope, event,
                         record, events_maxlen, data)
  redis.call('HSET', job, unpack(record))
  local entry = redis.call('XADD', stream, '*', data, envelope)
  redis.call('HSET', job, 'state', 'queued', 'entry', entry, 'envelope', envelope)
  index_job(jobs, owner_jobs, id, created_ms)
  redis.call('XADD', events, 'MAXLEN', '~', events_maxlen, '*', data, event)
end

-- ARGV from `first` to `last`: follow-up envelope ('' for none), its id, its creation ms, its
-- queued event, its record pairs.
local function follow_up_from_argv(job, stream, events, jobs, owner_jobs, first, last,
                                   events_maxlen, data)
  if ARGV[first] == '' then return end
  local record = {}
  for i = first + 4, last do record[#record + 1] = ARGV[i] end
  follow_up(job, stream, events, jobs, owner_jobs, ARGV[first + 1], ARGV[first + 2],
    ARGV[first], ARGV[first + 3], record, events_maxlen, data)
end
