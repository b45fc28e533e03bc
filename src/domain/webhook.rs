//! A script's notifications: webhooks told when its runs fail, succeed, recover or skip a
//! tick. What to send and how it is signed lives here; sending is the notifier's.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

use super::{Run, RunStatus, ScriptDefinition, ValidationError};

pub const MAX_WEBHOOKS: usize = 5;
const MAX_URL: usize = 2048;
const MAX_SECRET: usize = 256;
/// Characters of the output tail a notification carries.
const TAIL_CHARS: usize = 2000;

/// When a webhook is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = NotifyEvent)]
pub enum Event {
    /// A run failed or timed out.
    Failure,
    /// A run succeeded.
    Success,
    /// A run succeeded after the script's last finished run had failed or timed out.
    Recovery,
    /// A schedule tick started nothing (see `skipped` runs).
    Skipped,
    /// Sent by the Test button only.
    Test,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Failure => "failure",
            Event::Success => "success",
            Event::Recovery => "recovery",
            Event::Skipped => "skipped",
            Event::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Event::Failure,
            Event::Success,
            Event::Recovery,
            Event::Skipped,
            Event::Test,
        ]
        .into_iter()
        .find(|e| e.as_str() == s)
    }
}

/// The body's shape: scriptd's own JSON, or a Slack-compatible `{"text": …}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = NotifyFormat)]
pub enum Format {
    #[default]
    Json,
    Slack,
}

/// One webhook of a script. `secret`, when set, signs each body (see the README); it is
/// write-only and stored encrypted.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    pub on: Vec<Event>,
    pub format: Format,
    pub secret: Option<String>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .field("on", &self.on)
            .field("format", &self.format)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .finish()
    }
}

/// A webhook as an admin sends it. `secret`: null keeps the one stored for the same URL, ""
/// removes it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WebhookInput)]
pub struct WebhookInput {
    /// An http(s) URL, at most 2048 characters.
    #[schema(max_length = 2048, pattern = "^https?://")]
    pub url: String,
    /// When to send: any of failure, success, recovery, skipped (at least one).
    #[schema(min_items = 1)]
    pub on: Vec<Event>,
    #[serde(default)]
    pub format: Format,
    #[serde(default)]
    #[schema(max_length = 256)]
    pub secret: Option<String>,
}

impl WebhookInput {
    /// Checks the webhook at `index`; a null secret takes the stored one of the same URL.
    pub fn parse(self, index: usize, stored: &[Webhook]) -> Result<Webhook, ValidationError> {
        let at = |what: &str| format!("notifications[{index}].{what}");
        let url = self.url.trim().to_string();
        let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
        if !scheme_ok || url.len() > MAX_URL || reqwest::Url::parse(&url).is_err() {
            return Err(ValidationError::new(
                at("url"),
                "must be an http:// or https:// URL of at most 2048 characters",
            ));
        }
        let mut on = self.on;
        on.sort_by_key(|e| *e as u8);
        on.dedup();
        if on.is_empty() || on.contains(&Event::Test) {
            return Err(ValidationError::new(
                at("on"),
                "must list one or more of: failure, success, recovery, skipped",
            ));
        }
        let secret = match self.secret {
            Some(s) if s.is_empty() => None,
            Some(s) if s.len() > MAX_SECRET => {
                return Err(ValidationError::new(
                    at("secret"),
                    "must be at most 256 characters",
                ))
            }
            Some(s) => Some(s),
            None => stored
                .iter()
                .find(|w| w.url == url)
                .and_then(|w| w.secret.clone()),
        };
        Ok(Webhook {
            url,
            on,
            format: self.format,
            secret,
        })
    }
}

pub fn parse_webhooks(
    input: Vec<WebhookInput>,
    stored: &[Webhook],
) -> Result<Vec<Webhook>, ValidationError> {
    if input.len() > MAX_WEBHOOKS {
        return Err(ValidationError::new(
            "notifications",
            "must list at most 5 webhooks",
        ));
    }
    input
        .into_iter()
        .enumerate()
        .map(|(i, w)| w.parse(i, stored))
        .collect()
}

/// The events a run's end makes: `previous` is the status of the script's last finished run
/// before it (skipped and canceled ones aside).
pub fn events_for(status: RunStatus, previous: Option<RunStatus>) -> Vec<Event> {
    let failed = |s: RunStatus| matches!(s, RunStatus::Failed | RunStatus::TimedOut);
    match status {
        s if failed(s) => vec![Event::Failure],
        RunStatus::Succeeded if previous.is_some_and(failed) => {
            vec![Event::Success, Event::Recovery]
        }
        RunStatus::Succeeded => vec![Event::Success],
        RunStatus::Skipped => vec![Event::Skipped],
        _ => Vec::new(),
    }
}

/// A notification's body. `link`: where the run is seen in the dashboard, when the server
/// knows its public URL. The output tail is the stored one, masked like all output.
pub fn body(
    format: Format,
    event: Event,
    script: &ScriptDefinition,
    run: &Run,
    link: Option<&str>,
    sent_at: &str,
) -> String {
    let tail: String = {
        let chars: Vec<char> = run.output_tail.chars().collect();
        chars[chars.len().saturating_sub(TAIL_CHARS)..]
            .iter()
            .collect()
    };
    match format {
        Format::Json => serde_json::json!({
            "event": event.as_str(),
            "sentAt": sent_at,
            "script": {
                "id": script.id,
                "name": script.name,
                "codeIdentifier": script.code_identifier.as_str(),
            },
            "run": {
                "id": run.id,
                "status": run.status.as_str(),
                "trigger": run.trigger.as_str(),
                "exitCode": run.exit_code,
                "durationMs": run.duration_ms(),
                "queuedAt": super::timestamp(run.queued_at),
                "finishedAt": run.finished_at.map(super::timestamp),
                "error": run.error,
                "outputTail": tail,
                "meta": run.meta,
            },
            "link": link,
        })
        .to_string(),
        Format::Slack => {
            let what = match (event, run.status) {
                (Event::Test, _) => "test notification: the webhook works".to_string(),
                (Event::Recovery, _) => "recovered: succeeded after failing".to_string(),
                (Event::Skipped, _) => "skipped a scheduled tick".to_string(),
                (_, RunStatus::TimedOut) => "timed out".to_string(),
                (_, s) => match run.exit_code {
                    Some(code) if s == RunStatus::Failed => format!("failed (exit {code})"),
                    _ => s.as_str().replace('_', " "),
                },
            };
            let icon = match event {
                Event::Failure => ":x:",
                Event::Success | Event::Recovery => ":white_check_mark:",
                Event::Skipped => ":fast_forward:",
                Event::Test => ":bell:",
            };
            // Slack's mrkdwn: &, < and > are escaped so a name cannot make a link or mention.
            let escape = |s: &str| {
                s.replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;")
            };
            let mut text = format!("{icon} *{}* {what}", escape(&script.name));
            if let Some(link) = link {
                text.push_str(&format!(
                    " — <{link}|run {}>",
                    &run.id[run.id.len().saturating_sub(8)..]
                ));
            }
            if !tail.is_empty() && event == Event::Failure {
                let last: Vec<&str> = tail.lines().rev().take(10).collect();
                let last: Vec<&str> = last.into_iter().rev().collect();
                text.push_str(&format!(
                    "\n```{}```",
                    escape(&last.join("\n")).replace("```", "'''")
                ));
            }
            serde_json::json!({ "text": text }).to_string()
        }
    }
}

/// The `X-Scriptd-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`,
/// so a receiver can check both who sent the body and that it is not an old one replayed.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={timestamp},v1={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recovery_is_a_success_after_a_failure() {
        use RunStatus::*;
        assert_eq!(events_for(Failed, None), [Event::Failure]);
        assert_eq!(events_for(TimedOut, Some(Succeeded)), [Event::Failure]);
        assert_eq!(
            events_for(Succeeded, Some(Failed)),
            [Event::Success, Event::Recovery]
        );
        assert_eq!(
            events_for(Succeeded, Some(TimedOut)),
            [Event::Success, Event::Recovery]
        );
        assert_eq!(events_for(Succeeded, Some(Succeeded)), [Event::Success]);
        assert_eq!(events_for(Canceled, Some(Failed)), []);
        assert_eq!(events_for(Skipped, None), [Event::Skipped]);
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_timestamp_and_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let sig = signature("Jefe", 0, "what do ya want for nothing?");
        assert_ne!(sig, signature("Jefe", 1, "what do ya want for nothing?"));
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"0.what do ya want for nothing?");
        let want: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sig, format!("t=0,v1={want}"));
    }

    #[test]
    fn a_webhook_keeps_its_stored_secret_unless_told_otherwise() {
        let stored = vec![Webhook {
            url: "https://hooks.example/a".into(),
            on: vec![Event::Failure],
            format: Format::Json,
            secret: Some("s3".into()),
        }];
        let input = |url: &str, secret: Option<&str>| WebhookInput {
            url: url.into(),
            on: vec![Event::Failure, Event::Failure],
            format: Format::Slack,
            secret: secret.map(String::from),
        };
        let kept = input("https://hooks.example/a", None)
            .parse(0, &stored)
            .unwrap();
        assert_eq!(kept.secret.as_deref(), Some("s3"));
        assert_eq!(kept.on, [Event::Failure], "deduplicated");
        assert_eq!(
            input("https://hooks.example/a", Some(""))
                .parse(0, &stored)
                .unwrap()
                .secret,
            None
        );
        assert_eq!(
            input("https://other.example", None)
                .parse(0, &stored)
                .unwrap()
                .secret,
            None
        );
        assert_eq!(
            input("ftp://x", None).parse(2, &stored).unwrap_err().field,
            "notifications[2].url"
        );
        let none = WebhookInput {
            on: vec![],
            ..input("https://x.example", None)
        };
        assert_eq!(
            none.parse(0, &stored).unwrap_err().field,
            "notifications[0].on"
        );
    }
}
