//! Rate limits: token buckets per account and per principal, one per RPC class, kept in a
//! sharded map whose memory stays bounded however many callers there are.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use contactd_app::{Principal, Proof};

use crate::RpcClass;

/// One bucket's configuration: it refills at `per_second` tokens a second up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

// Bounds that keep the arithmetic meaningful (a rate of 1e-300 would wait past `Instant`'s range).
const MIN_PER_SECOND: f64 = 0.001;
const MAX_PER_SECOND: f64 = 1e9;

impl RateLimit {
    /// The same limit within the bounds `parse` enforces, for one built by hand.
    fn sanitized(self) -> Self {
        let per_second = if self.per_second.is_nan() {
            MIN_PER_SECOND
        } else {
            self.per_second.clamp(MIN_PER_SECOND, MAX_PER_SECOND)
        };
        Self {
            per_second,
            burst: self.burst.max(1),
        }
    }
}

/// The limit of each RPC class; a class without one is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RateLimits {
    by_class: [Option<RateLimit>; 4],
}

fn class_index(class: RpcClass) -> usize {
    match class {
        RpcClass::Read => 0,
        RpcClass::Write => 1,
        RpcClass::Verify => 2,
        RpcClass::Stream => 3,
    }
}

impl RateLimits {
    /// No limit on any class.
    pub fn unlimited() -> Self {
        Self::default()
    }

    /// Parses `read=200:400,write=50:100,verify=5:10,stream=2:4` (rate per second : burst). A
    /// class left out is unlimited; `off` (or an empty string) is no limits at all. Errors name
    /// the bad part.
    pub fn parse(spec: &str) -> Result<RateLimits, String> {
        let spec = spec.trim();
        let mut limits = Self::default();
        if spec.is_empty() || spec == "off" {
            return Ok(limits);
        }
        for part in spec.split(',') {
            let part = part.trim();
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected <class>=<rate per second>:<burst>"))?;
            let class = RpcClass::ALL
                .into_iter()
                .find(|class| class.as_str() == name.trim())
                .ok_or_else(|| {
                    format!(
                        "{part:?}: unknown class {name:?} (expected read, write, verify or stream)"
                    )
                })?;
            let slot = &mut limits.by_class[class_index(class)];
            if slot.is_some() {
                return Err(format!("{part:?}: the class {name:?} is given twice"));
            }
            let (rate, burst) = value
                .split_once(':')
                .ok_or_else(|| format!("{part:?}: expected <rate per second>:<burst>"))?;
            let per_second: f64 = rate
                .trim()
                .parse()
                .ok()
                .filter(|rate: &f64| (MIN_PER_SECOND..=MAX_PER_SECOND).contains(rate))
                .ok_or_else(|| {
                    format!(
                        "{part:?}: the rate {rate:?} is not a number from {MIN_PER_SECOND} to {MAX_PER_SECOND}"
                    )
                })?;
            let burst: u32 = burst
                .trim()
                .parse()
                .ok()
                .filter(|burst| *burst >= 1)
                .ok_or_else(|| {
                    format!("{part:?}: the burst {burst:?} is not a whole number from 1")
                })?;
            *slot = Some(RateLimit { per_second, burst });
        }
        Ok(limits)
    }

    pub fn get(&self, class: RpcClass) -> Option<RateLimit> {
        self.by_class[class_index(class)]
    }

    pub fn set(&mut self, class: RpcClass, limit: Option<RateLimit>) {
        self.by_class[class_index(class)] = limit;
    }

    pub fn is_unlimited(&self) -> bool {
        self.by_class.iter().all(Option::is_none)
    }
}

/// The syntax `parse` reads, so that the effective configuration can be printed.
impl fmt::Display for RateLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_unlimited() {
            return f.write_str("off");
        }
        let mut separator = "";
        for class in RpcClass::ALL {
            if let Some(limit) = self.get(class) {
                write!(
                    f,
                    "{separator}{}={}:{}",
                    class.as_str(),
                    limit.per_second,
                    limit.burst
                )?;
                separator = ",";
            }
        }
        Ok(())
    }
}

/// How long until a refused call would be allowed; never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

const SHARDS: usize = 16;
/// Buckets one shard holds before it sheds; 16 × 4096 buckets is a few MiB at most.
const SHARD_CAPACITY: usize = 4096;
/// What a shard over capacity sheds down to, so that shedding is not repeated on every insert.
const SHARD_AFTER_SHEDDING: usize = SHARD_CAPACITY * 3 / 4;
const MIN_RETRY_AFTER: Duration = Duration::from_millis(1);

/// Who a bucket counts for, borrowed from the call (looked up without allocating).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum BucketRef<'a> {
    Account {
        class: usize,
        account: &'a str,
    },
    Principal {
        class: usize,
        account: &'a str,
        proof: Proof,
        name: &'a str,
    },
}

/// A bucket's owner, kept beside it (allocated once, when the bucket is created).
#[derive(Debug)]
enum BucketKey {
    Account {
        class: usize,
        account: Box<str>,
    },
    Principal {
        class: usize,
        account: Box<str>,
        proof: Proof,
        name: Box<str>,
    },
}

impl BucketKey {
    fn new(key: BucketRef<'_>) -> Self {
        match key {
            BucketRef::Account { class, account } => Self::Account {
                class,
                account: account.into(),
            },
            BucketRef::Principal {
                class,
                account,
                proof,
                name,
            } => Self::Principal {
                class,
                account: account.into(),
                proof,
                name: name.into(),
            },
        }
    }

    fn is(&self, key: BucketRef<'_>) -> bool {
        match (self, key) {
            (
                Self::Account { class, account },
                BucketRef::Account {
                    class: c,
                    account: a,
                },
            ) => *class == c && **account == *a,
            (
                Self::Principal {
                    class,
                    account,
                    proof,
                    name,
                },
                BucketRef::Principal {
                    class: c,
                    account: a,
                    proof: p,
                    name: n,
                },
            ) => *class == c && **account == *a && *proof == p && **name == *n,
            _ => false,
        }
    }
}

#[derive(Debug)]
struct Bucket {
    key: BucketKey,
    tokens: f64,
    /// When `tokens` was computed.
    updated: Instant,
    /// When the bucket will be full again: from then on it is the same as no bucket.
    full_at: Instant,
}

impl Bucket {
    fn refill(&mut self, limit: RateLimit, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * limit.per_second).min(f64::from(limit.burst));
        self.updated = self.updated.max(now);
    }

    fn take(&mut self, limit: RateLimit) {
        self.tokens -= 1.0;
        let missing = f64::from(limit.burst) - self.tokens;
        self.full_at = Duration::try_from_secs_f64(missing / limit.per_second)
            .ok()
            .and_then(|until_full| self.updated.checked_add(until_full))
            .unwrap_or(self.updated);
    }

    fn wait(&self, limit: RateLimit) -> Duration {
        let seconds = (1.0 - self.tokens) / limit.per_second;
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
    }
}

/// One shard: buckets by the hash of their key, the few that share a hash in a list.
#[derive(Debug, Default)]
struct Shard {
    buckets: HashMap<u64, Vec<Bucket>>,
    len: usize,
}

impl Shard {
    /// The bucket of `key`, refilled to `now`; a new one starts full.
    fn bucket(
        &mut self,
        hash: u64,
        key: BucketRef<'_>,
        limit: RateLimit,
        now: Instant,
    ) -> &mut Bucket {
        let list = self.buckets.entry(hash).or_default();
        let index = match list.iter().position(|bucket| bucket.key.is(key)) {
            Some(index) => index,
            None => {
                list.push(Bucket {
                    key: BucketKey::new(key),
                    tokens: f64::from(limit.burst),
                    updated: now,
                    full_at: now,
                });
                self.len += 1;
                list.len() - 1
            }
        };
        let bucket = &mut list[index];
        bucket.refill(limit, now);
        bucket
    }

    /// Keeps the shard within its capacity: first forgets buckets that have refilled (they are
    /// the same as absent), then, under hostile churn, the ones touched longest ago.
    fn shed(&mut self, now: Instant) {
        if self.len <= SHARD_CAPACITY {
            return;
        }
        self.retain(|bucket| bucket.full_at > now);
        if self.len <= SHARD_AFTER_SHEDDING {
            return;
        }
        let mut touched: Vec<Instant> = self
            .buckets
            .values()
            .flatten()
            .map(|bucket| bucket.updated)
            .collect();
        let excess = self.len - SHARD_AFTER_SHEDDING;
        let (_, &mut newest_dropped, _) = touched.select_nth_unstable(excess - 1);
        let mut to_drop = excess;
        self.retain(|bucket| {
            if to_drop > 0 && bucket.updated <= newest_dropped {
                to_drop -= 1;
                false
            } else {
                true
            }
        });
    }

    fn retain(&mut self, mut keep: impl FnMut(&Bucket) -> bool) {
        let mut len = 0;
        self.buckets.retain(|_, list| {
            list.retain(|bucket| keep(bucket));
            len += list.len();
            !list.is_empty()
        });
        self.len = len;
    }
}

/// Token buckets per account and per principal (the principal being its account, proof and
/// name), one per RPC class; a call takes a token from both or from neither.
#[derive(Debug)]
pub struct RateLimiter {
    per_account: RateLimits,
    per_principal: RateLimits,
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
}

impl RateLimiter {
    pub fn new(per_account: RateLimits, per_principal: RateLimits) -> Self {
        let sanitize = |limits: RateLimits| RateLimits {
            by_class: limits.by_class.map(|limit| limit.map(RateLimit::sanitized)),
        };
        Self {
            per_account: sanitize(per_account),
            per_principal: sanitize(per_principal),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// Takes one token from the account's bucket and the principal's bucket of the class, or
    /// neither: when either is empty, answers how long until the call would be allowed.
    pub fn check(
        &self,
        principal: &Principal,
        class: RpcClass,
        now: Instant,
    ) -> Result<(), RetryAfter> {
        let index = class_index(class);
        let account = principal.account_id.as_str();
        let sides = [
            self.per_account.by_class[index].map(|limit| {
                (
                    limit,
                    BucketRef::Account {
                        class: index,
                        account,
                    },
                )
            }),
            self.per_principal.by_class[index].map(|limit| {
                (
                    limit,
                    BucketRef::Principal {
                        class: index,
                        account,
                        proof: principal.proof,
                        name: &principal.name,
                    },
                )
            }),
        ];
        let sides = sides.map(|side| {
            side.map(|(limit, key)| {
                let hash = self.hasher.hash_one(key);
                (limit, key, hash, shard_of(hash))
            })
        });
        let shard_indexes = sides.map(|side| side.map(|(.., shard)| shard));
        let (low, high) = match shard_indexes {
            [None, None] => return Ok(()),
            [Some(one), None] | [None, Some(one)] => (one, one),
            [Some(a), Some(b)] => (a.min(b), a.max(b)),
        };
        // Always the lower shard first, so that two calls never wait on each other's locks.
        let mut low_guard = lock(&self.shards[low]);
        let mut high_guard = (high != low).then(|| lock(&self.shards[high]));

        let mut wait = Duration::ZERO;
        for (limit, key, hash, shard) in sides.into_iter().flatten() {
            let shard = pick(shard, high, &mut low_guard, &mut high_guard);
            let bucket = shard.bucket(hash, key, limit, now);
            if bucket.tokens < 1.0 {
                wait = wait.max(bucket.wait(limit));
            }
        }
        let outcome = if wait.is_zero() {
            for (limit, key, hash, shard) in sides.into_iter().flatten() {
                pick(shard, high, &mut low_guard, &mut high_guard)
                    .bucket(hash, key, limit, now)
                    .take(limit);
            }
            Ok(())
        } else {
            Err(RetryAfter(wait.max(MIN_RETRY_AFTER)))
        };
        low_guard.shed(now);
        if let Some(high_guard) = high_guard.as_mut() {
            high_guard.shed(now);
        }
        outcome
    }

    #[cfg(test)]
    fn bucket_count(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len).sum()
    }
}

fn shard_of(hash: u64) -> usize {
    // The map hashes the u64 again; the shard takes the top bits so the two do not correlate.
    (hash >> 60) as usize % SHARDS
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding a shard leaves buckets that are still consistent numbers.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

fn pick<'g>(
    shard: usize,
    high: usize,
    low_guard: &'g mut MutexGuard<'_, Shard>,
    high_guard: &'g mut Option<MutexGuard<'_, Shard>>,
) -> &'g mut Shard {
    match high_guard {
        Some(guard) if shard == high => guard,
        _ => low_guard,
    }
}

#[cfg(test)]
mod tests {
    use contactd_domain::AccountId;

    use super::*;

    fn principal(account: &str, name: &str) -> Principal {
        Principal {
            account_id: AccountId::parse(account).unwrap(),
            name: name.to_owned(),
            proof: Proof::BearerToken,
        }
    }

    fn limits(spec: &str) -> RateLimits {
        RateLimits::parse(spec).unwrap()
    }

    #[test]
    fn limits_parse_and_print_back() {
        let parsed = limits("read=200:400,write=50:100,verify=5:10,stream=2:4");
        assert_eq!(
            parsed.get(RpcClass::Read),
            Some(RateLimit {
                per_second: 200.0,
                burst: 400
            })
        );
        assert_eq!(
            parsed.to_string(),
            "read=200:400,write=50:100,verify=5:10,stream=2:4"
        );
        let partial = limits(" verify = 0.5 : 1 , read=1:1 ");
        assert_eq!(partial.to_string(), "read=1:1,verify=0.5:1");
        assert_eq!(partial.get(RpcClass::Write), None);
        assert_eq!(RateLimits::parse(&partial.to_string()), Ok(partial));
        assert!(limits("off").is_unlimited());
        assert!(limits("").is_unlimited());
        assert_eq!(limits("off").to_string(), "off");
        assert_eq!(RateLimits::parse("off"), Ok(RateLimits::unlimited()));
    }

    #[test]
    fn limit_errors_name_the_bad_part() {
        let cases = [
            (
                "read=1:1,writ=1:1",
                r#""writ=1:1": unknown class "writ" (expected read, write, verify or stream)"#,
            ),
            (
                "read=1:1,read=2:2",
                r#""read=2:2": the class "read" is given twice"#,
            ),
            (
                "read",
                r#""read": expected <class>=<rate per second>:<burst>"#,
            ),
            ("read=1", r#""read=1": expected <rate per second>:<burst>"#),
            (
                "read=x:1",
                r#""read=x:1": the rate "x" is not a number from 0.001 to 1000000000"#,
            ),
            (
                "read=0:1",
                r#""read=0:1": the rate "0" is not a number from 0.001 to 1000000000"#,
            ),
            (
                "read=NaN:1",
                r#""read=NaN:1": the rate "NaN" is not a number from 0.001 to 1000000000"#,
            ),
            (
                "read=inf:1",
                r#""read=inf:1": the rate "inf" is not a number from 0.001 to 1000000000"#,
            ),
            (
                "read=1:0",
                r#""read=1:0": the burst "0" is not a whole number from 1"#,
            ),
            (
                "read=1:1.5",
                r#""read=1:1.5": the burst "1.5" is not a whole number from 1"#,
            ),
            (
                "read=1:1,",
                r#""": expected <class>=<rate per second>:<burst>"#,
            ),
        ];
        for (spec, expected) in cases {
            assert_eq!(RateLimits::parse(spec), Err(expected.to_owned()), "{spec}");
        }
    }

    #[test]
    fn a_burst_is_allowed_then_refused_until_it_refills() {
        let limiter = RateLimiter::new(limits("write=2:3"), RateLimits::unlimited());
        let caller = principal("1", "a");
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check(&caller, RpcClass::Write, start), Ok(()));
        }
        assert_eq!(
            limiter.check(&caller, RpcClass::Write, start),
            Err(RetryAfter(Duration::from_millis(500)))
        );
        let later = start + Duration::from_millis(250);
        assert_eq!(
            limiter.check(&caller, RpcClass::Write, later),
            Err(RetryAfter(Duration::from_millis(250)))
        );
        let refilled = start + Duration::from_millis(500);
        assert_eq!(limiter.check(&caller, RpcClass::Write, refilled), Ok(()));
        assert!(limiter.check(&caller, RpcClass::Write, refilled).is_err());
        // A long pause refills to the burst, not beyond.
        let much_later = start + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(limiter.check(&caller, RpcClass::Write, much_later), Ok(()));
        }
        assert!(limiter.check(&caller, RpcClass::Write, much_later).is_err());
    }

    #[test]
    fn classes_and_accounts_have_their_own_buckets() {
        let limiter = RateLimiter::new(limits("read=1:1,write=1:1"), RateLimits::unlimited());
        let now = Instant::now();
        let caller = principal("1", "a");
        assert_eq!(limiter.check(&caller, RpcClass::Read, now), Ok(()));
        assert!(limiter.check(&caller, RpcClass::Read, now).is_err());
        assert_eq!(limiter.check(&caller, RpcClass::Write, now), Ok(()));
        // Unlimited class.
        for _ in 0..100 {
            assert_eq!(limiter.check(&caller, RpcClass::Verify, now), Ok(()));
        }
        // Another principal of the same account shares the account's bucket.
        assert!(
            limiter
                .check(&principal("1", "b"), RpcClass::Read, now)
                .is_err()
        );
        assert_eq!(
            limiter.check(&principal("2", "a"), RpcClass::Read, now),
            Ok(())
        );
    }

    #[test]
    fn principals_are_limited_on_their_own_within_their_account() {
        let limiter = RateLimiter::new(limits("read=10:4"), limits("read=10:2"));
        let now = Instant::now();
        let a = principal("1", "a");
        let b = principal("1", "b");
        assert_eq!(limiter.check(&a, RpcClass::Read, now), Ok(()));
        assert_eq!(limiter.check(&a, RpcClass::Read, now), Ok(()));
        // a's own bucket is empty; the account still has 2.
        assert_eq!(
            limiter.check(&a, RpcClass::Read, now),
            Err(RetryAfter(Duration::from_millis(100)))
        );
        assert_eq!(limiter.check(&b, RpcClass::Read, now), Ok(()));
        assert_eq!(limiter.check(&b, RpcClass::Read, now), Ok(()));
        // Now the account is empty too.
        assert!(
            limiter
                .check(&principal("1", "c"), RpcClass::Read, now)
                .is_err()
        );
        // The same name under another proof is another principal.
        let certificate = Principal {
            proof: Proof::ClientCertificate,
            ..principal("2", "a")
        };
        assert_eq!(limiter.check(&certificate, RpcClass::Read, now), Ok(()));
    }

    #[test]
    fn a_refusal_takes_nothing_from_the_other_bucket() {
        let limiter = RateLimiter::new(limits("read=1:1"), limits("read=1:3"));
        let now = Instant::now();
        let a = principal("1", "a");
        assert_eq!(limiter.check(&a, RpcClass::Read, now), Ok(()));
        // The account's bucket is empty: these are refused and must not drain a's bucket.
        for _ in 0..5 {
            assert!(limiter.check(&a, RpcClass::Read, now).is_err());
        }
        let next_second = now + Duration::from_secs(1);
        assert_eq!(limiter.check(&a, RpcClass::Read, next_second), Ok(()));

        // And the other way round: the principal is empty, the account is not drained.
        let limiter = RateLimiter::new(limits("read=1:2"), limits("read=1:1"));
        assert_eq!(limiter.check(&a, RpcClass::Read, now), Ok(()));
        for _ in 0..5 {
            assert!(limiter.check(&a, RpcClass::Read, now).is_err());
        }
        assert_eq!(
            limiter.check(&principal("1", "b"), RpcClass::Read, now),
            Ok(())
        );
        assert!(
            limiter
                .check(&principal("1", "c"), RpcClass::Read, now)
                .is_err()
        );
    }

    #[test]
    fn the_retry_after_is_the_longer_wait_and_never_zero() {
        let limiter = RateLimiter::new(limits("read=1:1"), limits("read=0.25:1"));
        let now = Instant::now();
        let a = principal("1", "a");
        assert_eq!(limiter.check(&a, RpcClass::Read, now), Ok(()));
        assert_eq!(
            limiter.check(&a, RpcClass::Read, now),
            Err(RetryAfter(Duration::from_secs(4)))
        );
        let fast = RateLimiter::new(limits("read=1000000000:1"), RateLimits::unlimited());
        assert_eq!(fast.check(&a, RpcClass::Read, now), Ok(()));
        assert_eq!(
            fast.check(&a, RpcClass::Read, now),
            Err(RetryAfter(MIN_RETRY_AFTER))
        );
    }

    #[test]
    fn limits_built_by_hand_are_kept_within_bounds() {
        let mut hand_made = RateLimits::unlimited();
        hand_made.set(
            RpcClass::Read,
            Some(RateLimit {
                per_second: 0.0,
                burst: 0,
            }),
        );
        let limiter = RateLimiter::new(hand_made, RateLimits::unlimited());
        let now = Instant::now();
        let a = principal("1", "a");
        assert_eq!(limiter.check(&a, RpcClass::Read, now), Ok(()));
        assert_eq!(
            limiter.check(&a, RpcClass::Read, now),
            Err(RetryAfter(Duration::from_secs(1000)))
        );
    }

    #[test]
    fn memory_stays_bounded_under_churn_dropping_refilled_buckets_first() {
        let limiter = RateLimiter::new(limits("read=1:2"), limits("read=1:2"));
        let start = Instant::now();
        // Hostile churn: every call from a new principal, all at the same instant, so no
        // bucket has refilled; the oldest-touched must go.
        for n in 0..100_000 {
            let caller = principal(&(n % 1000 + 1).to_string(), &n.to_string());
            let _ = limiter.check(&caller, RpcClass::Read, start + Duration::from_nanos(n));
        }
        assert!(
            limiter.bucket_count() <= SHARDS * SHARD_CAPACITY,
            "{}",
            limiter.bucket_count()
        );
        // Once everything has refilled, the next shedding forgets it all but what is in use.
        let refilled = start + Duration::from_secs(60);
        for n in 0..(SHARDS * SHARD_CAPACITY) as u64 {
            let caller = principal("7", &format!("fresh-{n}"));
            let _ = limiter.check(&caller, RpcClass::Read, refilled);
        }
        assert!(limiter.bucket_count() <= SHARDS * SHARD_CAPACITY);
    }

    #[test]
    fn shedding_prefers_refilled_buckets() {
        let mut shard = Shard::default();
        let limit = RateLimit {
            per_second: 1.0,
            burst: 1,
        };
        let start = Instant::now();
        let names: Vec<String> = (0..=SHARD_CAPACITY).map(|n| n.to_string()).collect();
        for (n, name) in names.iter().enumerate() {
            let key = BucketRef::Principal {
                class: 0,
                account: "1",
                proof: Proof::BearerToken,
                name,
            };
            // The first half drained long ago (full again by `later`), the rest just now.
            let at = if n % 2 == 0 {
                start
            } else {
                start + Duration::from_secs(100)
            };
            shard.bucket(n as u64, key, limit, at).take(limit);
        }
        assert_eq!(shard.len, SHARD_CAPACITY + 1);
        shard.shed(start + Duration::from_millis(100_500));
        // Every even bucket was full: they went, and the odd ones (not full yet) stayed.
        assert_eq!(shard.len, SHARD_CAPACITY / 2);
        assert!(
            shard
                .buckets
                .values()
                .flatten()
                .all(|bucket| bucket.updated > start)
        );
    }

    #[test]
    fn shedding_drops_the_oldest_touched_when_nothing_has_refilled() {
        let mut shard = Shard::default();
        let limit = RateLimit {
            per_second: MIN_PER_SECOND,
            burst: 1,
        };
        let start = Instant::now();
        let names: Vec<String> = (0..=SHARD_CAPACITY).map(|n| n.to_string()).collect();
        for (n, name) in names.iter().enumerate() {
            let key = BucketRef::Account {
                class: 0,
                account: name,
            };
            shard
                .bucket(
                    n as u64,
                    key,
                    limit,
                    start + Duration::from_millis(n as u64),
                )
                .take(limit);
        }
        shard.shed(start + Duration::from_secs(10));
        assert_eq!(shard.len, SHARD_AFTER_SHEDDING);
        let oldest_kept = shard
            .buckets
            .values()
            .flatten()
            .map(|bucket| bucket.updated)
            .min()
            .unwrap();
        let dropped = (SHARD_CAPACITY + 1 - SHARD_AFTER_SHEDDING) as u64;
        assert_eq!(oldest_kept, start + Duration::from_millis(dropped));
    }

    #[test]
    fn many_threads_share_one_budget_exactly() {
        let limiter = RateLimiter::new(limits("read=0.001:1000"), limits("read=0.001:1000"));
        let now = Instant::now();
        let allowed = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let limiter = &limiter;
                let allowed = &allowed;
                scope.spawn(move || {
                    let caller = principal("1", if thread % 2 == 0 { "a" } else { "b" });
                    for _ in 0..600 {
                        if limiter.check(&caller, RpcClass::Read, now).is_ok() {
                            allowed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        // The account's 1000 tokens, each principal's 1000: the account runs out first.
        assert_eq!(allowed.into_inner(), 1000);
    }
}
