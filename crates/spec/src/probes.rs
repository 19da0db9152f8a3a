//! The `check:` and `update:` sections: probes with their timing, and rollout policies.

use std::ops::RangeInclusive;

use serde_saphyr::Spanned;

use crate::limits::{
    MAX_HEALTHY_DEADLINE_MS, MAX_HTTP_TARGET_LEN, MAX_INTERVAL_MS, MAX_MIN_HEALTHY_TIME_MS,
    MAX_START_PERIOD_MS, MAX_TIMEOUT_MS, MIN_HEALTHY_DEADLINE_MS, MIN_INTERVAL_MS, MIN_TIMEOUT_MS,
};
use crate::model::{CheckSpec, Probe, UpdatePolicy};
use crate::parse::Checker;
use crate::raw::{DurationText, RawCheck, RawTcp, RawUpdate};
use crate::units::{format_ms, parse_duration_ms, seconds_to_ms};

impl Checker<'_> {
    /// The probe of a task listening on `port` (0: none declared), or on the port the server
    /// allocates (`auto_port`), which the probe names until the task is rendered: as
    /// `{{port}}` in a URL, as 0 for `tcp`.
    pub(crate) fn check(
        &mut self,
        path: &str,
        raw: &Spanned<RawCheck>,
        port: u16,
        auto_port: bool,
    ) -> Option<CheckSpec> {
        let path = format!("{path}.check");
        let check = &raw.value;
        let given = [
            check.http.is_some(),
            check.tcp.is_some(),
            check.exec.is_some(),
        ];
        if given.iter().filter(|given| **given).count() != 1 {
            self.error(
                &raw.referenced,
                &path,
                "give exactly one of `http`, `tcp` or `exec`",
            );
            return None;
        }
        let probe = if let Some(http) = &check.http {
            Probe::Http {
                url: self.http_target(&path, http, port, auto_port)?,
            }
        } else if let Some(tcp) = &check.tcp {
            let probed = match tcp.value {
                RawTcp::TaskPort(true) if auto_port => {
                    return self.timing(&path, check, Probe::Tcp { port: 0 });
                }
                RawTcp::TaskPort(true) => port,
                RawTcp::TaskPort(false) => 0,
                RawTcp::Port(number) => u16::try_from(number).unwrap_or(0),
            };
            if probed == 0 {
                self.error(&tcp.referenced, format!("{path}.tcp"), "expected a port from 1 to 65535, or true for the task's port (which must be set)");
                return None;
            }
            Probe::Tcp { port: probed }
        } else {
            let exec = check.exec.as_ref().expect("one of the three is given");
            Probe::Exec {
                command: self.command(&format!("{path}.exec"), exec)?,
            }
        };
        self.timing(&path, check, probe)
    }

    /// `probe` with the check's timing.
    fn timing(&mut self, path: &str, check: &RawCheck, probe: Probe) -> Option<CheckSpec> {
        let interval_ms = self.duration(
            path,
            "interval",
            check.interval.as_ref(),
            CheckSpec::DEFAULT_INTERVAL_MS,
            MIN_INTERVAL_MS..=MAX_INTERVAL_MS,
        );
        let timeout_ms = self.duration(
            path,
            "timeout",
            check.timeout.as_ref(),
            CheckSpec::DEFAULT_TIMEOUT_MS,
            MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS,
        );
        let start_period_ms = self.duration(
            path,
            "start_period",
            check.start_period.as_ref(),
            0,
            0..=MAX_START_PERIOD_MS,
        );
        let retries = match &check.retries {
            Some(retries) => self
                .count(retries, format!("{path}.retries"))
                .unwrap_or(CheckSpec::DEFAULT_RETRIES),
            None => CheckSpec::DEFAULT_RETRIES,
        };
        Some(CheckSpec {
            probe,
            interval_ms,
            timeout_ms,
            retries,
            start_period_ms,
        })
    }

    /// `routed`: the job has a `route:`, which weights and traffic measures need.
    pub(crate) fn update_policy(
        &mut self,
        path: &str,
        raw: &Spanned<RawUpdate>,
        routed: bool,
    ) -> UpdatePolicy {
        let path = format!("{path}.update");
        let update = &raw.value;
        let defaults = UpdatePolicy::default();
        let batch_size = match &update.batch_size {
            Some(size) => self
                .count(size, format!("{path}.batch_size"))
                .unwrap_or(defaults.batch_size),
            None => defaults.batch_size,
        };
        let canary = match &update.canary {
            Some(canary) => self
                .count(canary, format!("{path}.canary"))
                .unwrap_or(defaults.canary),
            None => defaults.canary,
        };
        UpdatePolicy {
            batch_size,
            canary,
            min_healthy_time_ms: self.duration(
                &path,
                "min_healthy_time",
                update.min_healthy_time.as_ref(),
                defaults.min_healthy_time_ms,
                0..=MAX_MIN_HEALTHY_TIME_MS,
            ),
            healthy_deadline_ms: self.duration(
                &path,
                "healthy_deadline",
                update.healthy_deadline.as_ref(),
                defaults.healthy_deadline_ms,
                MIN_HEALTHY_DEADLINE_MS..=MAX_HEALTHY_DEADLINE_MS,
            ),
            auto_rollback: update.auto_rollback.unwrap_or(defaults.auto_rollback),
            manual_gate: update.manual_gate.unwrap_or(defaults.manual_gate),
            canary_weight_bp: self.canary_weight(&path, update, canary, routed),
            analysis: self.analysis(&path, update, canary, routed),
        }
    }

    /// A duration within `allowed`, or `default` (after reporting) if it is not one.
    pub(crate) fn duration(
        &mut self,
        path: &str,
        field: &str,
        raw: Option<&Spanned<DurationText>>,
        default: u64,
        allowed: RangeInclusive<u64>,
    ) -> u64 {
        let Some(raw) = raw else { return default };
        let millis = match &raw.value {
            DurationText::Seconds(seconds) => seconds_to_ms(*seconds),
            DurationText::Text(text) => parse_duration_ms(text),
        };
        match millis {
            Some(millis) if allowed.contains(&millis) => millis,
            _ => {
                let message = format!(
                    "expected a duration from {} to {}, such as 500ms, 2s or 1m",
                    format_ms(*allowed.start()),
                    format_ms(*allowed.end())
                );
                self.error(&raw.referenced, format!("{path}.{field}"), message);
                default
            }
        }
    }

    /// The URL an `http` check probes: a full `http(s)://` URL as written, or a path on the
    /// task's port on its host. A template is checked when it is rendered, as a URL.
    fn http_target(
        &mut self,
        path: &str,
        http: &Spanned<String>,
        port: u16,
        auto_port: bool,
    ) -> Option<String> {
        let target = http.value.trim();
        let at = &http.referenced;
        let path = format!("{path}.http");
        let expected = "expected a path such as /health or a full http:// URL";
        let templated = self.template_value(at, &path, target);
        // A template's tags hold spaces; what it renders to is checked then.
        let unfit = |c: char| c.is_control() || (c.is_whitespace() && !templated);
        if target.len() > MAX_HTTP_TARGET_LEN || target.chars().any(unfit) {
            let message = format!(
                "{expected}, of at most {MAX_HTTP_TARGET_LEN} characters without spaces or control characters"
            );
            self.error(at, path, message);
            return None;
        }
        let after_scheme = target
            .strip_prefix("http://")
            .or_else(|| target.strip_prefix("https://"));
        if let Some(rest) = after_scheme {
            if rest.is_empty() || rest.starts_with('/') {
                let message =
                    "expected a full URL with a host, such as http://127.0.0.1:8080/health";
                self.error(at, path, message);
                return None;
            }
            Some(target.to_owned())
        } else if templated && !target.starts_with('/') {
            Some(target.to_owned())
        } else if !target.starts_with('/') {
            self.error(at, path, expected);
            None
        } else if auto_port {
            Some(format!("http://127.0.0.1:{{{{port}}}}{target}"))
        } else if port == 0 {
            let message = "a path is probed on the task's port: set `port` on the task or its job, or give a full URL";
            self.error(at, path, message);
            None
        } else {
            Some(format!("http://127.0.0.1:{port}{target}"))
        }
    }
}
