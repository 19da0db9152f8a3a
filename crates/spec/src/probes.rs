//! The `check:` and `update:` sections: probes with their timing, and rollout policies.

use serde_saphyr::Spanned;

use crate::model::{CheckSpec, Probe, UpdatePolicy};
use crate::parse::Checker;
use crate::raw::{DurationText, RawCheck, RawTcp, RawUpdate};
use crate::units::parse_duration_ms;

impl Checker<'_> {
    /// The probe of a task listening on `port` (0: none declared).
    pub(crate) fn check(
        &mut self,
        path: &str,
        raw: &Spanned<RawCheck>,
        port: u16,
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
            let target = http.value.trim();
            if target.starts_with("http://") || target.starts_with("https://") {
                Probe::Http {
                    url: target.to_owned(),
                }
            } else if !target.starts_with('/') {
                self.error(
                    &http.referenced,
                    format!("{path}.http"),
                    "expected a path such as /health or a full http:// URL",
                );
                return None;
            } else if port == 0 {
                let message = "a path is probed on the task's port: set `port` on the task or its job, or give a full URL";
                self.error(&http.referenced, format!("{path}.http"), message);
                return None;
            } else {
                Probe::Http {
                    url: format!("http://127.0.0.1:{port}{target}"),
                }
            }
        } else if let Some(tcp) = &check.tcp {
            let probed = match tcp.value {
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
        let interval_ms = self.duration(
            &path,
            "interval",
            check.interval.as_ref(),
            CheckSpec::DEFAULT_INTERVAL_MS,
            false,
        );
        let timeout_ms = self.duration(
            &path,
            "timeout",
            check.timeout.as_ref(),
            CheckSpec::DEFAULT_TIMEOUT_MS,
            false,
        );
        let start_period_ms =
            self.duration(&path, "start_period", check.start_period.as_ref(), 0, true);
        let retries = match &check.retries {
            Some(retries) if retries.value == 0 => {
                self.error(
                    &retries.referenced,
                    format!("{path}.retries"),
                    "expected at least 1",
                );
                1
            }
            Some(retries) => retries.value,
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

    pub(crate) fn update_policy(&mut self, path: &str, raw: &Spanned<RawUpdate>) -> UpdatePolicy {
        let path = format!("{path}.update");
        let update = &raw.value;
        let defaults = UpdatePolicy::default();
        let batch_size = match &update.batch_size {
            Some(size) if size.value == 0 => {
                self.error(
                    &size.referenced,
                    format!("{path}.batch_size"),
                    "expected at least 1",
                );
                1
            }
            Some(size) => size.value,
            None => defaults.batch_size,
        };
        UpdatePolicy {
            batch_size,
            canary: update
                .canary
                .as_ref()
                .map(|canary| canary.value)
                .unwrap_or(defaults.canary),
            min_healthy_time_ms: self.duration(
                &path,
                "min_healthy_time",
                update.min_healthy_time.as_ref(),
                defaults.min_healthy_time_ms,
                true,
            ),
            healthy_deadline_ms: self.duration(
                &path,
                "healthy_deadline",
                update.healthy_deadline.as_ref(),
                defaults.healthy_deadline_ms,
                false,
            ),
            auto_rollback: update.auto_rollback.unwrap_or(defaults.auto_rollback),
            manual_gate: update.manual_gate.unwrap_or(defaults.manual_gate),
        }
    }

    fn duration(
        &mut self,
        path: &str,
        field: &str,
        raw: Option<&Spanned<DurationText>>,
        default: u64,
        zero_ok: bool,
    ) -> u64 {
        let Some(raw) = raw else { return default };
        let millis = match &raw.value {
            DurationText::Seconds(seconds) if seconds.is_finite() && *seconds >= 0.0 => {
                Some((seconds * 1000.0).round() as u64)
            }
            DurationText::Seconds(_) => None,
            DurationText::Text(text) => parse_duration_ms(text),
        };
        match millis {
            Some(millis) if millis > 0 || zero_ok => millis,
            _ => {
                let expected = if zero_ok {
                    "a duration such as 500ms, 2s or 1m"
                } else {
                    "a duration greater than 0, such as 500ms, 2s or 1m"
                };
                self.error(
                    &raw.referenced,
                    format!("{path}.{field}"),
                    format!("expected {expected}"),
                );
                default
            }
        }
    }
}
