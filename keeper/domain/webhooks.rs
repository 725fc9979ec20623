//! The rules of webhooks (README "Webhooks"): which events there are, which receiver URLs are
//! accepted, how a body is signed, and what a receiver's answer means for the delivery.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::error::{shown, string_conversions, DomainError};
use super::organization::named_values;

named_values!(
    /// What happened (`webhook_deliveries.event`, the `X-Keeper-Event` header).
    WebhookEvent, "events", "webhook event", {
        /// Sent once when a subscription is created, so that its receiver can be checked.
        Ping => "ping",
        /// A build was confirmed (`PATCH /builds/<id> {"uploaded": true}`).
        BuildConfirmed => "build.confirmed",
        /// An edition shows another build: its rebuild is OK and the CDN purged.
        EditionUpdated => "edition.updated",
        /// An edition was deleted (`DELETE /editions/<id>`, or by retention).
        EditionDeleted => "edition.deleted",
        /// An operation ended FAILED (not retried any more); never for a webhook's own delivery.
        OperationFailed => "operation.failed",
    }
);

named_values!(
    /// Where a delivery is (`webhook_deliveries.state`).
    DeliveryState, "state", "delivery state", {
        /// Not attempted yet.
        Pending => "pending",
        /// An attempt failed; another follows after a backoff.
        Retrying => "retrying",
        /// The receiver answered 2xx.
        Delivered => "delivered",
        /// Given up: the attempts ran out, or the receiver's answer said retrying cannot help.
        Failed => "failed",
    }
);

impl WebhookEvent {
    /// The events a subscription can name (a ping is sent to every new subscription).
    pub const SUBSCRIBABLE: [Self; 4] = [
        Self::BuildConfirmed,
        Self::EditionUpdated,
        Self::EditionDeleted,
        Self::OperationFailed,
    ];
}

/// The longest receiver URL accepted.
pub const MAX_URL_BYTES: usize = 2048;

/// A subscription's events as stored (`webhooks.events`): names, comma-separated.
pub fn events_text(events: &[WebhookEvent]) -> String {
    events
        .iter()
        .map(WebhookEvent::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// The events of a stored list; names this keeper does not know are left out.
pub fn events_of_text(text: &str) -> Vec<WebhookEvent> {
    text.split(',')
        .filter_map(|name| WebhookEvent::parse(name.trim()).ok())
        .collect()
}

/// The events a request names, each once and in the order of [`WebhookEvent::SUBSCRIBABLE`];
/// every one when `names` is `None`. An empty list, an unknown name or `ping` is refused.
pub fn subscribed_events(names: Option<&[String]>) -> Result<Vec<WebhookEvent>, DomainError> {
    let Some(names) = names else {
        return Ok(WebhookEvent::SUBSCRIBABLE.to_vec());
    };
    if names.is_empty() {
        return Err(DomainError::new(
            "events",
            "events is empty: name at least one event, or leave it out for every event",
        ));
    }
    let mut chosen = Vec::new();
    for name in names {
        let event = WebhookEvent::parse(name)?;
        if event == WebhookEvent::Ping {
            return Err(DomainError::new(
                "events",
                "ping cannot be subscribed to: it is sent once to every new subscription",
            ));
        }
        chosen.push(event);
    }
    Ok(WebhookEvent::SUBSCRIBABLE
        .into_iter()
        .filter(|event| chosen.contains(event))
        .collect())
}

/// A receiver URL as given, once it is an absolute `http` or `https` URL with a host, no
/// credentials and no fragment, at most [`MAX_URL_BYTES`] long.
pub fn receiver_url(raw: &str) -> Result<String, DomainError> {
    let refuse = |why: &str| DomainError::new("url", format!("url {}: {why}", shown(raw)));
    if raw.len() > MAX_URL_BYTES {
        return Err(refuse(&format!("longer than {MAX_URL_BYTES} bytes")));
    }
    if raw.chars().any(char::is_control) || raw.contains(' ') {
        return Err(refuse("it holds spaces or control characters"));
    }
    let parsed = url::Url::parse(raw).map_err(|err| refuse(&format!("not a URL ({err})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(refuse("keeper delivers to http:// or https:// URLs only"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(refuse("it names no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(refuse(
            "it holds credentials; receivers check the signature instead",
        ));
    }
    if parsed.fragment().is_some() {
        return Err(refuse("a fragment is never sent; leave it out"));
    }
    Ok(raw.to_owned())
}

/// The `X-Keeper-Signature-256` header of `body`: `sha256=` and the hex HMAC-SHA256 of the raw
/// body keyed with the secret's bytes, the scheme of GitHub's `X-Hub-Signature-256`.
pub fn signature(secret: &str, body: &[u8]) -> Result<String, DomainError> {
    // HMAC takes a key of any length: this refusal is the library's signature, not a case.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|_| DomainError::new("secret", "the signing secret cannot key HMAC-SHA256"))?;
    mac.update(body);
    Ok(format!(
        "sha256={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// What a receiver's answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: done.
    Delivered,
    /// Worth another attempt: a server error, 408, 425 or 429.
    Retry,
    /// Another attempt cannot help (any other answer, redirects included, which are not
    /// followed): the subscription's URL or the receiver must change.
    GiveUp,
}

pub fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        408 | 425 | 429 | 500..=599 => Verdict::Retry,
        _ => Verdict::GiveUp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_githubs() {
        // GitHub's documented example ("Validating webhook deliveries"): secret "It's a
        // Secret to Everybody", payload "Hello, World!".
        assert_eq!(
            signature("It's a Secret to Everybody", b"Hello, World!").unwrap(),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn events_default_to_every_one_and_refuse_unknown_names() {
        assert_eq!(subscribed_events(None).unwrap().len(), 4);
        let names = ["edition.deleted".to_owned(), "build.confirmed".to_owned()];
        assert_eq!(
            subscribed_events(Some(&names)).unwrap(),
            [WebhookEvent::BuildConfirmed, WebhookEvent::EditionDeleted]
        );
        assert!(subscribed_events(Some(&[])).is_err());
        let unknown = subscribed_events(Some(&["build.created".to_owned()])).unwrap_err();
        assert!(unknown.to_string().contains("build.confirmed"), "{unknown}");
        assert!(subscribed_events(Some(&["ping".to_owned()])).is_err());
        let text = events_text(&WebhookEvent::SUBSCRIBABLE);
        assert_eq!(events_of_text(&text), WebhookEvent::SUBSCRIBABLE);
    }

    #[test]
    fn receiver_urls() {
        assert!(receiver_url("https://ci.example.com/hooks/keeper?x=1").is_ok());
        assert!(receiver_url("http://127.0.0.1:9000/").is_ok());
        for bad in [
            "ftp://example.com/",
            "example.com/hook",
            "https://user:pw@example.com/",
            "https://example.com/#top",
            "https://exa mple.com/",
            "https://example.com/\u{7}",
            "",
        ] {
            assert!(receiver_url(bad).is_err(), "{bad:?}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES));
        assert!(receiver_url(&long)
            .unwrap_err()
            .to_string()
            .contains("2048"));
    }

    #[test]
    fn verdicts() {
        assert_eq!(verdict(204), Verdict::Delivered);
        assert_eq!(verdict(500), Verdict::Retry);
        assert_eq!(verdict(503), Verdict::Retry);
        assert_eq!(verdict(429), Verdict::Retry);
        assert_eq!(verdict(404), Verdict::GiveUp);
        assert_eq!(verdict(301), Verdict::GiveUp);
    }
}
