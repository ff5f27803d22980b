//! The Lua scripts the cluster runs in Redis (loaded with SCRIPT LOAD on every connection, run
//! with EVALSHA). Each is atomic in Redis, so a message's seq, its place in the buffer and its
//! PUBLISH happen in one step, in one order for every node. Key layout: see `wire`.
//!
//! Channel scripts take `KEYS = [P:ch:NAME, P:buf:NAME, P:channels]` and
//! `ARGV = [NAME, P:sub:NAME, ...]`.
//!
//! Presence (`/psub`): a script that creates a channel publishes `1 NAME` on `P:presence` in the
//! same step, `/close` publishes `0 NAME`, and the sweep (once a second per shard, whichever node
//! runs it first) walks the channel set so that each live channel is re-announced about once
//! per `channel_timeout` and each one gone by expiry is reported `0 NAME` and leaves the set.
//!
//! Depends on: nothing of the crate (sha1_smol for the digests).

/// Shared by the channel scripts: create a channel (epoch, seq 0, token), refresh its TTL, take
/// the next seq (1 after 4294967295: seq 0 means "tell me where the channel is").
const PRELUDE: &str = r"
local meta, buf, set = KEYS[1], KEYS[2], KEYS[3]
local name, subject = ARGV[1], ARGV[2]
-- P:sub:NAME without 'sub:NAME', then 'presence'.
local presence = string.sub(subject, 1, #subject - #name - 4) .. 'presence'
local function create(epoch, token, ttl)
  redis.call('HSET', meta, 'e', epoch, 's', 0, 't', token)
  redis.call('SADD', set, name)
  redis.call('EXPIRE', meta, ttl)
  redis.call('PUBLISH', presence, '1 ' .. name .. '\n')
end
local function touch(ttl)
  redis.call('EXPIRE', meta, ttl)
  redis.call('EXPIRE', buf, ttl)
end
local function next_seq()
  local s = redis.call('HINCRBY', meta, 's', 1)
  if s > 4294967295 then
    s = 1
    redis.call('HSET', meta, 's', 1)
  end
  return s
end
local function store(s, kind, content, size)
  local entry = s .. ' ' .. kind .. content
  if size > 0 then
    redis.call('RPUSH', buf, entry)
    redis.call('LTRIM', buf, -size, -1)
  end
  return entry
end
";

/// `/push`, `/pub`. ARGV: 3 kind letter, 4 content, 5 buffer size, 6 ttl, 7 epoch and 8 token
/// for a creation. Returns the seq.
const PUBLISH: &str = r"
local e = redis.call('HGET', meta, 'e')
if not e then
  create(ARGV[7], ARGV[8], ARGV[6])
  e = ARGV[7]
end
local s = next_seq()
local entry = store(s, ARGV[3], ARGV[4], tonumber(ARGV[5]))
touch(ARGV[6])
redis.call('PUBLISH', subject, 'm' .. e .. ' ' .. entry)
return s
";

/// A node starts (or checks) its mirror. ARGV: 3 create (`1`/`0`), 4 ttl, 5 epoch, 6 token.
/// Returns `[epoch, last seq, token, [entries]]`, or nil when absent and not created.
const STATE: &str = r"
local e = redis.call('HGET', meta, 'e')
if not e then
  if ARGV[3] ~= '1' then return false end
  create(ARGV[5], ARGV[6], ARGV[4])
else
  touch(ARGV[4])
end
local m = redis.call('HMGET', meta, 'e', 's', 't')
return {m[1], m[2], m[3], redis.call('LRANGE', buf, 0, -1)}
";

/// `/sign`. ARGV: 3 expires (the TTL it sets), 4 epoch, 5 token. Returns
/// `[epoch, last seq, token, oldest entry or '']`.
const SIGN: &str = r"
if not redis.call('HGET', meta, 'e') then
  create(ARGV[4], ARGV[5], ARGV[3])
end
touch(ARGV[3])
local m = redis.call('HMGET', meta, 'e', 's', 't')
return {m[1], m[2], m[3], redis.call('LINDEX', buf, 0) or ''}
";

/// `/close`: frees the channel and tells every node. Returns the last seq, nil when absent.
const CLOSE: &str = r"
local m = redis.call('HMGET', meta, 'e', 's')
if not m[1] then return false end
redis.call('DEL', meta, buf)
redis.call('SREM', set, name)
redis.call('PUBLISH', subject, 'c' .. m[1] .. ' ' .. m[2])
redis.call('PUBLISH', presence, '0 ' .. name .. '\n')
return m[2]
";

/// `/clear`: empties the buffer (seqs go on) and tells every node. Returns the last seq.
const CLEAR: &str = r"
local m = redis.call('HMGET', meta, 'e', 's')
if not m[1] then return false end
redis.call('DEL', buf)
redis.call('PUBLISH', subject, 'x' .. m[1] .. ' ' .. m[2])
return m[2]
";

/// `/broadcast` on every channel of this shard. KEYS: `[P:channels]`; ARGV: 1 prefix, 2 content,
/// 3 buffer size. Channels gone by expiry leave the set here. Returns how many got it.
const BROADCAST: &str = r"
local names = redis.call('SMEMBERS', KEYS[1])
local size = tonumber(ARGV[3])
local count = 0
for _, name in ipairs(names) do
  local meta = ARGV[1] .. ':ch:' .. name
  local e = redis.call('HGET', meta, 'e')
  if not e then
    redis.call('SREM', KEYS[1], name)
    redis.call('PUBLISH', ARGV[1] .. ':presence', '0 ' .. name .. '\n')
  else
    local s = redis.call('HINCRBY', meta, 's', 1)
    if s > 4294967295 then
      s = 1
      redis.call('HSET', meta, 's', 1)
    end
    local entry = s .. ' b' .. ARGV[2]
    if size > 0 then
      local buf = ARGV[1] .. ':buf:' .. name
      redis.call('RPUSH', buf, entry)
      redis.call('LTRIM', buf, -size, -1)
    end
    redis.call('PUBLISH', ARGV[1] .. ':sub:' .. name, 'm' .. e .. ' ' .. entry)
    count = count + 1
  end
end
return count
";

/// A worker's subscriber counts. KEYS: `[P:nodes, P:n:MEMBER, P:t:MEMBER]`; ARGV: 1 member,
/// 2 ttl, 3 `full` (the pairs replace what the member had) or `delta` (the pairs are changes; a
/// count of 0 removes the channel), then channel/count pairs. `P:t:MEMBER` holds their sum (for
/// `/info` totals); a delta keeps it by what each pair changed. Returns 1, or 0 when a delta
/// finds the member's keys gone (its sum, or its hash while the sum is not 0: Redis lost the
/// counts, and the member must send them all). Members not refreshed within the TTL are dropped.
const COUNTS: &str = r"
local total = 0
if ARGV[3] == 'full' then
  redis.call('DEL', KEYS[2])
  for i = 5, #ARGV, 2 do total = total + tonumber(ARGV[i]) end
  for i = 4, #ARGV, 1000 do
    redis.call('HSET', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
  end
else
  local had = redis.call('GET', KEYS[3])
  if not had then return 0 end
  total = tonumber(had)
  if total > 0 and redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
  for i = 4, #ARGV, 2 do
    local n = tonumber(ARGV[i + 1])
    total = total + n - tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0')
    if n == 0 then
      redis.call('HDEL', KEYS[2], ARGV[i])
    else
      redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
    end
  end
end
redis.call('SET', KEYS[3], total, 'EX', ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ARGV[2] * 1000)
return 1
";

/// `/info?cname=`: the channel's subscribers over every live member. KEYS: `[P:nodes]`; ARGV: 1
/// prefix, 2 name, 3 ttl.
const INFO: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local members = redis.call('ZRANGEBYSCORE', KEYS[1], now - ARGV[3] * 1000, '+inf')
local total = 0
for _, m in ipairs(members) do
  local c = redis.call('HGET', ARGV[1] .. ':n:' .. m, ARGV[2])
  if c then total = total + tonumber(c) end
end
return total
";

/// The presence sweep of one shard. KEYS: `[P:channels, P:sweep]`; ARGV: 1 prefix, 2 period
/// (`channel_timeout`, seconds). Runs at most once per second of Redis's clock whichever node
/// calls it; each run takes the next `ceil(channels / period)` names of the set (SSCAN from the
/// cursor kept in `P:sweep`): live ones are re-announced `1 NAME`, expired ones leave the set and
/// are reported `0 NAME`, all in one PUBLISH. Returns how many lines it published.
const SWEEP: &str = r"
local now = tonumber(redis.call('TIME')[1])
local last = tonumber(redis.call('HGET', KEYS[2], 'at') or '0')
if now <= last then return 0 end
local cursor = redis.call('HGET', KEYS[2], 'c') or '0'
local n = redis.call('SCARD', KEYS[1])
local count = math.max(1, math.ceil(n / math.max(1, tonumber(ARGV[2]))))
local r = redis.call('SSCAN', KEYS[1], cursor, 'COUNT', count)
local lines = {}
for _, name in ipairs(r[2]) do
  if redis.call('EXISTS', ARGV[1] .. ':ch:' .. name) == 1 then
    lines[#lines + 1] = '1 ' .. name
  else
    redis.call('SREM', KEYS[1], name)
    lines[#lines + 1] = '0 ' .. name
  end
end
redis.call('HSET', KEYS[2], 'at', now, 'c', r[1])
if #lines > 0 then
  redis.call('PUBLISH', ARGV[1] .. ':presence', table.concat(lines, '\n') .. '\n')
end
return #lines
";

/// `/info` without `cname`, this shard's part: `[channels, subscribers]`, the channels in the
/// set and the sums of every live member. KEYS: `[P:nodes, P:channels]`; ARGV: 1 prefix, 2 ttl.
const TOTALS: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local members = redis.call('ZRANGEBYSCORE', KEYS[1], now - ARGV[2] * 1000, '+inf')
local total = 0
for _, m in ipairs(members) do
  local c = redis.call('GET', ARGV[1] .. ':t:' .. m)
  if c then total = total + tonumber(c) end
end
return {redis.call('SCARD', KEYS[2]), total}
";

/// One script: which, its text and its SHA-1 (hex).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    Publish,
    State,
    Sign,
    Close,
    Clear,
    Broadcast,
    Counts,
    Info,
    Sweep,
    Totals,
}

pub const ALL: [Script; 10] = [
    Script::Publish,
    Script::State,
    Script::Sign,
    Script::Close,
    Script::Clear,
    Script::Broadcast,
    Script::Counts,
    Script::Info,
    Script::Sweep,
    Script::Totals,
];

impl Script {
    /// The whole text sent to Redis.
    pub fn text(self) -> String {
        let (prelude, body) = match self {
            Script::Publish => (true, PUBLISH),
            Script::State => (true, STATE),
            Script::Sign => (true, SIGN),
            Script::Close => (true, CLOSE),
            Script::Clear => (true, CLEAR),
            Script::Broadcast => (false, BROADCAST),
            Script::Counts => (false, COUNTS),
            Script::Info => (false, INFO),
            Script::Sweep => (false, SWEEP),
            Script::Totals => (false, TOTALS),
        };
        if prelude {
            format!("{PRELUDE}{body}")
        } else {
            body.to_string()
        }
    }

    /// The SHA-1 EVALSHA names it by.
    pub fn sha(self) -> String {
        sha1_smol::Sha1::from(self.text()).digest().to_string()
    }
}

/// Every script's digest, indexed like [`ALL`].
pub fn digests() -> Vec<String> {
    ALL.iter().map(|s| s.sha()).collect()
}
