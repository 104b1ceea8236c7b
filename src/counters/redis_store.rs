//! Redis counters: one atomic script per key and hit, so instances behind a load balancer
//! share them; on one Redis server or a Redis Cluster.
//!
//! Every script reads and writes one key, so it runs on the node that holds the key's slot.
//! A key is `prefix:space:kind:{entity}`: the hash tag is the entity the key counts for
//! (`user:<id>`, `ip:<address>`, a flow, a code), so an entity's keys share a slot and
//! different entities spread over the cluster. Checks over several keys (a password attempt
//! counts for the user, the address and the pair) are one step per key in a fixed order:
//! [`crate::service::throttle::Throttle::reserve`] gives back the keys it reserved when a
//! later one refuses, so each key's limit holds exactly under any concurrency, as each
//! key's own step is atomic.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

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

/// One key of `Counters::peek` and `Counters::admit`: {0, ms left} when the key is at its
/// maximum (ARGV: max, window in ms; a key at its maximum without expiry gets the window, as
/// in the reserve script), else {1, the count}. Counts nothing.
const PEEK_SCRIPT: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]); ttl = tonumber(ARGV[2]) end
  return {0, ttl}
end
return {1, n}
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

/// How the server reaches Redis: `BYPASS_IDP_REDIS_MODE`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RedisMode {
    /// One server (or a proxy in front of several), `REDIS_URL` its address.
    #[default]
    Single,
    /// A Redis Cluster, `REDIS_URL` a comma-separated list of seed nodes.
    Cluster,
}

/// A connection to one server (reconnecting) or to a cluster (following its slots).
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

pub struct RedisCounters {
    connection: Connection,
    mode: RedisMode,
    prefix: String,
    reserve: redis::Script,
    give_back: redis::Script,
    peek: redis::Script,
    acquire: redis::Script,
}

/// `kind:{entity}` for the logical key `kind:entity` (the part after the first colon is the
/// entity, see [`crate::domain::limits::LimitKey::key`]); `{key}` when it has no kind. The
/// entity is escaped (`%`, `{`, `}`), so a user name with braces cannot move the tag.
fn tagged(key: &str) -> String {
    let escape = |text: &str| {
        text.replace('%', "%25")
            .replace('{', "%7B")
            .replace('}', "%7D")
    };
    match key.split_once(':') {
        Some((kind, entity)) => format!("{}:{{{}}}", escape(kind), escape(entity)),
        None => format!("{{{}}}", escape(key)),
    }
}

/// The nodes of `REDIS_URL`: one address, or a comma-separated list in cluster mode.
pub fn nodes(url: &str) -> Vec<&str> {
    url.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect()
}

fn err(e: redis::RedisError) -> CounterError {
    CounterError::Backend(e.to_string())
}

impl RedisCounters {
    pub async fn connect(
        url: &str,
        mode: RedisMode,
        ca_pem: Option<Vec<u8>>,
        prefix: &str,
    ) -> Result<Self, CounterError> {
        let certificates = |root_cert: Vec<u8>| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root_cert),
        };
        // Redis answers in microseconds; a slow answer means this instance is busy (argon2 on
        // every core), and failing the request then would turn load into errors.
        // A Redis that refuses connections fails the request within a second, and one that
        // hangs within three (a 503 the client retries), instead of holding requests through
        // a long reconnect backoff. Argon2 runs off the async workers, so a busy instance
        // still reads Redis's answers in time.
        let connection = match mode {
            RedisMode::Single => {
                let client = match ca_pem {
                    Some(root_cert) => redis::Client::build_with_tls(url, certificates(root_cert)),
                    None => redis::Client::open(url),
                }
                .map_err(err)?;
                let config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(Duration::from_secs(3)))
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_number_of_retries(2)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(400));
                Connection::Single(
                    ConnectionManager::new_with_config(client, config)
                        .await
                        .map_err(err)?,
                )
            }
            RedisMode::Cluster => {
                let mut builder = ClusterClient::builder(nodes(url))
                    .connection_timeout(Duration::from_secs(2))
                    .response_timeout(Duration::from_secs(3))
                    .retries(2)
                    .min_retry_wait(50)
                    .max_retry_wait(400);
                if let Some(root_cert) = ca_pem {
                    builder = builder.certs(certificates(root_cert));
                }
                let client = builder.build().map_err(err)?;
                Connection::Cluster(client.get_async_connection().await.map_err(err)?)
            }
        };
        Ok(Self {
            connection,
            mode,
            prefix: prefix.to_owned(),
            reserve: redis::Script::new(RESERVE_SCRIPT),
            give_back: redis::Script::new(GIVE_BACK_SCRIPT),
            peek: redis::Script::new(PEEK_SCRIPT),
            acquire: redis::Script::new(ACQUIRE_SCRIPT),
        })
    }

    /// One key of a multi-key check: `Err` with the time left at the maximum, else the count.
    async fn peek_one(
        &self,
        key: &str,
        limit: Limit,
    ) -> Result<Result<u64, Duration>, CounterError> {
        let (open, value) = self.window_step(&self.peek, key, limit).await?;
        Ok(if open {
            Ok(value)
        } else {
            Err(Duration::from_millis(value))
        })
    }

    /// Runs a window script (reserve or peek) on one key: whether it passed, and the count
    /// (or, refused, the milliseconds left in the window).
    async fn window_step(
        &self,
        script: &redis::Script,
        key: &str,
        limit: Limit,
    ) -> Result<(bool, u64), CounterError> {
        let mut connection = self.connection.clone();
        let (passed, value): (u8, i64) = script
            .key(self.key(key))
            .arg(limit.max)
            .arg(limit.window.as_millis().max(1) as u64)
            .invoke_async(&mut connection)
            .await
            .map_err(err)?;
        Ok((passed == 1, value.max(0) as u64))
    }

    /// `prefix:space:…`: on a cluster tagged by entity; on one server as before cluster
    /// mode came (`{key}`), so an upgrade keeps the flows, codes and windows in Redis.
    fn spaced(&self, space: &str, key: &str) -> String {
        match self.mode {
            RedisMode::Cluster => format!("{}:{space}:{}", self.prefix, tagged(key)),
            RedisMode::Single => format!("{}:{space}:{{{key}}}", self.prefix),
        }
    }

    fn key(&self, key: &str) -> String {
        self.spaced("rl", key)
    }

    fn value_key(&self, key: &str) -> String {
        self.spaced("kv", key)
    }

    fn use_key(&self, key: &str) -> String {
        self.spaced("uses", key)
    }
}

#[async_trait::async_trait]
impl Counters for RedisCounters {
    async fn reserve(&self, key: &str, limit: Limit) -> Result<Decision, CounterError> {
        let (reserved, value) = self.window_step(&self.reserve, key, limit).await?;
        Ok(if reserved {
            Decision::Reserved { count: value }
        } else {
            Decision::Denied {
                retry_after: Duration::from_millis(value),
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

    /// One step per key, in order: refuses on the first key at its maximum, else clears the
    /// keys marked. A failure counted between the two steps may be cleared with them; it
    /// is what a success clears anyway.
    async fn admit(
        &self,
        keys: &[(String, Limit, bool)],
    ) -> Result<Option<Duration>, CounterError> {
        for (key, limit, _) in keys {
            if let Err(left) = self.peek_one(key, *limit).await? {
                return Ok(Some(left));
            }
        }
        for (key, _, clear) in keys {
            if *clear {
                self.clear(key).await?;
            }
        }
        Ok(None)
    }

    async fn peek(&self, keys: &[(String, Limit)]) -> Result<Result<bool, Duration>, CounterError> {
        let mut counted = false;
        for (key, limit) in keys {
            match self.peek_one(key, *limit).await? {
                Err(left) => return Ok(Err(left)),
                Ok(count) => counted |= count > 0,
            }
        }
        Ok(Ok(counted))
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

#[cfg(test)]
mod tests {
    use super::tagged;
    use crate::domain::ids::UserId;
    use crate::domain::limits::LimitKey;

    #[test]
    fn keys_are_tagged_by_the_entity_they_count_for() {
        assert_eq!(tagged("mfa-fail:user:u1"), "mfa-fail:{user:u1}");
        assert_eq!(tagged("flow:abc"), "flow:{abc}");
        assert_eq!(tagged("plain"), "{plain}");
        // Braces in a user name stay inside the tag, and stay distinct.
        assert_eq!(tagged("pwd-fail:user:a}b{"), "pwd-fail:{user:a%7Db%7B}");
        assert_ne!(tagged("pwd-fail:user:%7D"), tagged("pwd-fail:user:}"));
        // An address's keys share one tag, a user's another.
        let ip: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        let user = UserId::new("u1");
        let tag = |key: &LimitKey| {
            let key = tagged(&key.key());
            key[key.find('{').unwrap()..].to_owned()
        };
        let address: Vec<String> = LimitKey::password("alice", ip.into())
            .iter()
            .chain(&LimitKey::second_factor(&user, ip.into()))
            .map(tag)
            .filter(|t| t.starts_with("{ip:"))
            .collect();
        assert_eq!(address.len(), 2, "{address:?}");
        assert!(address.iter().all(|t| t == "{ip:192.0.2.7}"), "{address:?}");
        assert_eq!(
            tag(&LimitKey::SavedSets(user.clone())),
            tag(&LimitKey::SecondFactorUser(user))
        );
    }
}
