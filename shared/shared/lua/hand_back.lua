-- At shutdown, make every entry this consumer still holds claimable by the others at once: set
-- its idle time past the visibility timeout, and do not count this as a failed delivery.
-- KEYS: stream
-- ARGV: group, consumer, idle ms, limit
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', ARGV[4], ARGV[2])
for _, entry in ipairs(pending) do
  local deliveries = math.max(entry[4] - 1, 0)
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, entry[1],
    'IDLE', ARGV[3], 'RETRYCOUNT', deliveries, 'JUSTID')
end
return #pending
