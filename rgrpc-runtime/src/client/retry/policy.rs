//! gRFC A6's per-method policies as the service config gives them (`retryPolicy`,
//! `hedgingPolicy`) and the channel's `retryThrottling`, parsed and validated with
//! errors that name the field; the backoff and the server's pushback as pure
//! functions. No I/O, no clock: the caller passes the random draw and the trailers.

use std::time::Duration;

use serde_json::{Map, Value};

use super::super::service_config::{duration_at, object_at, shown};
use crate::status::Code;

/// gRFC A6 "Limits on Retries and Hedges": `maxAttempts` above this is treated as this,
/// because the service config may come from DNS.
pub(crate) const MAX_ATTEMPTS_CAP: u32 = 5;

/// `methodConfig[].retryPolicy`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RetryPolicy {
    /// Attempts in all, the first included: 2..=5.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub backoff_multiplier: f64,
    pub retryable: Codes,
}

/// `methodConfig[].hedgingPolicy`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HedgingPolicy {
    /// Attempts in all, the first included: 2..=5.
    pub max_attempts: u32,
    /// Between one attempt and the next (default 0: all at once).
    pub hedging_delay: Duration,
    /// Statuses after which the other attempts go on (and the next is sent at once).
    pub non_fatal: Codes,
}

/// The one policy a method may have (A6: "Only one of retryPolicy or hedgingPolicy may
/// be set").
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Policy {
    Retry(RetryPolicy),
    Hedging(HedgingPolicy),
}

#[cfg(test)]
impl Policy {
    /// Attempts in all.
    pub(crate) fn max_attempts(&self) -> u32 {
        match self {
            Policy::Retry(p) => p.max_attempts,
            Policy::Hedging(p) => p.max_attempts,
        }
    }

    /// Whether a failed attempt's status lets the call go on: retryable (retry) or
    /// non-fatal (hedging).
    pub(crate) fn continues_after(&self, code: Code) -> bool {
        match self {
            Policy::Retry(p) => p.retryable.contains(code),
            Policy::Hedging(p) => p.non_fatal.contains(code),
        }
    }
}

/// A set of status codes, one bit per code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Codes(u32);

impl Codes {
    /// Whether `code` is in the set.
    pub(crate) fn contains(self, code: Code) -> bool {
        self.0 & (1 << code as u32) != 0
    }

    fn insert(&mut self, code: Code) {
        self.0 |= 1 << code as u32;
    }

    fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// `retryThrottling` (A6 "Throttling Retry Attempts and Hedged RPCs").
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ThrottlingConfig {
    /// (0, 1000].
    pub max_tokens: u32,
    /// In thousandths (A6: up to 3 decimal places), > 0.
    pub token_ratio_milli: u32,
}

/// Parses `retryPolicy` and `hedgingPolicy` of one method config entry (`at` names the
/// entry, e.g. `methodConfig[0]`); both at once is an error.
pub(crate) fn parse_policy(entry: &Map<String, Value>, at: &str) -> Result<Option<Policy>, String> {
    match (entry.get("retryPolicy"), entry.get("hedgingPolicy")) {
        (Some(_), Some(_)) => Err(format!(
            "{at}: retryPolicy and hedgingPolicy are both set; a method may have only one"
        )),
        (Some(v), None) => {
            retry_policy(v, &format!("{at}.retryPolicy")).map(|p| Some(Policy::Retry(p)))
        }
        (None, Some(v)) => {
            hedging_policy(v, &format!("{at}.hedgingPolicy")).map(|p| Some(Policy::Hedging(p)))
        }
        (None, None) => Ok(None),
    }
}

fn retry_policy(value: &Value, at: &str) -> Result<RetryPolicy, String> {
    let policy = object_at(value, at)?;
    let max_attempts = max_attempts(policy, at)?;
    let initial_backoff = positive_duration(policy, "initialBackoff", at)?;
    let max_backoff = positive_duration(policy, "maxBackoff", at)?;
    let multiplier_at = format!("{at}.backoffMultiplier");
    let backoff_multiplier = match required(policy, "backoffMultiplier", at)? {
        Value::Number(n) => n.as_f64().filter(|m| *m > 0.0 && m.is_finite()),
        _ => None,
    }
    .ok_or_else(|| {
        format!(
            "{multiplier_at}: expected a number greater than zero, got {}",
            shown(&policy["backoffMultiplier"])
        )
    })?;
    let retryable = codes(
        required(policy, "retryableStatusCodes", at)?,
        &format!("{at}.retryableStatusCodes"),
    )?;
    Ok(RetryPolicy {
        max_attempts,
        initial_backoff,
        max_backoff,
        backoff_multiplier,
        retryable,
    })
}

fn hedging_policy(value: &Value, at: &str) -> Result<HedgingPolicy, String> {
    let policy = object_at(value, at)?;
    let max_attempts = max_attempts(policy, at)?;
    let hedging_delay = match policy.get("hedgingDelay") {
        None => Duration::ZERO,
        Some(v) => duration_at(v, &format!("{at}.hedgingDelay"))?,
    };
    // A6's config comment calls it required, but grpc-go and grpc-java accept a policy
    // without it (every status is then fatal): so do we.
    let non_fatal = match policy.get("nonFatalStatusCodes") {
        None => Codes::default(),
        Some(v) => codes(v, &format!("{at}.nonFatalStatusCodes"))?,
    };
    Ok(HedgingPolicy {
        max_attempts,
        hedging_delay,
        non_fatal,
    })
}

/// `retryThrottling`.
pub(crate) fn parse_throttling(value: &Value) -> Result<ThrottlingConfig, String> {
    let at = "retryThrottling";
    let config = object_at(value, at)?;
    let max_tokens = match required(config, "maxTokens", at)? {
        Value::Number(n) => n
            .as_f64()
            .filter(|t| *t > 0.0 && *t <= 1000.0 && t.fract() == 0.0),
        _ => None,
    }
    .ok_or_else(|| {
        format!(
            "{at}.maxTokens: expected a whole number from 1 to 1000, got {}",
            shown(&config["maxTokens"])
        )
    })? as u32;
    let ratio = match required(config, "tokenRatio", at)? {
        Value::Number(n) => n.as_f64().filter(|r| *r > 0.0 && r.is_finite()),
        _ => None,
    }
    .ok_or_else(|| {
        format!(
            "{at}.tokenRatio: expected a number greater than zero, got {}",
            shown(&config["tokenRatio"])
        )
    })?;
    // A6: "Up to 3 decimal places are supported"; more are dropped, as grpc-go does.
    let token_ratio_milli = (ratio * 1000.0) as u32;
    if token_ratio_milli == 0 {
        return Err(format!(
            "{at}.tokenRatio: {ratio} is below the 0.001 the throttle can count"
        ));
    }
    Ok(ThrottlingConfig {
        max_tokens,
        token_ratio_milli,
    })
}

fn required<'a>(object: &'a Map<String, Value>, key: &str, at: &str) -> Result<&'a Value, String> {
    object
        .get(key)
        .ok_or_else(|| format!("{at}.{key}: required"))
}

/// `maxAttempts`: at least 2; above [`MAX_ATTEMPTS_CAP`] counts as the cap.
fn max_attempts(policy: &Map<String, Value>, at: &str) -> Result<u32, String> {
    let value = required(policy, "maxAttempts", at)?;
    let attempts = match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as u64)
        }),
        _ => None,
    };
    match attempts {
        Some(n) if n >= 2 => Ok(n.min(MAX_ATTEMPTS_CAP as u64) as u32),
        _ => Err(format!(
            "{at}.maxAttempts: expected a whole number of at least 2, got {}",
            shown(value)
        )),
    }
}

fn positive_duration(policy: &Map<String, Value>, key: &str, at: &str) -> Result<Duration, String> {
    let field = format!("{at}.{key}");
    let duration = duration_at(required(policy, key, at)?, &field)?;
    if duration.is_zero() {
        return Err(format!("{field}: must be greater than zero"));
    }
    Ok(duration)
}

/// A list of status codes by canonical name (`"UNAVAILABLE"`, as A6 writes them) or,
/// as protobuf JSON also allows for an enum, by number.
fn codes(value: &Value, at: &str) -> Result<Codes, String> {
    let list = value.as_array().ok_or_else(|| {
        format!(
            "{at}: expected a list of status codes, got {}",
            shown(value)
        )
    })?;
    let mut set = Codes::default();
    for (i, item) in list.iter().enumerate() {
        let code = match item {
            Value::String(name) => (0..=16)
                .map(Code::from_i32)
                .find(|c| c.as_str() == name.as_str()),
            Value::Number(n) => n
                .as_u64()
                .filter(|n| *n <= 16)
                .map(|n| Code::from_i32(n as i32)),
            _ => None,
        };
        match code {
            Some(Code::Ok) | None => {
                return Err(format!(
                    "{at}[{i}]: expected a status code name like \"UNAVAILABLE\" (not OK), got {}",
                    shown(item)
                ));
            }
            Some(code) => set.insert(code),
        }
    }
    if set.is_empty() {
        return Err(format!("{at}: must not be empty"));
    }
    Ok(set)
}

impl RetryPolicy {
    /// The wait before retry `n` (1 for the first retry, counted from the last pushback,
    /// which starts the backoff over). A6: `random(0, min(initialBackoff *
    /// backoffMultiplier^(n-1), maxBackoff))`; `unit` is a uniform draw from [0, 1).
    pub(crate) fn backoff(&self, n: u32, unit: f64) -> Duration {
        let exponent = n.saturating_sub(1).min(64) as i32;
        let ceiling = self.initial_backoff.as_secs_f64() * self.backoff_multiplier.powi(exponent);
        let ceiling = ceiling.min(self.max_backoff.as_secs_f64());
        Duration::from_secs_f64((ceiling * unit.clamp(0.0, 1.0)).max(0.0))
    }
}

/// What the server's `grpc-retry-pushback-ms` trailer says (A6 "Pushback").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pushback {
    /// No pushback trailer: the policy decides.
    None,
    /// Wait this long before the next attempt (then the backoff starts over).
    After(Duration),
    /// A negative or malformed value: no more attempts.
    Stop,
}

/// Parses the pushback value: "an ASCII encoded signed 32-bit integer with no
/// unnecessary leading zeros"; negative or unparseable means do not retry.
pub(crate) fn pushback(value: Option<&str>) -> Pushback {
    let Some(value) = value else {
        return Pushback::None;
    };
    let canonical = !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_digit())
        && (value == "0" || !value.starts_with('0'));
    match value.parse::<i32>() {
        Ok(ms) if canonical && ms >= 0 => Pushback::After(Duration::from_millis(ms as u64)),
        _ => Pushback::Stop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(json: &str) -> Result<Option<Policy>, String> {
        let value: Value = serde_json::from_str(json).unwrap();
        parse_policy(value.as_object().unwrap(), "methodConfig[0]")
    }

    #[test]
    fn a6s_retry_example_parses() {
        let Some(Policy::Retry(policy)) = entry(
            r#"{"retryPolicy": {"maxAttempts": 4, "initialBackoff": ".1s", "maxBackoff": "1s",
                "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE", 8]}}"#,
        )
        .unwrap() else {
            panic!("a retry policy")
        };
        assert_eq!(policy.max_attempts, 4);
        assert_eq!(policy.initial_backoff, Duration::from_millis(100));
        assert_eq!(policy.max_backoff, Duration::from_secs(1));
        assert!(policy.retryable.contains(Code::Unavailable));
        assert!(policy.retryable.contains(Code::ResourceExhausted));
        assert!(!policy.retryable.contains(Code::Internal));
    }

    #[test]
    fn max_attempts_is_capped_at_five_and_at_least_two() {
        let json = |n: &str| {
            format!(
                r#"{{"hedgingPolicy": {{"maxAttempts": {n}, "hedgingDelay": "0.5s",
                    "nonFatalStatusCodes": ["UNAVAILABLE"]}}}}"#
            )
        };
        let Some(Policy::Hedging(policy)) = entry(&json("9")).unwrap() else {
            panic!()
        };
        assert_eq!(policy.max_attempts, 5);
        assert_eq!(policy.hedging_delay, Duration::from_millis(500));
        for bad in ["1", "0", "2.5", "\"3\"", "-2"] {
            let err = entry(&json(bad)).unwrap_err();
            assert!(
                err.starts_with("methodConfig[0].hedgingPolicy.maxAttempts:"),
                "{err}"
            );
        }
    }

    #[test]
    fn every_error_names_its_field() {
        let cases = [
            (
                r#"{"retryPolicy": {"maxAttempts": 2, "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}"#,
                "methodConfig[0].retryPolicy.initialBackoff: required",
            ),
            (
                r#"{"retryPolicy": {"maxAttempts": 2, "initialBackoff": "0s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}"#,
                "methodConfig[0].retryPolicy.initialBackoff: must be greater than zero",
            ),
            (
                r#"{"retryPolicy": {"maxAttempts": 2, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 0, "retryableStatusCodes": ["UNAVAILABLE"]}}"#,
                "methodConfig[0].retryPolicy.backoffMultiplier: expected a number greater than zero, got 0",
            ),
            (
                r#"{"retryPolicy": {"maxAttempts": 2, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": []}}"#,
                "methodConfig[0].retryPolicy.retryableStatusCodes: must not be empty",
            ),
            (
                r#"{"retryPolicy": {"maxAttempts": 2, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["unavailable"]}}"#,
                "methodConfig[0].retryPolicy.retryableStatusCodes[0]: expected a status code name like \"UNAVAILABLE\" (not OK), got \"unavailable\"",
            ),
            (
                r#"{"retryPolicy": {}, "hedgingPolicy": {}}"#,
                "methodConfig[0]: retryPolicy and hedgingPolicy are both set; a method may have only one",
            ),
            (
                r#"{"hedgingPolicy": {"maxAttempts": 3, "hedgingDelay": "soon"}}"#,
                "methodConfig[0].hedgingPolicy.hedgingDelay: expected a duration like \"1.5s\", got \"soon\"",
            ),
        ];
        for (json, want) in cases {
            assert_eq!(entry(json).unwrap_err(), want, "{json}");
        }
    }

    #[test]
    fn throttling_config_is_validated() {
        let parse = |json: &str| parse_throttling(&serde_json::from_str(json).unwrap());
        assert_eq!(
            parse(r#"{"maxTokens": 10, "tokenRatio": 0.1}"#),
            Ok(ThrottlingConfig {
                max_tokens: 10,
                token_ratio_milli: 100
            })
        );
        // Beyond three decimals is dropped.
        assert_eq!(
            parse(r#"{"maxTokens": 10, "tokenRatio": 0.1239}"#)
                .unwrap()
                .token_ratio_milli,
            123
        );
        for (json, field) in [
            (
                r#"{"maxTokens": 0, "tokenRatio": 0.1}"#,
                "retryThrottling.maxTokens",
            ),
            (
                r#"{"maxTokens": 1001, "tokenRatio": 0.1}"#,
                "retryThrottling.maxTokens",
            ),
            (
                r#"{"maxTokens": 10, "tokenRatio": 0}"#,
                "retryThrottling.tokenRatio",
            ),
            (
                r#"{"maxTokens": 10}"#,
                "retryThrottling.tokenRatio: required",
            ),
        ] {
            let err = parse(json).unwrap_err();
            assert!(err.starts_with(field), "{json}: {err}");
        }
    }

    #[test]
    fn backoff_is_full_jitter_under_a_growing_capped_ceiling() {
        let policy = RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            backoff_multiplier: 2.0,
            retryable: Codes::default(),
        };
        // The ceiling: 100 ms, 200 ms, then capped at 300 ms.
        let near_ceiling = policy.backoff(1, 0.999_999);
        assert!(
            near_ceiling < Duration::from_millis(100)
                && near_ceiling > Duration::from_micros(99_990),
            "{near_ceiling:?}"
        );
        assert_eq!(policy.backoff(2, 0.5), Duration::from_millis(100));
        assert_eq!(policy.backoff(3, 0.5), Duration::from_millis(150));
        assert_eq!(policy.backoff(4, 0.5), Duration::from_millis(150));
        assert_eq!(policy.backoff(1, 0.0), Duration::ZERO);
        // A huge n does not overflow.
        assert_eq!(policy.backoff(u32::MAX, 0.5), Duration::from_millis(150));
    }

    #[test]
    fn pushback_values() {
        assert_eq!(pushback(None), Pushback::None);
        assert_eq!(pushback(Some("0")), Pushback::After(Duration::ZERO));
        assert_eq!(
            pushback(Some("250")),
            Pushback::After(Duration::from_millis(250))
        );
        for stop in ["-1", "", "abc", "1.5", "007", "+5", "99999999999", " 5"] {
            assert_eq!(pushback(Some(stop)), Pushback::Stop, "{stop:?}");
        }
    }
}
