-- Store a job's record, append it to its queue's stream and emit `job.queued`, atomically.
-- An Idempotency-Key that was seen before returns the job it created instead.
-- KEYS: job hash, stream, events, idempotency key ('' slot-mate when unused)
-- ARGV: job id, envelope, queued event, idempotency ttl s (0 = no key), events maxlen, data field,
--       then field/value pairs of the record
local job, stream, events, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, envelope, event = ARGV[1], ARGV[2], ARGV[3]
local idem_ttl, events_maxlen, data = tonumber(ARGV[4]), ARGV[5], ARGV[6]
if idem_ttl > 0 then
  local first = redis.call('GET', idem)
  if first then return {first, 0} end
  redis.call('SET', idem, id, 'EX', idem_ttl)
end
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', job, unpack(fields))
local entry = redis.call('XADD', stream, '*', data, envelope)
redis.call('HSET', job, 'entry', entry, 'envelope', envelope)
redis.call('XADD', events, 'MAXLEN', '~', events_maxlen, '*', data, event)
return {id, 1}
