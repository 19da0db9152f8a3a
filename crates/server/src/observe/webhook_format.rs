//! A webhook's payload style. Our own JSON (the [`Notification`] as it is, with its `event`
//! tag) by default; or an incoming-webhook message for chat tools: Slack's `{"text": ...}` and
//! DingTalk's `{"msgtype": "text", "text": {"content": ...}}`, whose text is one line that says
//! what happened.
//!
//! In the server config a webhook is a plain URL (our JSON) or a map with its format:
//!
//! ```yaml
//! notify:
//!   - http://127.0.0.1:9000/hooks/coding-job
//!   - url: https://hooks.slack.com/services/T0/B0/XXXX
//!     format: slack
//! ```

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::observe::notify::Notification;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The notification as JSON with an `event` tag.
    #[default]
    Json,
    /// `{"text": "..."}`.
    Slack,
    /// `{"msgtype": "text", "text": {"content": "..."}}`.
    Dingtalk,
}

/// One `notify:` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    pub format: WebhookFormat,
}

impl From<String> for Webhook {
    fn from(url: String) -> Webhook {
        Webhook {
            url,
            format: WebhookFormat::Json,
        }
    }
}

/// The map form, with its own unknown-field check (the plain form is a string).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookMap {
    url: String,
    #[serde(default)]
    format: WebhookFormat,
}

impl<'de> Deserialize<'de> for Webhook {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Webhook, D::Error> {
        struct WebhookVisitor;
        impl<'de> Visitor<'de> for WebhookVisitor {
            type Value = Webhook;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a webhook URL, or a map with `url` and `format`")
            }

            fn visit_str<E: de::Error>(self, url: &str) -> Result<Webhook, E> {
                Ok(Webhook::from(url.to_owned()))
            }

            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Webhook, M::Error> {
                let entry = WebhookMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Webhook {
                    url: entry.url,
                    format: entry.format,
                })
            }
        }
        deserializer.deserialize_any(WebhookVisitor)
    }
}

/// The body POSTed for `notification` in `format`.
pub fn body(format: WebhookFormat, notification: &Notification) -> serde_json::Result<Vec<u8>> {
    match format {
        WebhookFormat::Json => serde_json::to_vec(notification),
        WebhookFormat::Slack => serde_json::to_vec(&serde_json::json!({
            "text": summary(notification),
        })),
        WebhookFormat::Dingtalk => serde_json::to_vec(&serde_json::json!({
            "msgtype": "text",
            "text": { "content": summary(notification) },
        })),
    }
}

/// One line for people: what happened, to what.
pub fn summary(notification: &Notification) -> String {
    match notification {
        Notification::Push {
            env,
            service,
            version,
            user,
            ..
        } => format!("coding-job: {user} pushed {service} version {version} to {env}"),
        Notification::RolloutStarted {
            env,
            service,
            kind,
            jobs,
            user,
            ..
        } => format!(
            "coding-job: {user} started {kind} of {service} in {env} ({})",
            jobs.join(", ")
        ),
        Notification::RolloutFinished {
            env, service, kind, ..
        } => format!("coding-job: {kind} of {service} in {env} finished"),
        Notification::RolloutFailed {
            env,
            service,
            kind,
            reason,
            rolled_back,
            ..
        } => format!(
            "coding-job: {kind} of {service} in {env} failed{}: {reason}",
            if *rolled_back {
                " and was rolled back"
            } else {
                ""
            }
        ),
        Notification::TaskUnhealthy {
            env,
            service,
            task,
            detail,
            ..
        } => format!("coding-job: {service}/{task} in {env} is unhealthy: {detail}"),
        Notification::AlertFiring { message, .. } => format!("coding-job alert: {message}"),
        Notification::AlertResolved { message, .. } => {
            format!("coding-job resolved: {message}")
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn firing() -> Notification {
        Notification::AlertFiring {
            alert: "a-1".into(),
            rule: "crash_loop".into(),
            subject: "production/shop/web/web-1".into(),
            message: "production/shop/web/web-1 restarted 3 times within 5m".into(),
            at: "2026-12-06T00:00:00Z".into(),
        }
    }

    fn parsed(format: WebhookFormat, notification: &Notification) -> Value {
        serde_json::from_slice(&body(format, notification).unwrap()).unwrap()
    }

    #[test]
    fn slack_gets_text() {
        assert_eq!(
            parsed(WebhookFormat::Slack, &firing()),
            json!({"text": "coding-job alert: production/shop/web/web-1 restarted 3 times within 5m"})
        );
    }

    #[test]
    fn dingtalk_gets_a_text_message() {
        assert_eq!(
            parsed(WebhookFormat::Dingtalk, &firing()),
            json!({"msgtype": "text", "text": {"content": "coding-job alert: production/shop/web/web-1 restarted 3 times within 5m"}})
        );
    }

    #[test]
    fn json_is_the_notification_itself() {
        let value = parsed(WebhookFormat::Json, &firing());
        assert_eq!(value["event"], "alert_firing");
        assert_eq!(value["rule"], "crash_loop");
        assert_eq!(
            serde_json::from_value::<Notification>(value).unwrap(),
            firing()
        );
    }

    #[test]
    fn entries_are_urls_or_maps() {
        let yaml = "- http://a/hook\n- url: http://b/hook\n  format: dingtalk\n";
        let hooks: Vec<Webhook> = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(
            hooks,
            [
                Webhook::from("http://a/hook".to_owned()),
                Webhook {
                    url: "http://b/hook".into(),
                    format: WebhookFormat::Dingtalk
                }
            ]
        );
        let wrong = serde_saphyr::from_str::<Vec<Webhook>>("- url: http://b\n  format: teams\n")
            .unwrap_err()
            .to_string();
        assert!(wrong.contains("teams"), "{wrong}");
    }
}
