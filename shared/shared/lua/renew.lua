-- Renew the leases of entries this consumer still holds: XCLAIM with JUSTID resets their idle
-- time without counting a delivery. An entry another worker has reclaimed is left alone.
-- KEYS: stream
-- ARGV: group, consumer, entry ids...
local renewed = 0
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #pending > 0 and pending[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    renewed = renewed + 1
  end
end
return renewed
