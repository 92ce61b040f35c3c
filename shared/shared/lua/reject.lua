-- Dead-letter a stream entry that cannot be run at all (does not decode, unknown type), with
-- the reason, and ack it so that it never blocks or crashes a consumer.
-- KEYS: stream, dead-letter stream
-- ARGV: entry id, group, dead letter, data field
redis.call('XADD', KEYS[2], '*', ARGV[4], ARGV[3])
redis.call('XACK', KEYS[1], ARGV[2], ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
return 1
