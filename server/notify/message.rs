//! The Slack-compatible message: `{"text": …, "blocks": […]}`. `text` is the plain summary
//! (what a phone notification shows, and all that receivers without blocks read); the blocks say
//! what happened to which request, where, who acted, the risk flags, and link to the request.
//! Every piece of user text is escaped for Slack's mrkdwn and shortened.

use serde_json::{Value, json};

use super::Event;
use crate::audit::Record;

/// The request a notification is about, as the message shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    pub id: String,
    pub number: i64,
    pub title: String,
    pub team: String,
    pub requester_name: String,
    pub env_class: String,
    pub env_name: String,
    pub account_name: String,
    pub region: String,
    pub risk_flags: Vec<String>,
}

/// Escapes the three characters Slack's mrkdwn treats as control characters (`&`, `<`, `>`),
/// so user text can neither mention `<!channel>` nor forge a link; line breaks become spaces
/// and the text is cut at `max` characters.
pub fn escape(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 8);
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn detail_text(record: &Record, key: &str) -> Option<String> {
    record
        .detail
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(|s| escape(s, 500))
}

/// What happened, as one sentence after the request's name (mrkdwn, escaped).
fn headline(event: Event, record: &Record, reason: Option<&str>) -> String {
    let actor = escape(&record.actor_name, 100);
    match (event, record.action.as_str()) {
        (Event::Submitted, _) => format!("was submitted by {actor}"),
        (Event::NeedsReview, _) => "needs your review: its change set is ready".into(),
        (Event::Approved, "request.auto_approved") => {
            "was approved by the rules (dev, no risk flags, every policy rule passed)".into()
        }
        (Event::Approved, "request.emergency_released") => format!(
            ":rotating_light: *EMERGENCY RELEASE* without approvals by {actor}. Reason: {}",
            detail_text(record, "reason").unwrap_or_else(|| "none given".into())
        ),
        (Event::Approved, _) => format!("was approved (last approval by {actor})"),
        (Event::Rejected, _) => match reason {
            Some(r) => format!("was rejected by {actor}. Reason: {}", escape(r, 500)),
            None => format!("was rejected by {actor}"),
        },
        (Event::Deployed, _) => "was deployed".into(),
        (Event::Failed, action) => {
            let what = match action {
                "change_set.failed" => "failed: its change set could not be created",
                "deploy.needs_attention" => "needs attention: the deployment stopped",
                _ => "failed: the deployment did not complete",
            };
            match detail_text(record, "error") {
                Some(e) => format!("{what} ({e})"),
                None => what.to_string(),
            }
        }
    }
}

/// The whole message for `event`, recorded as `record`, about `subject`, linking to `link` (the
/// request page's absolute URL). `reason` is a rejection's comment.
pub fn payload(
    event: Event,
    record: &Record,
    subject: &Subject,
    link: &str,
    reason: Option<&str>,
) -> Value {
    let name = format!("Request #{}", subject.number);
    let title = escape(&subject.title, 200);
    let said = headline(event, record, reason);
    let environment = format!(
        "{} · {} ({}) · {}",
        escape(&subject.env_class, 20),
        escape(&subject.env_name, 100),
        escape(&subject.account_name, 100),
        escape(&subject.region, 30)
    );
    let flags: Vec<String> = match record.detail.get("risk_flags").and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        None => subject.risk_flags.clone(),
    };
    let flags = if flags.is_empty() {
        "none".to_string()
    } else {
        flags
            .iter()
            .map(|f| format!(":warning: {}", escape(f, 60)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let field = |label: &str, value: String| json!({"type": "mrkdwn", "text": format!("*{label}*\n{value}")});
    json!({
        "text": format!("[{}] {name} “{title}” {said}", escape(&subject.team, 40)),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn",
                "text": format!("*<{link}|{name}>* {said}\n>{title}")}},
            {"type": "section", "fields": [
                field("Environment", environment),
                field("Team", escape(&subject.team, 40)),
                field("Requested by", escape(&subject.requester_name, 100)),
                field("Risk flags", flags),
            ]},
            {"type": "context", "elements": [{"type": "mrkdwn",
                "text": format!("stackgate · <{link}|Open the request>")}]},
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(action: &str, actor: &str, detail: Value) -> Record {
        Record {
            seq: 7,
            at: 0,
            actor_id: Some("u1".into()),
            actor_name: actor.into(),
            action: action.into(),
            object_type: "request".into(),
            object_id: "r1".into(),
            outcome: "success".into(),
            detail,
            correlation_id: None,
            source_ip: None,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn subject() -> Subject {
        Subject {
            id: "r1".into(),
            number: 12,
            title: "Ledger <!channel> & co".into(),
            team: "payments".into(),
            requester_name: "Alice <a@x>".into(),
            env_class: "dev".into(),
            env_name: "ledger".into(),
            account_name: "dev".into(),
            region: "eu-west-2".into(),
            risk_flags: vec!["iam_change".into()],
        }
    }

    #[test]
    fn escaping_neutralises_slack_control_characters_line_breaks_and_length() {
        assert_eq!(escape("a & b <c> ", 100), "a &amp; b &lt;c&gt; ");
        assert_eq!(escape("<!channel>", 100), "&lt;!channel&gt;");
        assert_eq!(
            escape("<http://evil|click>", 100),
            "&lt;http://evil|click&gt;"
        );
        assert_eq!(escape("one\ntwo\rthree", 100), "one two three");
        assert_eq!(escape("abcdef", 3), "abc…");
        assert_eq!(escape("&&", 1), "&amp;…");
    }

    #[test]
    fn a_submission_names_the_request_who_acted_where_and_links_absolutely() {
        let p = payload(
            Event::Submitted,
            &record("request.submitted", "Alice <script>", json!({})),
            &subject(),
            "https://portal.example/requests/r1",
            None,
        );
        let text = p["text"].as_str().unwrap_or_default();
        assert!(text.starts_with("[payments] Request #12"), "{text}");
        assert!(
            text.contains("was submitted by Alice &lt;script&gt;"),
            "{text}"
        );
        assert!(text.contains("Ledger &lt;!channel&gt; &amp; co"), "{text}");
        assert!(!p.to_string().contains("<!channel>"), "{p}");
        let blocks = p["blocks"].as_array().cloned().unwrap_or_default();
        assert_eq!(blocks.len(), 3, "{p}");
        let head = blocks[0]["text"]["text"].as_str().unwrap_or_default();
        assert!(
            head.starts_with("*<https://portal.example/requests/r1|Request #12>*"),
            "{head}"
        );
        let fields = blocks[1]["fields"].to_string();
        for shown in [
            "dev · ledger (dev) · eu-west-2",
            "payments",
            "Alice &lt;a@x&gt;",
            ":warning: iam_change",
        ] {
            assert!(fields.contains(shown), "{shown} in {fields}");
        }
        assert_eq!(blocks[0]["text"]["type"], "mrkdwn");
    }

    #[test]
    fn an_emergency_release_is_flagged_and_a_rejection_carries_its_reason() {
        let p = payload(
            Event::Approved,
            &record(
                "request.emergency_released",
                "Dave",
                json!({"reason": "outage <now>"}),
            ),
            &subject(),
            "https://p/requests/r1",
            None,
        );
        let text = p["text"].as_str().unwrap_or_default();
        assert!(
            text.contains("EMERGENCY RELEASE") && text.contains("by Dave"),
            "{text}"
        );
        assert!(text.contains("Reason: outage &lt;now&gt;"), "{text}");
        let p = payload(
            Event::Rejected,
            &record("request.rejected", "Bob", json!({})),
            &subject(),
            "https://p/requests/r1",
            Some("too big > wanted"),
        );
        let text = p["text"].as_str().unwrap_or_default();
        assert!(
            text.contains("was rejected by Bob. Reason: too big &gt; wanted"),
            "{text}"
        );
    }

    #[test]
    fn review_flags_come_from_the_record_and_failures_say_why() {
        let p = payload(
            Event::NeedsReview,
            &record(
                "request.review_ready",
                "stackgate-worker",
                json!({"risk_flags": ["stateful_replacement"]}),
            ),
            &subject(),
            "https://p/requests/r1",
            None,
        );
        let fields = p["blocks"][1]["fields"].to_string();
        assert!(
            fields.contains("stateful_replacement") && !fields.contains("iam_change"),
            "{fields}"
        );
        assert!(
            p["text"]
                .as_str()
                .unwrap_or_default()
                .contains("needs your review")
        );
        let p = payload(
            Event::Failed,
            &record(
                "change_set.failed",
                "stackgate-worker",
                json!({"error": "Template <bad>"}),
            ),
            &subject(),
            "https://p/requests/r1",
            None,
        );
        let text = p["text"].as_str().unwrap_or_default();
        assert!(
            text.contains("change set could not be created (Template &lt;bad&gt;)"),
            "{text}"
        );
        let p = payload(
            Event::Failed,
            &record("deploy.needs_attention", "stackgate-worker", json!({})),
            &{
                let mut s = subject();
                s.risk_flags.clear();
                s
            },
            "https://p/requests/r1",
            None,
        );
        assert!(
            p["text"]
                .as_str()
                .unwrap_or_default()
                .contains("needs attention")
        );
        assert!(p["blocks"][1]["fields"].to_string().contains("none"));
    }
}
