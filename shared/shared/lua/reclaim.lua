-- Take over entries whose holder stopped renewing them (its worker died), with how many times
-- each has been delivered, so that a job that kills every worker can be dead-lettered.
-- KEYS: stream
-- ARGV: group, consumer, min idle ms, count, data field
-- Returns {{entry id, data, deliveries}, ...}
local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0', 'COUNT', ARGV[4])
local taken = {}
for _, entry in ipairs(claimed[2]) do
  local id, fields = entry[1], entry[2]
  local data = ''
  if fields then
    for i = 1, #fields, 2 do
      if fields[i] == ARGV[5] then data = fields[i + 1] end
    end
  end
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  local deliveries = 1
  if #pending > 0 then deliveries = pending[1][4] end
  taken[#taken + 1] = {id, data, deliveries}
end
return taken
