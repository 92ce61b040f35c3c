-- Replay a dead letter: its job starts over as a fresh record with a new round of attempts
-- (keeping the errors so far), queued, indexed and announced with `job.queued`; the dead letter goes, and the
-- audit stream records who did it. Returns 1 when replayed, -1 when the dead letter is gone,
-- 0 when the job lives on in another state (it was replayed already).
-- KEYS: job hash, stream, dead-letter stream, events, jobs index, owner's jobs index,
--       expiring set, audit stream
-- ARGV: dead-letter entry id, envelope, queued event, job id, created ms, events maxlen,
--       data field, audit record, audit maxlen, then field/value pairs of the record
local job, stream, dead, events = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if #redis.call('XRANGE', dead, ARGV[1], ARGV[1]) == 0 then return -1 end
local state = redis.call('HGET', job, 'state')
if state and state ~= 'dead' then return 0 end
redis.call('XDEL', dead, ARGV[1])
redis.call('DEL', job)
local record = {}
for i = 10, #ARGV do record[#record + 1] = ARGV[i] end
redis.call('HSET', job, unpack(record))
local entry = redis.call('XADD', stream, '*', ARGV[7], ARGV[2])
redis.call('HSET', job, 'state', 'queued', 'entry', entry, 'envelope', ARGV[2])
redis.call('ZREM', KEYS[7], ARGV[4])
index_job(KEYS[5], KEYS[6], ARGV[4], ARGV[5])
redis.call('XADD', events, 'MAXLEN', '~', ARGV[6], '*', ARGV[7], ARGV[3])
redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[9], '*', ARGV[7], ARGV[8])
return 1
