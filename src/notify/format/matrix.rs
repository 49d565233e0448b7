//! A Matrix `m.room.message` event for the client-server API: `msgtype`,
//! a plain-text `body` and an HTML `formatted_body`
//! (`org.matrix.custom.html`) in which the changes not visible to end users
//! are folded in `<details>`. Everything is HTML-escaped; links only for
//! `http(s)` URLs.
//!
//! A Matrix event may not exceed 65536 bytes, envelope included. The
//! content is kept well below: each part has a byte budget, filled in
//! order (outcome first, then what failed, then the changelog), and what
//! does not fit is counted in a closing note.

use std::fmt::Write as _;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use super::{Document, Line, Span, linkable};
use crate::api::deployment::MatrixMsgtype;

/// The serialized content stays below this: the event's envelope (sender,
/// room, ids, signatures) takes the rest of Matrix's 64 KiB.
pub const MAX_CONTENT_BYTES: usize = 48 * 1024;
/// The first budgets of the HTML and the plain text; halved until the
/// serialized content fits.
const HTML_BUDGET: usize = 32 * 1024;
const PLAIN_BUDGET: usize = 14 * 1024;
/// Kept free for closing tags and the closing note.
const RESERVE: usize = 400;

/// Everything but RFC 3986's unreserved characters: `!` and `:` of a room
/// id are escaped too, as the Matrix spec asks of path parameters.
const PATH_PARAMETER: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `PUT` here sends the event; the same `txn` sends it once, however often
/// it is retried.
pub fn send_url(homeserver: &str, room_id: &str, txn: &str) -> String {
    format!(
        "{}/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
        homeserver.trim_end_matches('/'),
        utf8_percent_encode(room_id, PATH_PARAMETER),
        utf8_percent_encode(txn, PATH_PARAMETER),
    )
}

/// The event's content.
pub fn render(doc: &Document, msgtype: MatrixMsgtype) -> Value {
    let (mut html_budget, mut plain_budget) = (HTML_BUDGET, PLAIN_BUDGET);
    loop {
        let content = json!({
            "msgtype": msgtype.as_str(),
            "body": plain(doc, plain_budget),
            "format": "org.matrix.custom.html",
            "formatted_body": html(doc, html_budget),
        });
        let size = serde_json::to_vec(&content).map_or(usize::MAX, |b| b.len());
        // Escaping in JSON can outgrow the budgets only on odd input;
        // the outcome and the note always fit in the smallest budgets.
        if size <= MAX_CONTENT_BYTES || html_budget <= 2 * RESERVE {
            return content;
        }
        html_budget /= 2;
        plain_budget /= 2;
    }
}

/// Text filled up to a byte budget; what does not fit is counted.
struct Budgeted {
    out: String,
    budget: usize,
    omitted: usize,
}

impl Budgeted {
    fn new(budget: usize) -> Self {
        Budgeted {
            out: String::new(),
            budget,
            omitted: 0,
        }
    }

    /// Adds `s` if it fits, else counts it as left out.
    fn add(&mut self, s: &str) -> bool {
        if self.out.len() + s.len() + RESERVE > self.budget {
            self.omitted += 1;
            return false;
        }
        self.out.push_str(s);
        true
    }

    /// Adds `s` whatever the budget: closing tags, the outcome's title.
    fn force(&mut self, s: &str) {
        self.out.push_str(s);
    }
}

fn html(doc: &Document, budget: usize) -> String {
    let mut b = Budgeted::new(budget);
    b.force(&format!("<h4>{}</h4>", escape(&doc.title)));
    let facts: Vec<String> = doc
        .facts
        .iter()
        .map(|(label, line)| format!("<strong>{label}:</strong> {}", spans_html(line)))
        .collect();
    b.add(&format!("<p>{}</p>", facts.join("<br>")));
    if !doc.message.is_empty() {
        let label = if doc.failed {
            "<p><strong>Why</strong></p>"
        } else {
            ""
        };
        let message = escape(&doc.message).replace('\n', "<br>");
        b.add(&format!("{label}<blockquote>{message}</blockquote>"));
    }
    list_html(&mut b, "<p><strong>What failed</strong></p>", &doc.failures);
    for (name, log) in &doc.logs {
        b.add(&format!(
            "<p>Log of <code>{}</code>:</p><pre><code>{}</code></pre>",
            escape(name),
            escape(log)
        ));
    }
    for repo in &doc.repositories {
        if !b.add(&format!("<p>{}</p>", spans_html(&repo.heading))) {
            b.omitted += repo.user.len() + repo.folded.len();
            continue;
        }
        for note in &repo.notes {
            b.add(&format!("<p><em>{}</em></p>", escape(note)));
        }
        if repo.user.is_empty() {
            b.add(if repo.folded.is_empty() {
                "<p>No changes.</p>"
            } else {
                "<p>No user-visible changes.</p>"
            });
        }
        list_html(&mut b, "", &repo.user);
        if !repo.folded.is_empty() {
            let summary = format!(
                "<details><summary>{}</summary>",
                escape(&repo.folded_summary())
            );
            if b.add(&summary) {
                list_html(&mut b, "", &repo.folded);
                b.force("</details>");
            } else {
                b.omitted += repo.folded.len();
            }
        }
    }
    for note in &doc.changelog_notes {
        b.add(&format!("<p><em>{}</em></p>", escape(note)));
    }
    if b.omitted > 0 {
        let n = b.omitted;
        b.force(&format!(
            "<p><em>{n} more item{} not shown; all of it: <code>{}</code></em></p>",
            if n == 1 { "" } else { "s" },
            escape(&doc.more)
        ));
    }
    b.out
}

/// `head` and a list of `lines`, as many as fit.
fn list_html(b: &mut Budgeted, head: &str, lines: &[Line]) {
    if lines.is_empty() {
        return;
    }
    if !b.add(&format!("{head}<ul>")) {
        b.omitted += lines.len() - 1;
        return;
    }
    for line in lines {
        b.add(&format!("<li>{}</li>", spans_html(line)));
    }
    b.force("</ul>");
}

fn plain(doc: &Document, budget: usize) -> String {
    let mut b = Budgeted::new(budget);
    b.force(&doc.title);
    b.force("\n");
    let mut facts = String::new();
    for (label, line) in &doc.facts {
        let _ = writeln!(facts, "{label}: {}", spans_plain(line));
    }
    b.add(&facts);
    if !doc.message.is_empty() {
        let label = if doc.failed { "Why: " } else { "" };
        b.add(&format!("\n{label}{}\n", doc.message));
    }
    list_plain(&mut b, "\nWhat failed:\n", &doc.failures);
    for (name, log) in &doc.logs {
        b.add(&format!("\nLog of {name}:\n{log}\n"));
    }
    for repo in &doc.repositories {
        if !b.add(&format!("\n{}\n", spans_plain(&repo.heading))) {
            b.omitted += repo.user.len() + repo.folded.len();
            continue;
        }
        for note in &repo.notes {
            b.add(&format!("Note: {note}\n"));
        }
        if repo.user.is_empty() {
            b.add(if repo.folded.is_empty() {
                "No changes.\n"
            } else {
                "No user-visible changes.\n"
            });
        }
        list_plain(&mut b, "", &repo.user);
        let head = format!("{}:\n", repo.folded_summary());
        list_plain(&mut b, &head, &repo.folded);
    }
    for note in &doc.changelog_notes {
        b.add(&format!("\n{note}\n"));
    }
    if b.omitted > 0 {
        let n = b.omitted;
        b.force(&format!(
            "\n{n} more item{} not shown; all of it: {}\n",
            if n == 1 { "" } else { "s" },
            doc.more
        ));
    }
    b.out
}

fn list_plain(b: &mut Budgeted, head: &str, lines: &[Line]) {
    if lines.is_empty() {
        return;
    }
    if !head.is_empty() && !b.add(head) {
        b.omitted += lines.len() - 1;
        return;
    }
    for line in lines {
        b.add(&format!("- {}\n", spans_plain(line)));
    }
}

fn spans_html(line: &Line) -> String {
    let mut out = String::new();
    for span in line {
        match span {
            Span::Text(t) => out.push_str(&escape(t)),
            Span::Strong(t) => out.push_str(&format!("<strong>{}</strong>", escape(t))),
            Span::Code(t) => out.push_str(&format!("<code>{}</code>", escape(t))),
            Span::Link { text, url } if linkable(url) => {
                out.push_str(&format!("<a href=\"{}\">{}</a>", escape(url), escape(text)))
            }
            Span::Link { text, .. } => out.push_str(&escape(text)),
        }
    }
    out
}

fn spans_plain(line: &Line) -> String {
    line.iter()
        .map(|span| match span {
            Span::Text(t) | Span::Strong(t) | Span::Link { text: t, .. } => t.as_str(),
            Span::Code(t) => t.as_str(),
        })
        .collect()
}

/// HTML-escapes text and attribute values alike.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::{document, first_repository, huge_changelog, rolled_back};
    use super::*;
    use crate::plan::ReleasePhase;

    #[test]
    fn the_room_and_transaction_are_path_parameters() {
        assert_eq!(
            send_url("https://matrix.example.org/", "!abc:example.org", "0a1b"),
            "https://matrix.example.org/_matrix/client/v3/rooms/%21abc%3Aexample.org/send/m.room.message/0a1b"
        );
        assert!(
            send_url("https://m.example", "!a/../b:x?y#z", "t")
                .ends_with("/rooms/%21a%2F..%2Fb%3Ax%3Fy%23z/send/m.room.message/t")
        );
    }

    #[test]
    fn a_rollback_says_why_and_which_check_with_value_and_bounds() {
        let (release, entry) = rolled_back();
        let content = render(&document(&release, &entry), MatrixMsgtype::Notice);
        assert_eq!(content["msgtype"], "m.notice");
        assert_eq!(content["format"], "org.matrix.custom.html");
        let html = content["formatted_body"].as_str().unwrap();
        let body = content["body"].as_str().unwrap();
        assert!(html.starts_with("<h4>⏪ train-1 rolled back in production</h4>"));
        assert!(html.contains(
            "<p><strong>Why</strong></p><blockquote>metric error-rate = 0.31 &gt; max 0.05"
        ));
        assert!(html.contains(
            "<li>metric <code>error-rate</code>: value <code>0.31</code>, bounds <code>max 0.05</code> (3 failed in a row, 12 measurements)</li>"
        ));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("<script>"));
        assert!(body.contains("Why: metric error-rate = 0.31 > max 0.05"));
        assert!(body.contains(
            "- metric error-rate: value 0.31, bounds max 0.05 (3 failed in a row, 12 measurements)"
        ));
    }

    #[test]
    fn internal_changes_are_folded_after_the_user_visible_ones() {
        let (release, mut entry) = rolled_back();
        entry.phase = ReleasePhase::Released;
        let content = render(&document(&release, &entry), MatrixMsgtype::Text);
        assert_eq!(content["msgtype"], "m.text");
        let html = content["formatted_body"].as_str().unwrap();
        let user = html.find("User-visible change 1").unwrap();
        let details = html
            .find("<details><summary>3 changes not visible to end users</summary><ul><li>Internal change 0")
            .unwrap();
        assert!(user < details, "{html}");
        assert!(html.contains(
            "<li>User-visible change 0 (<a href=\"https://github.com/packit/packit/pull/100\">#100</a>)</li>"
        ));
        assert!(html.ends_with("</ul></details>"), "{html}");
        assert!(!html.contains("What failed"));
        let body = content["body"].as_str().unwrap();
        assert!(body.contains("3 changes not visible to end users:\n- Internal change 0 (#500)"));
    }

    #[test]
    fn commit_text_is_escaped_and_only_web_links_are_links() {
        let (mut release, mut entry) = rolled_back();
        entry.phase = ReleasePhase::Staging;
        let repo = first_repository(&mut release);
        repo.user[0].note = "<img src=x onerror=alert(1)> & \"quoted\"".into();
        repo.user[1].link = Some("javascript:alert(1)".into());
        repo.internal[0].note = "</details><b>escape</b>".into();
        let html = render(&document(&release, &entry), MatrixMsgtype::Notice)["formatted_body"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt; &amp; &quot;quoted&quot;"));
        assert!(!html.contains("javascript:") && !html.contains("<img"));
        assert!(html.contains("&lt;/details&gt;&lt;b&gt;escape&lt;/b&gt;"));
        assert_eq!(
            html.matches("<details>").count(),
            html.matches("</details>").count()
        );
    }

    #[test]
    fn a_huge_changelog_stays_within_the_event_size_and_says_so() {
        let (mut release, mut entry) = rolled_back();
        entry.phase = ReleasePhase::Production;
        let log = huge_changelog(100, 20, &"\"<&>\"".repeat(50));
        release.status.as_mut().unwrap().changelog = Some(log);
        let content = render(&document(&release, &entry), MatrixMsgtype::Notice);
        let size = serde_json::to_vec(&content).unwrap().len();
        assert!(size <= MAX_CONTENT_BYTES, "{size}");
        let html = content["formatted_body"].as_str().unwrap();
        assert!(
            html.contains("more items not shown; all of it: <code>kubectl packit changelog train-1 -n packit</code>"),
            "{}",
            &html[html.len().saturating_sub(300)..]
        );
        for tag in ["ul", "details", "p"] {
            assert_eq!(
                html.matches(&format!("<{tag}>")).count(),
                html.matches(&format!("</{tag}>")).count(),
                "{tag}"
            );
        }
        let body = content["body"].as_str().unwrap();
        assert!(body.contains("more items not shown"));
        assert!(html.contains("<h4>🚀 train-1 deployed to production</h4>"));
    }
}
