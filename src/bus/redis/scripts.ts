/**
 * Lua scripts of the Redis bus. Scripts run atomically, which is what gives the adapter its guarantees:
 *
 * - PUBLISH appends a whole batch to the partition streams of one topic in one step, with ids taken from
 *   one topic-wide counter. So ids are unique and increasing across all partitions of a topic, every
 *   batch is all-or-nothing, and the set of entries present at any instant is a prefix of the topic in id
 *   order. read() relies on that to merge partitions back into publish order.
 * - HEARTBEAT / CLAIM / RELEASE keep consumer-group membership and partition leases (see membership.ts).
 *
 * TIME inside a script is fine on Redis >= 5 (effects replication).
 */

/** Parses `ms-seq` and keeps the larger id in (lastMs, lastSeq). */
const ID_HELPERS = `
local lastMs, lastSeq = -1, -1
local function consider(id)
  local dash = string.find(id, '-', 1, true)
  local ms = tonumber(string.sub(id, 1, dash - 1))
  local seq = tonumber(string.sub(id, dash + 1))
  if ms > lastMs or (ms == lastMs and seq > lastSeq) then lastMs, lastSeq = ms, seq end
end
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

/**
 * KEYS[1] registry hash, KEYS[2] topic's last-id key, KEYS[3..] the topic's partition streams in order.
 * ARGV[1] topic, ARGV[2] partition count the caller hashed with, ARGV[3] maxLen for the whole topic,
 * then 5 per message: partition (0-based), has-key ('1'/'0'), key, event JSON, headers JSON ('' = none).
 * Registers the topic on first use. Replies with [the last id of the batch, the topic's last id found
 * before it ('' when the topic held nothing)], or the error `CUTOVER_PARTITIONS <n>` when the topic exists
 * with another partition count (the caller re-hashes with n and retries). The second id lets a publisher see
 * that entries it had acknowledged are gone (see Publisher.checkContinuity).
 */
export const PUBLISH_LUA = `${ID_HELPERS}
local n = tonumber(ARGV[2])
local known = redis.call('HGET', KEYS[1], ARGV[1])
if known and tonumber(known) ~= n then
  return redis.error_reply('CUTOVER_PARTITIONS ' .. known)
end
if not known then redis.call('HSET', KEYS[1], ARGV[1], n) end
local maxlen = math.ceil(tonumber(ARGV[3]) / n)
local last = redis.call('GET', KEYS[2])
if last then
  consider(last)
else
  -- The id key went missing (deleted by hand): continue after what the streams already hold.
  for i = 3, #KEYS do
    local info = redis.pcall('XINFO', 'STREAM', KEYS[i])
    if type(info) == 'table' and not info.err then
      for j = 1, #info, 2 do
        if info[j] == 'last-generated-id' then consider(info[j + 1]) end
      end
    end
  end
end
local before = ''
if lastMs >= 0 then before = string.format('%d-%d', lastMs, lastSeq) end
local ms, seq = nowMs(), -1
if lastMs >= ms then ms, seq = lastMs, lastSeq end
for i = 4, #ARGV, 5 do
  seq = seq + 1
  local args = {'XADD', KEYS[tonumber(ARGV[i]) + 3], 'MAXLEN', '~', maxlen, string.format('%d-%d', ms, seq)}
  if ARGV[i + 1] == '1' then
    args[#args + 1] = 'key'
    args[#args + 1] = ARGV[i + 2]
  end
  args[#args + 1] = 'event'
  args[#args + 1] = ARGV[i + 3]
  if ARGV[i + 4] ~= '' then
    args[#args + 1] = 'headers'
    args[#args + 1] = ARGV[i + 4]
  end
  redis.call(unpack(args))
end
local id = string.format('%d-%d', ms, seq)
redis.call('SET', KEYS[2], id)
return {id, before}
`;

/**
 * KEYS[1] group members zset, KEYS[2..] lease keys the consumer believes it owns.
 * ARGV[1] consumer, ARGV[2] lease ttl (ms).
 * Refreshes membership, drops expired members, extends the leases still held.
 * Replies {live member count, then 1/0 per lease: still ours}.
 */
export const HEARTBEAT_LUA = `${ID_HELPERS}
local ttl = tonumber(ARGV[2])
local now = nowMs()
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ttl * 4)
local out = {redis.call('ZCARD', KEYS[1])}
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ttl)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
`;

/**
 * KEYS lease keys to take. ARGV[1] consumer, ARGV[2] ttl (ms), then per key the owner the caller planned
 * from ('' = nobody). Takes each lease that still has that owner (compare-and-set): a plan made from a read
 * that another consumer overtook takes nothing that moved. Replies with the 1-based indexes of the keys it took.
 */
export const CLAIM_LUA = `
local got = {}
for i = 1, #KEYS do
  local owner = redis.call('GET', KEYS[i]) or ''
  if owner == ARGV[i + 2] then
    redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
    got[#got + 1] = i
  end
end
return got
`;

/** KEYS lease keys, ARGV[1] consumer: deletes those it still owns. Replies with how many. */
export const RELEASE_LUA = `
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
    n = n + 1
  end
end
return n
`;
