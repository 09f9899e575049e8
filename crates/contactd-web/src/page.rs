//! The pages themselves: small, accessible HTML with one stylesheet of the service's own, every
//! value escaped, and the headers that keep them private (no referrer: the link's token is in
//! the address; no caching; no script at all).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use contactd_app::LinkStatus;
use contactd_domain::{Channel, VerificationTarget, masked};

/// Nothing but this service's stylesheet, and forms that post back to it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

pub(crate) const STYLESHEET: &str = "\
:root { color-scheme: light dark; }
body { font: 1.05rem/1.5 system-ui, sans-serif; margin: 0; padding: 2rem 1rem; }
main { max-width: 32rem; margin: 0 auto; }
h1 { font-size: 1.5rem; }
.target { font-family: ui-monospace, monospace; }
button { font: inherit; padding: 0.6rem 1.4rem; border-radius: 0.4rem; border: 2px solid #0b57d0;
         background: #0b57d0; color: #fff; cursor: pointer; }
button:focus-visible { outline: 3px solid #f9ab00; outline-offset: 2px; }
.note { color: GrayText; font-size: 0.95rem; }
";

/// One page: its status, its title and its body's HTML (already escaped).
pub(crate) struct Page {
    status: StatusCode,
    title: &'static str,
    body: String,
}

impl Page {
    pub(crate) fn confirm(target: &VerificationTarget, expires_at: DateTime<Utc>) -> Self {
        Self {
            status: StatusCode::OK,
            title: "Confirm your contact details",
            body: format!(
                "<p>Confirm that {what} <span class=\"target\">{target}</span> is yours and may \
                 receive the notifications of its resource directory.</p>\n\
                 <form method=\"post\"><button type=\"submit\">Confirm</button></form>\n\
                 <p class=\"note\">This link works once, until {expires}. If you did not \
                 expect it, close this page: nothing changes unless you confirm.</p>",
                what = describe(target.channel()),
                target = escape(&masked(target)),
                expires = expires_at.format("%Y-%m-%d %H:%M UTC"),
            ),
        }
    }

    pub(crate) fn confirmed(target: &VerificationTarget) -> Self {
        Self {
            status: StatusCode::OK,
            title: "Confirmed",
            body: format!(
                "<p>Thank you: {what} <span class=\"target\">{target}</span> is confirmed.</p>",
                what = describe(target.channel()),
                target = escape(&masked(target)),
            ),
        }
    }

    /// The page for a link that cannot confirm anything.
    pub(crate) fn for_status(status: &LinkStatus) -> Self {
        match status {
            LinkStatus::Spent => Self {
                status: StatusCode::GONE,
                title: "This link is no longer valid",
                body: "<p>This link has been used already, or a newer message replaced it, or \
                       what it would confirm has changed. Ask for a new verification message if \
                       you still need one.</p>"
                    .to_owned(),
            },
            LinkStatus::Expired => Self {
                status: StatusCode::GONE,
                title: "This link has expired",
                body: "<p>The code of this link has expired. Ask for a new verification \
                       message.</p>"
                    .to_owned(),
            },
            LinkStatus::Unknown | LinkStatus::Valid { .. } => Self::unknown(),
        }
    }

    pub(crate) fn unknown() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            title: "Link not found",
            body: "<p>This link is not known. Check that it was copied whole.</p>".to_owned(),
        }
    }

    pub(crate) fn failure(status: StatusCode) -> Self {
        Self {
            status,
            title: "Something went wrong",
            body: "<p>The service could not answer just now. Nothing was changed; please try \
                   again in a moment.</p>"
                .to_owned(),
        }
    }

    fn html(&self) -> String {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta name=\"referrer\" content=\"no-referrer\">\n\
             <title>{title}</title>\n<link rel=\"stylesheet\" href=\"/static/page.css\">\n\
             </head>\n<body>\n<main>\n<h1>{title}</h1>\n{body}\n</main>\n</body>\n</html>\n",
            title = self.title,
            body = self.body,
        )
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.html()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
    }
}

fn describe(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "the email address",
        Channel::Phone => "the phone number",
    }
}

/// Text as HTML: every character that could end or open markup, escaped.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use contactd_domain::EmailAddress;

    use super::*;

    #[test]
    fn values_are_escaped() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_confirmation_page_shows_the_masked_target_and_a_button_that_posts() {
        let target = VerificationTarget::Email(EmailAddress::parse("&victor@example.com").unwrap());
        let html = Page::confirm(&target, Utc::now()).html();
        assert!(html.contains("&amp;***@example.com"), "{html}");
        assert!(!html.contains("victor"));
        assert!(html.contains("<form method=\"post\"><button type=\"submit\">Confirm</button>"));
        assert!(!html.contains("<script"));
    }
}
