-- Store a job's record, index it and emit `job.queued`, with the job either appended to its
-- queue's stream or, when it is due later, parked in the delayed set: atomically.
-- An Idempotency-Key that was seen before returns the job it created instead.
-- KEYS: job hash, stream, events, idempotency key (the job hash when unused), delayed set,
--       jobs index, owner's jobs index
-- ARGV: job id, envelope, queued event, idempotency ttl s (0 = no key), events maxlen, data field,
--       due ms (0 = now), created ms, then field/value pairs of the record
local job, stream, events, idem, delayed = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, envelope, event = ARGV[1], ARGV[2], ARGV[3]
local idem_ttl, events_maxlen, data = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local due = tonumber(ARGV[7])
if idem_ttl > 0 then
  local first = redis.call('GET', idem)
  if first then return {first, 0} end
  redis.call('SET', idem, id, 'EX', idem_ttl)
end
local fields = {}
for i = 9, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', job, unpack(fields))
if due > 0 then
  redis.call('ZADD', delayed, due, id)
  redis.call('HSET', job, 'state', 'delayed', 'envelope', envelope)
else
  local entry = redis.call('XADD', stream, '*', data, envelope)
  redis.call('HSET', job, 'state', 'queued', 'entry', entry, 'envelope', envelope)
end
index_job(KEYS[6], KEYS[7], id, ARGV[8])
redis.call('XADD', events, 'MAXLEN', '~', events_maxlen, '*', data, event)
return {id, 1}
