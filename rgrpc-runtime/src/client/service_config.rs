//! The service config (gRFC A2, grpc's `doc/service_config.md`): JSON given on the
//! channel builder, parsed once into what the channel and its calls use: the
//! load-balancing policy and per-method defaults (timeout, wait-for-ready, message
//! size limits). Method configs are keyed by the call's full path (`/pkg.Svc/Method`)
//! and by service at parse time, so a call finds its config with at most two hash
//! lookups on borrowed slices of its path and no allocation. Pure: no I/O, no clock.
//!
//! What is read (field names in protobuf JSON's lowerCamelCase; unknown fields are
//! ignored, as grpc does, so configs written for newer clients still load):
//!
//! ```text
//! {
//!   "loadBalancingConfig": [{"round_robin": {}}, {"pick_first": {}}],  // first known wins
//!   "loadBalancingPolicy": "ROUND_ROBIN",       // deprecated; used only without the above
//!   "methodConfig": [{
//!     "name": [{"service": "pkg.Svc", "method": "M"}, {"service": "pkg.Other"}, {}],
//!     "timeout": "1.5s",                         // protobuf JSON Duration
//!     "waitForReady": true,
//!     "maxRequestMessageBytes": 1024,            // UInt32Value: a number or "1024"
//!     "maxResponseMessageBytes": "4096",
//!     "retryPolicy": {...} or "hedgingPolicy": {...} // gRFC A6: client/retry/policy.rs
//!   }],
//!   "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1}
//! }
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::channel::LbPolicy;
use super::retry;
use super::retry::policy::{Policy, ThrottlingConfig};
use crate::call::CallOptions;

/// A parsed service config.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ServiceConfig {
    /// From `loadBalancingConfig` (or the deprecated `loadBalancingPolicy`); `None`
    /// leaves the channel's own policy.
    pub lb_policy: Option<LbPolicy>,
    /// One per `methodConfig` entry, in order; the maps below index into it.
    methods: Vec<MethodConfig>,
    /// `/service/method` -> the entry that names that method.
    by_method: HashMap<Box<str>, usize>,
    /// `service` -> the entry that names the service without a method.
    by_service: HashMap<Box<str>, usize>,
    /// The entry named `{}` (or `{"service": ""}`): every other method.
    default: Option<usize>,
    /// `retryThrottling` (gRFC A6): the channel's throttle of retries and hedges.
    pub retry_throttling: Option<ThrottlingConfig>,
}

/// One `methodConfig` entry: defaults for the calls it names.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct MethodConfig {
    pub timeout: Option<Duration>,
    pub wait_for_ready: Option<bool>,
    pub max_request_message_bytes: Option<usize>,
    pub max_response_message_bytes: Option<usize>,
    /// `retryPolicy` or `hedgingPolicy` (gRFC A6); shared by the calls it governs.
    pub policy: Option<Arc<Policy>>,
}

/// What one call runs with, after its own options and its method config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CallSettings {
    pub timeout: Option<Duration>,
    pub wait_for_ready: bool,
    pub max_send: usize,
    pub max_recv: usize,
}

impl ServiceConfig {
    /// Parses a service config; the error names the field, e.g.
    /// `methodConfig[0].timeout: expected a duration like "1.5s", got "soon"`.
    pub fn parse(json: &str) -> Result<ServiceConfig, String> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| format!("not valid JSON: {e}"))?;
        let Value::Object(top) = value else {
            return Err(format!("expected a JSON object, got {}", shown(&value)));
        };
        // A2: loadBalancingConfig takes precedence; the deprecated field only counts
        // without it.
        let lb_policy = match top.get("loadBalancingConfig") {
            Some(list) => Some(lb_config(list)?),
            None => match top.get("loadBalancingPolicy") {
                Some(name) => lb_policy_name(name)?,
                None => None,
            },
        };
        let mut config = ServiceConfig {
            lb_policy,
            ..ServiceConfig::default()
        };
        if let Some(list) = top.get("methodConfig") {
            let list = list_at(list, "methodConfig")?;
            for (i, entry) in list.iter().enumerate() {
                config.add_method_config(entry, i)?;
            }
        }
        if let Some(throttling) = top.get("retryThrottling") {
            config.retry_throttling = Some(retry::policy::parse_throttling(throttling)?);
        }
        Ok(config)
    }

    /// The method config for a call to `path` (`/pkg.Svc/Method`): the entry naming
    /// the method, else the one naming its service, else the default (A2).
    pub fn method(&self, path: &str) -> Option<&MethodConfig> {
        let index = self
            .by_method
            .get(path)
            .or_else(|| {
                let (service, _method) = path.strip_prefix('/')?.split_once('/')?;
                self.by_service.get(service)
            })
            .or(self.default.as_ref())?;
        self.methods.get(*index)
    }

    fn add_method_config(&mut self, entry: &Value, i: usize) -> Result<(), String> {
        let at = format!("methodConfig[{i}]");
        let fields = object_at(entry, &at)?;
        let field = |name: &str| fields.get(name).map(|v| (v, format!("{at}.{name}")));
        let mut method = MethodConfig::default();
        if let Some((v, at)) = field("timeout") {
            method.timeout = Some(duration_at(v, &at)?);
        }
        if let Some((v, at)) = field("waitForReady") {
            let Value::Bool(wait) = v else {
                return Err(format!("{at}: expected true or false, got {}", shown(v)));
            };
            method.wait_for_ready = Some(*wait);
        }
        if let Some((v, at)) = field("maxRequestMessageBytes") {
            method.max_request_message_bytes = Some(u32_at(v, &at)?);
        }
        if let Some((v, at)) = field("maxResponseMessageBytes") {
            method.max_response_message_bytes = Some(u32_at(v, &at)?);
        }
        method.policy = retry::policy::parse_policy(fields, &at)?.map(Arc::new);
        let index = self.methods.len();
        self.methods.push(method);
        // An entry without names applies to no call (grpc-go and grpc-core accept it).
        let Some((names, at)) = field("name") else {
            return Ok(());
        };
        for (j, name) in list_at(names, &at)?.iter().enumerate() {
            let at = format!("{at}[{j}]");
            let name_fields = object_at(name, &at)?;
            let service = name_part(name_fields, "service", &at)?;
            let method_name = name_part(name_fields, "method", &at)?;
            let (slot, previous) = match (service.is_empty(), method_name.is_empty()) {
                (true, false) => {
                    return Err(format!(
                        "{at}: a method ({method_name:?}) needs its service"
                    ));
                }
                (true, true) => {
                    let previous = self.default.replace(index);
                    ("the default name {}".to_owned(), previous)
                }
                (false, true) => {
                    let previous = self.by_service.insert(service.into(), index);
                    (format!("service {service:?}"), previous)
                }
                (false, false) => {
                    let path = format!("/{service}/{method_name}");
                    let previous = self.by_method.insert(path.as_str().into(), index);
                    (format!("method {path:?}"), previous)
                }
            };
            // A2: "a given method name may appear in at most one method config".
            if let Some(previous) = previous {
                return Err(format!(
                    "{at}: {slot} is already named by methodConfig[{previous}]"
                ));
            }
        }
        Ok(())
    }
}

impl MethodConfig {
    /// Combines a call's own options with its method config (`None`: no service
    /// config, or none for this method) and the channel's limits, as grpc does:
    /// - timeout: the smaller of the call's and the config's when both are set;
    /// - wait-for-ready: the call's if it set one, else the config's, else fail-fast;
    /// - message sizes: the call's if it set one, else the smaller of the config's and
    ///   the channel's.
    pub fn apply(
        method: Option<&MethodConfig>,
        options: &CallOptions,
        channel_max_send: usize,
        channel_max_recv: usize,
    ) -> CallSettings {
        let Some(method) = method else {
            return CallSettings {
                timeout: options.timeout,
                wait_for_ready: options.wait_for_ready.unwrap_or(false),
                max_send: options.max_send_message_size.unwrap_or(channel_max_send),
                max_recv: options.max_recv_message_size.unwrap_or(channel_max_recv),
            };
        };
        let timeout = match (options.timeout, method.timeout) {
            (Some(call), Some(config)) => Some(call.min(config)),
            (call, config) => call.or(config),
        };
        let limit = |call: Option<usize>, config: Option<usize>, channel: usize| {
            call.unwrap_or_else(|| config.map_or(channel, |config| config.min(channel)))
        };
        CallSettings {
            timeout,
            wait_for_ready: options
                .wait_for_ready
                .or(method.wait_for_ready)
                .unwrap_or(false),
            max_send: limit(
                options.max_send_message_size,
                method.max_request_message_bytes,
                channel_max_send,
            ),
            max_recv: limit(
                options.max_recv_message_size,
                method.max_response_message_bytes,
                channel_max_recv,
            ),
        }
    }
}

/// `service` or `method` of a name; absent is empty.
fn name_part<'a>(name: &'a Map<String, Value>, key: &str, at: &str) -> Result<&'a str, String> {
    match name.get(key) {
        None => Ok(""),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!(
            "{at}.{key}: expected a string, got {}",
            shown(other)
        )),
    }
}

/// The names of the policies this channel implements, for errors.
const SUPPORTED: &str = "pick_first, round_robin";

/// `loadBalancingConfig`: a list of one-key objects; the first policy this channel
/// implements wins and unknown ones are skipped (A2, A24); a list with none is an error.
fn lb_config(list: &Value) -> Result<LbPolicy, String> {
    let at = "loadBalancingConfig";
    let list = list_at(list, at)?;
    let mut unknown = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let at = format!("{at}[{i}]");
        let policy = object_at(entry, &at)?;
        let mut keys = policy.iter();
        let (Some((name, config)), None) = (keys.next(), keys.next()) else {
            return Err(format!(
                "{at}: expected an object with one policy name, like {{\"round_robin\": {{}}}}, got {}",
                shown(entry)
            ));
        };
        let policy = match name.as_str() {
            "pick_first" => LbPolicy::PickFirst,
            "round_robin" => LbPolicy::RoundRobin,
            _ => {
                unknown.push(name.as_str());
                continue;
            }
        };
        // round_robin takes no settings; pick_first's `shuffleAddressList` (gRFC A62)
        // is accepted and not applied.
        object_at(config, &format!("{at}.{name}"))?;
        return Ok(policy);
    }
    Err(format!(
        "{at}: no supported policy (supported: {SUPPORTED}) among {unknown:?}"
    ))
}

/// The deprecated `loadBalancingPolicy`: the proto enum's JSON name (`ROUND_ROBIN`),
/// or the policy's name as grpc-go takes it (`round_robin`).
fn lb_policy_name(name: &Value) -> Result<Option<LbPolicy>, String> {
    let at = "loadBalancingPolicy";
    let Value::String(name) = name else {
        return Err(format!("{at}: expected a string, got {}", shown(name)));
    };
    if name.eq_ignore_ascii_case("round_robin") {
        Ok(Some(LbPolicy::RoundRobin))
    } else if name.eq_ignore_ascii_case("pick_first") {
        Ok(Some(LbPolicy::PickFirst))
    } else if name == "UNSPECIFIED" || name == "LOAD_BALANCING_POLICY_UNSPECIFIED" {
        Ok(None)
    } else {
        Err(format!(
            "{at}: unknown policy {name:?} (supported: {SUPPORTED})"
        ))
    }
}

pub(super) fn object_at<'a>(value: &'a Value, at: &str) -> Result<&'a Map<String, Value>, String> {
    value
        .as_object()
        .ok_or_else(|| format!("{at}: expected an object, got {}", shown(value)))
}

pub(super) fn list_at<'a>(value: &'a Value, at: &str) -> Result<&'a [Value], String> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| format!("{at}: expected a list, got {}", shown(value)))
}

/// A protobuf JSON `google.protobuf.Duration`: seconds with up to nine fractional
/// digits and an `s` ("1s", "0.5s", "1.000340012s", and ".5s" as gRFC A6 writes it); a
/// timeout cannot be negative.
pub(super) fn duration_at(value: &Value, at: &str) -> Result<Duration, String> {
    let err = || {
        format!(
            "{at}: expected a duration like \"1.5s\", got {}",
            shown(value)
        )
    };
    let Value::String(text) = value else {
        return Err(err());
    };
    parse_duration(text).ok_or_else(err)
}

/// The largest Duration protobuf allows: 10,000 years.
const MAX_DURATION_SECONDS: u64 = 315_576_000_000;

fn parse_duration(text: &str) -> Option<Duration> {
    let number = text.strip_suffix('s')?;
    let (secs, frac) = match number.split_once('.') {
        Some((secs, frac)) => (secs, Some(frac)),
        None => (number, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // ".1s" is not protobuf JSON, but gRFC A6 writes its examples so and grpc-go takes
    // it: a missing whole part is 0 when a fraction follows.
    let secs = if secs.is_empty() && frac.is_some_and(digits) {
        "0"
    } else {
        secs
    };
    if !digits(secs) {
        return None;
    }
    let secs: u64 = secs.parse().ok().filter(|s| *s <= MAX_DURATION_SECONDS)?;
    let nanos = match frac {
        None => 0,
        Some(frac) if digits(frac) && frac.len() <= 9 => {
            // "5" is 500_000_000 ns: pad to nine digits.
            let scale = 10u32.pow(9 - frac.len() as u32);
            frac.parse::<u32>().ok()? * scale
        }
        Some(_) => return None,
    };
    Some(Duration::new(secs, nanos))
}

/// A `google.protobuf.UInt32Value` in protobuf JSON: a number or a decimal string.
fn u32_at(value: &Value, at: &str) -> Result<usize, String> {
    let parsed = match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            // 1e3 is an integer too, in protobuf JSON.
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u32::MAX as f64)
                .map(|f| f as u64)
        }),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<u64>().ok()
        }
        _ => None,
    };
    match parsed.and_then(|n| u32::try_from(n).ok()) {
        // usize is at least 32 bits on every target std supports with tokio.
        Some(n) => Ok(n as usize),
        None => Err(format!(
            "{at}: expected a number of bytes (0 to 4294967295, a number or a string), got {}",
            shown(value)
        )),
    }
}

/// A value for an error message: its JSON, cut short.
pub(super) fn shown(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> ServiceConfig {
        ServiceConfig::parse(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    fn error(json: &str) -> String {
        match ServiceConfig::parse(json) {
            Ok(config) => panic!("{json} parsed: {config:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn an_empty_config_sets_nothing() {
        let config = parse("{}");
        assert_eq!(config, ServiceConfig::default());
        assert_eq!(config.method("/a.B/C"), None);
    }

    #[test]
    fn a_full_method_config() {
        let config = parse(
            r#"{"methodConfig": [{
                "name": [{"service": "pkg.Svc", "method": "M"}],
                "timeout": "1.5s",
                "waitForReady": true,
                "maxRequestMessageBytes": 1024,
                "maxResponseMessageBytes": "4096",
                "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.1s", "maxBackoff": "1s",
                    "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
                "someFutureField": 1
            }], "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
            "healthCheckConfig": {"serviceName": "x"}}"#,
        );
        let method = config.method("/pkg.Svc/M").expect("matched");
        assert_eq!(method.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(method.wait_for_ready, Some(true));
        assert_eq!(method.max_request_message_bytes, Some(1024));
        assert_eq!(method.max_response_message_bytes, Some(4096));
        let policy = method.policy.as_deref().expect("a retry policy");
        assert_eq!(policy.max_attempts(), 3);
        assert!(policy.continues_after(crate::Code::Unavailable));
        assert!(!policy.continues_after(crate::Code::Internal));
        assert_eq!(
            config
                .retry_throttling
                .map(|t| (t.max_tokens, t.token_ratio_milli)),
            Some((10, 100))
        );
        assert_eq!(config.lb_policy, None);
        assert_eq!(config.method("/pkg.Svc/Other"), None);
        assert_eq!(config.method("/pkg.Other/M"), None);
    }

    #[test]
    fn names_match_method_then_service_then_default() {
        let config = parse(
            r#"{"methodConfig": [
                {"name": [{"service": "pkg.Svc", "method": "M"}, {"service": "pkg.Svc", "method": "N"}], "timeout": "1s"},
                {"name": [{"service": "pkg.Svc"}], "timeout": "2s"},
                {"name": [{}], "timeout": "3s"},
                {"name": [{"service": "pkg.Other", "method": ""}], "timeout": "4s"}
            ]}"#,
        );
        let timeout = |path| config.method(path).and_then(|m| m.timeout);
        assert_eq!(timeout("/pkg.Svc/M"), Some(Duration::from_secs(1)));
        assert_eq!(timeout("/pkg.Svc/N"), Some(Duration::from_secs(1)));
        assert_eq!(timeout("/pkg.Svc/O"), Some(Duration::from_secs(2)));
        assert_eq!(timeout("/pkg.Other/M"), Some(Duration::from_secs(4)));
        assert_eq!(timeout("/else.Where/M"), Some(Duration::from_secs(3)));
        // A path that is not /service/method still gets the default.
        assert_eq!(timeout("odd"), Some(Duration::from_secs(3)));
        // The service-only name does not match a longer service name's prefix.
        assert_eq!(timeout("/pkg.Svc2/M"), Some(Duration::from_secs(3)));
    }

    #[test]
    fn the_default_may_be_spelled_with_an_empty_service() {
        let config =
            parse(r#"{"methodConfig": [{"name": [{"service": ""}], "waitForReady": false}]}"#);
        assert_eq!(
            config.method("/a.B/C").and_then(|m| m.wait_for_ready),
            Some(false)
        );
        // And an entry without names matches nothing.
        let config = parse(r#"{"methodConfig": [{"timeout": "1s"}]}"#);
        assert_eq!(config.method("/a.B/C"), None);
    }

    #[test]
    fn durations_in_protobuf_json_form() {
        let ok = [
            ("1s", Duration::from_secs(1)),
            ("0s", Duration::ZERO),
            ("0.5s", Duration::from_millis(500)),
            ("1.000340012s", Duration::new(1, 340_012)),
            ("0.000000001s", Duration::from_nanos(1)),
            ("315576000000s", Duration::from_secs(MAX_DURATION_SECONDS)),
            // gRFC A6's examples (and grpc-go) write durations this way.
            (".5s", Duration::from_millis(500)),
        ];
        for (text, want) in ok {
            assert_eq!(parse_duration(text), Some(want), "{text}");
        }
        let bad = [
            "",
            "s",
            "1",
            "1.5",
            "-1s",
            "+1s",
            ".s",
            "1.s",
            "1.0000000001s",
            "1ms",
            "1.5 s",
            " 1s",
            "1e3s",
            "315576000001s",
            "1,5s",
        ];
        for text in bad {
            assert_eq!(parse_duration(text), None, "{text:?}");
        }
    }

    #[test]
    fn sizes_are_numbers_or_strings() {
        for (json, want) in [
            ("0", 0),
            ("1024", 1024),
            ("\"1024\"", 1024),
            ("1e3", 1000),
            ("4294967295", u32::MAX as usize),
        ] {
            let config = parse(&format!(
                r#"{{"methodConfig": [{{"name": [{{}}], "maxRequestMessageBytes": {json}}}]}}"#
            ));
            let method = config.method("/a.B/C").expect("default");
            assert_eq!(method.max_request_message_bytes, Some(want), "{json}");
        }
    }

    #[test]
    fn load_balancing_config_takes_the_first_supported_policy() {
        let lb = |json: &str| parse(json).lb_policy;
        assert_eq!(
            lb(r#"{"loadBalancingConfig": [{"round_robin": {}}]}"#),
            Some(LbPolicy::RoundRobin)
        );
        assert_eq!(
            lb(r#"{"loadBalancingConfig": [{"pick_first": {"shuffleAddressList": true}}]}"#),
            Some(LbPolicy::PickFirst)
        );
        assert_eq!(
            lb(
                r#"{"loadBalancingConfig": [{"grpclb": {}}, {"round_robin": {}}, {"pick_first": {}}]}"#
            ),
            Some(LbPolicy::RoundRobin)
        );
        // An unknown policy's config is not looked at.
        assert_eq!(
            lb(r#"{"loadBalancingConfig": [{"weighted": 7}, {"pick_first": {}}]}"#),
            Some(LbPolicy::PickFirst)
        );
        // The deprecated field, only without loadBalancingConfig.
        assert_eq!(
            lb(r#"{"loadBalancingPolicy": "ROUND_ROBIN"}"#),
            Some(LbPolicy::RoundRobin)
        );
        assert_eq!(
            lb(r#"{"loadBalancingPolicy": "round_robin"}"#),
            Some(LbPolicy::RoundRobin)
        );
        assert_eq!(lb(r#"{"loadBalancingPolicy": "UNSPECIFIED"}"#), None);
        assert_eq!(
            lb(r#"{"loadBalancingPolicy": "nope", "loadBalancingConfig": [{"pick_first": {}}]}"#),
            Some(LbPolicy::PickFirst)
        );
    }

    /// Every error names its field.
    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("", "not valid JSON"),
            ("[]", "expected a JSON object, got []"),
            (
                r#"{"loadBalancingConfig": {"round_robin": {}}}"#,
                "loadBalancingConfig: expected a list",
            ),
            (
                r#"{"loadBalancingConfig": []}"#,
                "loadBalancingConfig: no supported policy (supported: pick_first, round_robin) among []",
            ),
            (
                r#"{"loadBalancingConfig": [{"grpclb": {}}, {"xds": {}}]}"#,
                r#"loadBalancingConfig: no supported policy (supported: pick_first, round_robin) among ["grpclb", "xds"]"#,
            ),
            (
                r#"{"loadBalancingConfig": ["round_robin"]}"#,
                r#"loadBalancingConfig[0]: expected an object, got "round_robin""#,
            ),
            (
                r#"{"loadBalancingConfig": [{"round_robin": {}, "pick_first": {}}]}"#,
                "loadBalancingConfig[0]: expected an object with one policy name",
            ),
            (
                r#"{"loadBalancingConfig": [{}]}"#,
                "loadBalancingConfig[0]: expected an object with one policy name",
            ),
            (
                r#"{"loadBalancingConfig": [{"round_robin": []}]}"#,
                "loadBalancingConfig[0].round_robin: expected an object, got []",
            ),
            (
                r#"{"loadBalancingPolicy": 1}"#,
                "loadBalancingPolicy: expected a string, got 1",
            ),
            (
                r#"{"loadBalancingPolicy": "least_request"}"#,
                r#"loadBalancingPolicy: unknown policy "least_request""#,
            ),
            (
                r#"{"methodConfig": {}}"#,
                "methodConfig: expected a list, got {}",
            ),
            (
                r#"{"methodConfig": [1]}"#,
                "methodConfig[0]: expected an object, got 1",
            ),
            (
                r#"{"methodConfig": [{}, {"name": {}}]}"#,
                "methodConfig[1].name: expected a list, got {}",
            ),
            (
                r#"{"methodConfig": [{"name": ["pkg.Svc"]}]}"#,
                r#"methodConfig[0].name[0]: expected an object, got "pkg.Svc""#,
            ),
            (
                r#"{"methodConfig": [{"name": [{"service": 1}]}]}"#,
                "methodConfig[0].name[0].service: expected a string, got 1",
            ),
            (
                r#"{"methodConfig": [{"name": [{"service": "s", "method": true}]}]}"#,
                "methodConfig[0].name[0].method: expected a string, got true",
            ),
            (
                r#"{"methodConfig": [{"name": [{"method": "M"}]}]}"#,
                r#"methodConfig[0].name[0]: a method ("M") needs its service"#,
            ),
            (
                r#"{"methodConfig": [{"name": [{"service": "s", "method": "M"}]}, {"name": [{}, {"service": "s", "method": "M"}]}]}"#,
                r#"methodConfig[1].name[1]: method "/s/M" is already named by methodConfig[0]"#,
            ),
            (
                r#"{"methodConfig": [{"name": [{"service": "s"}, {"service": "s"}]}]}"#,
                r#"methodConfig[0].name[1]: service "s" is already named by methodConfig[0]"#,
            ),
            (
                r#"{"methodConfig": [{"name": [{}]}, {"name": [{"service": ""}]}]}"#,
                "methodConfig[1].name[0]: the default name {} is already named by methodConfig[0]",
            ),
            (
                r#"{"methodConfig": [{"timeout": "soon"}]}"#,
                r#"methodConfig[0].timeout: expected a duration like "1.5s", got "soon""#,
            ),
            (
                r#"{"methodConfig": [{"timeout": 1.5}]}"#,
                r#"methodConfig[0].timeout: expected a duration like "1.5s", got 1.5"#,
            ),
            (
                r#"{"methodConfig": [{"waitForReady": "yes"}]}"#,
                r#"methodConfig[0].waitForReady: expected true or false, got "yes""#,
            ),
            (
                r#"{"methodConfig": [{"maxRequestMessageBytes": -1}]}"#,
                "methodConfig[0].maxRequestMessageBytes: expected a number of bytes",
            ),
            (
                r#"{"methodConfig": [{"maxRequestMessageBytes": 4294967296}]}"#,
                "methodConfig[0].maxRequestMessageBytes: expected a number of bytes",
            ),
            (
                r#"{"methodConfig": [{"maxResponseMessageBytes": "1k"}]}"#,
                r#"methodConfig[0].maxResponseMessageBytes: expected a number of bytes (0 to 4294967295, a number or a string), got "1k""#,
            ),
            (
                r#"{"methodConfig": [{"maxResponseMessageBytes": 1.5}]}"#,
                "methodConfig[0].maxResponseMessageBytes: expected a number of bytes",
            ),
            (
                r#"{"methodConfig": [{"retryPolicy": []}]}"#,
                "methodConfig[0].retryPolicy: expected an object, got []",
            ),
            (
                r#"{"methodConfig": [{"hedgingPolicy": 1}]}"#,
                "methodConfig[0].hedgingPolicy: expected an object, got 1",
            ),
            (
                r#"{"retryThrottling": true}"#,
                "retryThrottling: expected an object, got true",
            ),
        ];
        for (json, want) in cases {
            let got = error(json);
            assert!(got.starts_with(want), "{json}:\n got {got}\nwant {want}...");
        }
    }

    #[test]
    fn long_values_are_cut_short_in_errors() {
        let long = "x".repeat(100);
        let got = error(&format!(r#"{{"methodConfig": [{{"timeout": "{long}"}}]}}"#));
        assert!(got.ends_with("...") && got.len() < 120, "{got}");
    }

    fn method(json: &str) -> MethodConfig {
        let config = parse(&format!(
            r#"{{"methodConfig": [{{"name": [{{}}], {json}}}]}}"#
        ));
        config.method("/a.B/C").expect("default").clone()
    }

    #[test]
    fn without_a_method_config_the_call_and_channel_decide() {
        let options = CallOptions::new();
        let settings = MethodConfig::apply(None, &options, 100, 200);
        assert_eq!(
            settings,
            CallSettings {
                timeout: None,
                wait_for_ready: false,
                max_send: 100,
                max_recv: 200,
            }
        );
        let mut options = CallOptions::new()
            .with_timeout(Duration::from_secs(1))
            .with_wait_for_ready(true);
        options.max_send_message_size = Some(7);
        options.max_recv_message_size = Some(8);
        let settings = MethodConfig::apply(None, &options, 100, 200);
        assert_eq!(
            settings,
            CallSettings {
                timeout: Some(Duration::from_secs(1)),
                wait_for_ready: true,
                max_send: 7,
                max_recv: 8,
            }
        );
    }

    #[test]
    fn the_smaller_timeout_wins() {
        let config = method(r#""timeout": "2s""#);
        let with = |timeout: Option<u64>| {
            let mut options = CallOptions::new();
            options.timeout = timeout.map(Duration::from_secs);
            MethodConfig::apply(Some(&config), &options, 0, 0).timeout
        };
        assert_eq!(with(None), Some(Duration::from_secs(2)));
        assert_eq!(with(Some(1)), Some(Duration::from_secs(1)));
        assert_eq!(with(Some(3)), Some(Duration::from_secs(2)));
        let none = method(r#""waitForReady": true"#);
        let options = CallOptions::new().with_timeout(Duration::from_secs(3));
        assert_eq!(
            MethodConfig::apply(Some(&none), &options, 0, 0).timeout,
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn wait_for_ready_from_the_call_else_the_config() {
        let wait = |config: &MethodConfig, call: Option<bool>| {
            let mut options = CallOptions::new();
            options.wait_for_ready = call;
            MethodConfig::apply(Some(config), &options, 0, 0).wait_for_ready
        };
        let yes = method(r#""waitForReady": true"#);
        let no = method(r#""waitForReady": false"#);
        let unset = method(r#""timeout": "1s""#);
        assert!(wait(&yes, None));
        assert!(!wait(&yes, Some(false)));
        assert!(!wait(&no, None));
        assert!(wait(&no, Some(true)));
        assert!(!wait(&unset, None));
        assert!(wait(&unset, Some(true)));
    }

    #[test]
    fn sizes_take_the_smaller_of_config_and_channel_unless_the_call_sets_one() {
        let config = method(r#""maxRequestMessageBytes": 100, "maxResponseMessageBytes": 300"#);
        let settings = MethodConfig::apply(Some(&config), &CallOptions::new(), 1000, 200);
        assert_eq!((settings.max_send, settings.max_recv), (100, 200));
        let mut options = CallOptions::new();
        options.max_send_message_size = Some(5000);
        options.max_recv_message_size = Some(6000);
        let settings = MethodConfig::apply(Some(&config), &options, 1000, 200);
        assert_eq!((settings.max_send, settings.max_recv), (5000, 6000));
        let unset = method(r#""timeout": "1s""#);
        let settings = MethodConfig::apply(Some(&unset), &CallOptions::new(), 1000, 200);
        assert_eq!((settings.max_send, settings.max_recv), (1000, 200));
    }
}
