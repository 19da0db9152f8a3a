//! `alerts:` in the server config: which conditions raise an alert. Every rule is optional;
//! one left out is off. Values are checked while the file is read, so a wrong one is reported
//! with its line and column and the server does not start.
//!
//! ```yaml
//! alerts:
//!   crash_loop: { restarts: 3, within: 5m }   # a task restarted 3 times within 5 minutes
//!   unhealthy: { for: 2m }                    # a task's check failing for 2 minutes
//!   host_down: { for: 1m }                    # a host's agent gone for a minute
//!   deployment_failed: true                   # a rollout failed (until one succeeds)
//!   disk: { above: 90% }                      # a host's disk more than 90% full
//!   route_down: { for: 1m }                   # a routed job without a healthy backend
//! ```

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRules {
    #[serde(default)]
    pub crash_loop: Option<CrashLoop>,
    #[serde(default)]
    pub unhealthy: Option<Lasting>,
    #[serde(default)]
    pub host_down: Option<Lasting>,
    #[serde(default)]
    pub deployment_failed: bool,
    #[serde(default)]
    pub disk: Option<DiskFull>,
    #[serde(default)]
    pub route_down: Option<Lasting>,
}

impl AlertRules {
    /// Whether any rule is on (with none, nothing is evaluated at all).
    pub fn any(&self) -> bool {
        self.crash_loop.is_some()
            || self.unhealthy.is_some()
            || self.host_down.is_some()
            || self.deployment_failed
            || self.disk.is_some()
            || self.route_down.is_some()
    }
}

/// `restarts` restarts of one task within `within`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrashLoop {
    pub restarts: Restarts,
    pub within: RuleDuration,
}

/// A condition that must hold `for` this long before it is an alert.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lasting {
    #[serde(rename = "for")]
    pub lasting: RuleDuration,
}

/// A host's disk use above this percentage.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskFull {
    pub above: Percent,
}

/// A duration written `30s`, `5m`, `1h` (or `500ms`): at least a second, at most a week.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleDuration(pub Duration);

/// How many restarts: 1 to 1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restarts(pub u32);

/// A percentage, `90%` or `90`: more than 0, less than 100.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percent(pub f64);

const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

/// A YAML scalar as text, whether written as a string or a number.
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Scalar, D::Error> {
        struct ScalarVisitor;
        impl de::Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a number or a string")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Scalar, E> {
                Ok(Scalar(text.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, number: u64) -> Result<Scalar, E> {
                Ok(Scalar(number.to_string()))
            }
            fn visit_i64<E: de::Error>(self, number: i64) -> Result<Scalar, E> {
                Ok(Scalar(number.to_string()))
            }
            fn visit_f64<E: de::Error>(self, number: f64) -> Result<Scalar, E> {
                Ok(Scalar(number.to_string()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

impl<'de> Deserialize<'de> for RuleDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RuleDuration, D::Error> {
        let Scalar(text) = Scalar::deserialize(deserializer)?;
        let duration = cj_spec::parse_duration_ms(&text).map(Duration::from_millis);
        match duration {
            Some(duration) if duration >= Duration::from_secs(1) && duration <= WEEK => {
                Ok(RuleDuration(duration))
            }
            _ => Err(de::Error::custom(format!(
                "expected a duration from 1s to 7 days such as 30s, 5m or 1h, found \"{text}\""
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for Restarts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Restarts, D::Error> {
        let Scalar(text) = Scalar::deserialize(deserializer)?;
        match text.parse::<u32>() {
            Ok(count @ 1..=1000) => Ok(Restarts(count)),
            _ => Err(de::Error::custom(format!(
                "expected a number of restarts from 1 to 1000, found \"{text}\""
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Percent, D::Error> {
        let Scalar(text) = Scalar::deserialize(deserializer)?;
        let number = text.trim().trim_end_matches('%').trim().parse::<f64>();
        match number {
            Ok(percent) if percent > 0.0 && percent < 100.0 => Ok(Percent(percent)),
            _ => Err(de::Error::custom(format!(
                "expected a percentage above 0 and below 100 such as 90%, found \"{text}\""
            ))),
        }
    }
}

/// A duration as rules' messages write it: `90s`, `5m`, `2h`.
pub fn shown(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<AlertRules, String> {
        serde_saphyr::from_str::<AlertRules>(yaml).map_err(|error| {
            let at = error
                .location()
                .map(|at| format!("{}:{}", at.line(), at.column()))
                .unwrap_or_default();
            format!("{at}: {error}")
        })
    }

    #[test]
    fn every_rule_reads() {
        let rules = parse(
            "crash_loop: { restarts: 3, within: 5m }\nunhealthy: { for: 2m }\nhost_down: { for: 90s }\ndeployment_failed: true\ndisk: { above: 90% }\nroute_down: { for: 1m }\n",
        )
        .unwrap();
        assert_eq!(
            rules.crash_loop,
            Some(CrashLoop {
                restarts: Restarts(3),
                within: RuleDuration(Duration::from_secs(300))
            })
        );
        assert_eq!(rules.host_down.unwrap().lasting.0, Duration::from_secs(90));
        assert_eq!(rules.disk.unwrap().above, Percent(90.0));
        assert!(rules.deployment_failed && rules.any());
        assert!(!AlertRules::default().any());
        assert_eq!(
            parse("disk: { above: 85 }\n")
                .unwrap()
                .disk
                .unwrap()
                .above
                .0,
            85.0
        );
    }

    #[test]
    fn wrong_values_are_located_and_explained() {
        let cases = [
            (
                "unhealthy: { for: 2m }\ncrash_loop: { restarts: 3, within: 5 minutes }\n",
                "2:",
                "expected a duration from 1s to 7 days such as 30s, 5m or 1h, found \"5 minutes\"",
            ),
            (
                "crash_loop: { restarts: 0, within: 5m }\n",
                "1:",
                "expected a number of restarts from 1 to 1000, found \"0\"",
            ),
            (
                "disk:\n  above: 120%\n",
                "2:",
                "expected a percentage above 0 and below 100 such as 90%, found \"120%\"",
            ),
            ("host_down: { for: 0s }\n", "1:", "found \"0s\""),
            ("crash_loop: { restarts: 3 }\n", "1:", "within"),
            ("unhealthy: { after: 2m }\n", "1:", "unknown field `after`"),
            (
                "crashloop: { restarts: 3, within: 5m }\n",
                "1:",
                "unknown field `crashloop`",
            ),
        ];
        for (yaml, at, expected) in cases {
            let error = parse(yaml).unwrap_err();
            assert!(error.starts_with(at), "{yaml}: {error}");
            assert!(error.contains(expected), "{yaml}: {error}");
        }
    }

    #[test]
    fn durations_are_shown_short() {
        assert_eq!(shown(Duration::from_secs(300)), "5m");
        assert_eq!(shown(Duration::from_secs(7200)), "2h");
        assert_eq!(shown(Duration::from_secs(90)), "90s");
    }
}
