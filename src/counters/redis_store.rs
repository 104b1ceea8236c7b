//! Redis counters: one atomic script per hit, so instances behind a load balancer share them.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{CounterError, Counters};
use crate::domain::limits::{Decision, Limit};

/// `Window::reserve` in one script: deny at the maximum (counting nothing), else add one; the
/// window starts at the first attempt. ARGV: max, window in ms. Returns {reserved, count or
/// ms left}.
const RESERVE_SCRIPT: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]); ttl = tonumber(ARGV[2]) end
  return {0, ttl}
end
n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return {1, n}
";

/// `Window::give_back`: one attempt back, the key gone when nothing is left.
const GIVE_BACK_SCRIPT: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 1 then return redis.call('DECR', KEYS[1]) end
redis.call('DEL', KEYS[1])
return 0
";

/// `Counters::admit`: the time left on the first key at its maximum (ARGV per key: max,
/// window in ms, clear flag; a key at its maximum without expiry gets the window, as in the
/// reserve script), else deletes the keys flagged and returns -1.
const ADMIT_SCRIPT: &str = r"
for i, key in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', key) or '0')
  if n >= tonumber(ARGV[3 * i - 2]) then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then redis.call('PEXPIRE', key, ARGV[3 * i - 1]); ttl = tonumber(ARGV[3 * i - 1]) end
    return ttl
  end
end
for i, key in ipairs(KEYS) do
  if ARGV[3 * i] == '1' then redis.call('DEL', key) end
end
return -1
";

/// `Counters::peek`: {0, ms left} for the first key at its maximum (ARGV per key: max,
/// window in ms), else {1, 1 if any key has attempts counted, else 0}. Counts nothing.
const PEEK_SCRIPT: &str = r"
local counted = 0
for i, key in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', key) or '0')
  if n >= tonumber(ARGV[2 * i - 1]) then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then redis.call('PEXPIRE', key, ARGV[2 * i]); ttl = tonumber(ARGV[2 * i]) end
    return {0, ttl}
  end
  if n > 0 then counted = 1 end
end
return {1, counted}
";

/// Seeds the count from the database when the key is missing, so that a flushed or restarted
/// Redis never gives a spent use back; then takes a use only below the maximum.
const ACQUIRE_SCRIPT: &str = r"
local count = redis.call('GET', KEYS[1])
if not count then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  count = ARGV[1]
end
if tonumber(count) >= tonumber(ARGV[2]) then return -1 end
return redis.call('INCR', KEYS[1])
";

pub struct RedisCounters {
    connection: ConnectionManager,
    prefix: String,
    reserve: redis::Script,
    give_back: redis::Script,
    admit: redis::Script,
    peek: redis::Script,
    acquire: redis::Script,
}

fn err(e: redis::RedisError) -> CounterError {
    CounterError::Backend(e.to_string())
}

impl RedisCounters {
    pub async fn connect(
        url: &str,
        ca_pem: Option<Vec<u8>>,
        prefix: &str,
    ) -> Result<Self, CounterError> {
        let client = match ca_pem {
            Some(root_cert) => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                },
            ),
            None => redis::Client::open(url),
        }
        .map_err(err)?;
        // Redis answers in microseconds; a slow answer means this instance is busy (argon2 on
        // every core), and failing the request then would turn load into errors.
        // A Redis that refuses connections fails the request within a second, and one that
        // hangs within three (a 503 the client retries), instead of holding requests through
        // a long reconnect backoff. Argon2 runs off the async workers, so a busy instance
        // still reads Redis's answers in time.
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(3)))
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(400));
        let connection = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(err)?;
        Ok(Self {
            connection,
            prefix: prefix.to_owned(),
            reserve: redis::Script::new(RESERVE_SCRIPT),
            give_back: redis::Script::new(GIVE_BACK_SCRIPT),
            admit: redis::Script::new(ADMIT_SCRIPT),
            peek: redis::Script::new(PEEK_SCRIPT),
            acquire: redis::Script::new(ACQUIRE_SCRIPT),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}:rl:{{{key}}}", self.prefix)
    }

    fn value_key(&self, key: &str) -> String {
        format!("{}:kv:{{{key}}}", self.prefix)
    }

    fn use_key(&self, key: &str) -> String {
        format!("{}:uses:{{{key}}}", self.prefix)
    }
}

#[async_trait::async_trait]
impl Counters for RedisCounters {
    async fn reserve(&self, key: &str, limit: Limit) -> Result<Decision, CounterError> {
        let mut connection = self.connection.clone();
        let (reserved, value): (u8, i64) = self
            .reserve
            .key(self.key(key))
            .arg(limit.max)
            .arg(limit.window.as_millis().max(1) as u64)
            .invoke_async(&mut connection)
            .await
            .map_err(err)?;
        Ok(if reserved == 1 {
            Decision::Reserved {
                count: value.max(0) as u64,
            }
        } else {
            Decision::Denied {
                retry_after: Duration::from_millis(value.max(0) as u64),
            }
        })
    }

    async fn give_back(&self, key: &str) -> Result<(), CounterError> {
        let mut connection = self.connection.clone();
        self.give_back
            .key(self.key(key))
            .invoke_async::<i64>(&mut connection)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn clear(&self, key: &str) -> Result<(), CounterError> {
        let mut connection = self.connection.clone();
        redis::cmd("DEL")
            .arg(self.key(key))
            .query_async::<()>(&mut connection)
            .await
            .map_err(err)
    }

    async fn admit(
        &self,
        keys: &[(String, Limit, bool)],
    ) -> Result<Option<Duration>, CounterError> {
        let mut connection = self.connection.clone();
        let mut invocation = self.admit.prepare_invoke();
        for (key, limit, clear) in keys {
            invocation
                .key(self.key(key))
                .arg(limit.max)
                .arg(limit.window.as_millis().max(1) as u64)
                .arg(if *clear { "1" } else { "0" });
        }
        let left: i64 = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(err)?;
        Ok((left >= 0).then(|| Duration::from_millis(left as u64)))
    }

    async fn peek(&self, keys: &[(String, Limit)]) -> Result<Result<bool, Duration>, CounterError> {
        let mut connection = self.connection.clone();
        let mut invocation = self.peek.prepare_invoke();
        for (key, limit) in keys {
            invocation
                .key(self.key(key))
                .arg(limit.max)
                .arg(limit.window.as_millis().max(1) as u64);
        }
        let (open, value): (u8, i64) = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(err)?;
        Ok(if open == 1 {
            Ok(value == 1)
        } else {
            Err(Duration::from_millis(value.max(0) as u64))
        })
    }

    async fn acquire_use(
        &self,
        key: &str,
        seed: u64,
        max: u64,
        ttl: Duration,
    ) -> Result<Option<u64>, CounterError> {
        let mut connection = self.connection.clone();
        let count: i64 = self
            .acquire
            .key(self.use_key(key))
            .arg(seed)
            .arg(max)
            .arg(ttl.as_millis().max(1) as u64)
            .invoke_async(&mut connection)
            .await
            .map_err(err)?;
        Ok((count >= 0).then_some(count as u64))
    }

    async fn release_use(&self, key: &str) -> Result<(), CounterError> {
        let mut connection = self.connection.clone();
        self.give_back
            .key(self.use_key(key))
            .invoke_async::<i64>(&mut connection)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CounterError> {
        let mut connection = self.connection.clone();
        redis::cmd("SET")
            .arg(self.value_key(key))
            .arg(value)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async::<()>(&mut connection)
            .await
            .map_err(err)
    }

    async fn replace(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, CounterError> {
        let mut connection = self.connection.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.value_key(key))
            .arg(value)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .arg("XX")
            .query_async(&mut connection)
            .await
            .map_err(err)?;
        Ok(set.is_some())
    }

    async fn get(&self, key: &str) -> Result<Option<String>, CounterError> {
        let mut connection = self.connection.clone();
        redis::cmd("GET")
            .arg(self.value_key(key))
            .query_async(&mut connection)
            .await
            .map_err(err)
    }

    async fn take(&self, key: &str) -> Result<Option<String>, CounterError> {
        let mut connection = self.connection.clone();
        redis::cmd("GETDEL")
            .arg(self.value_key(key))
            .query_async(&mut connection)
            .await
            .map_err(err)
    }

    async fn remove(&self, key: &str) -> Result<bool, CounterError> {
        let mut connection = self.connection.clone();
        let deleted: u64 = redis::cmd("DEL")
            .arg(self.value_key(key))
            .query_async(&mut connection)
            .await
            .map_err(err)?;
        Ok(deleted == 1)
    }

    async fn ping(&self) -> Result<(), CounterError> {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(|_| ())
            .map_err(err)
    }

    fn is_shared(&self) -> bool {
        true
    }
}
