//! A Slack incoming-webhook message: `text` (what notifications and
//! clients without blocks show) and `blocks` (a header, sections, a
//! divider and context blocks). Slack has no folding, so the changes not
//! visible to end users go to a context block (small, grey) after each
//! repository's user-visible ones.
//!
//! Slack's limits are kept here, not left to Slack (which refuses the whole
//! message): at most 50 blocks, section and context text at most 3000
//! characters, header text at most 150, section fields at most 2000; what
//! does not fit is cut, with a note saying where to read it all.

use serde_json::{Value, json};

use super::{Document, Line, Span, cut, linkable};

pub const MAX_BLOCKS: usize = 50;
pub const MAX_TEXT: usize = 3000;
pub const MAX_HEADER: usize = 150;
pub const MAX_FIELD: usize = 2000;
/// Section fields per block.
const MAX_FIELDS: usize = 10;

/// The message's JSON body.
pub fn render(doc: &Document) -> Value {
    let mut blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": cut(&doc.title, MAX_HEADER), "emoji": true }
    })];
    let fields: Vec<Value> = doc
        .facts
        .iter()
        .take(MAX_FIELDS)
        .map(|(label, line)| mrkdwn(fit(&format!("*{label}*\n"), &spans(line), MAX_FIELD)))
        .collect();
    blocks.push(json!({ "type": "section", "fields": fields }));
    if !doc.message.is_empty() {
        let label = if doc.failed { "*Why*\n" } else { "" };
        let quoted: Vec<String> = doc
            .message
            .lines()
            .map(|l| format!("&gt; {}", escape(l)))
            .collect();
        sections(&mut blocks, label, &quoted);
    }
    if !doc.failures.is_empty() {
        let lines: Vec<String> = doc
            .failures
            .iter()
            .map(|l| format!("• {}", spans(l)))
            .collect();
        sections(&mut blocks, "*What failed*\n", &lines);
    }
    for (name, log) in &doc.logs {
        let head = format!("*Log of `{}`*\n", code_text(name));
        // Whole lines from the end, so the fence stays closed.
        let body = escape(log);
        let room = MAX_TEXT.saturating_sub(head.chars().count() + 8);
        let body = if body.chars().count() > room {
            let kept: Vec<&str> = body
                .lines()
                .rev()
                .scan(0, |used, l| {
                    *used += l.chars().count() + 1;
                    (*used <= room).then_some(l)
                })
                .collect();
            kept.into_iter().rev().collect::<Vec<_>>().join("\n")
        } else {
            body
        };
        blocks.push(section(format!(
            "{head}```{}```",
            body.replace("```", "'''")
        )));
    }
    if !doc.repositories.is_empty() || !doc.changelog_notes.is_empty() {
        blocks.push(json!({ "type": "divider" }));
    }
    for repo in &doc.repositories {
        let mut lines: Vec<String> = repo
            .notes
            .iter()
            .map(|n| format!("_{}_", escape(n)))
            .collect();
        if repo.user.is_empty() {
            lines.push(if repo.folded.is_empty() {
                "No changes.".into()
            } else {
                "No user-visible changes.".into()
            });
        }
        lines.extend(repo.user.iter().map(|l| format!("• {}", spans(l))));
        sections(&mut blocks, &format!("{}\n", spans(&repo.heading)), &lines);
        if !repo.folded.is_empty() {
            let head = format!("*{}:* ", repo.folded_summary());
            let items: Vec<String> = repo.folded.iter().map(spans).collect();
            blocks.push(context(joined(&head, &items, " · ")));
        }
    }
    for note in &doc.changelog_notes {
        blocks.push(context(fit("", &format!("_{}_", escape(note)), MAX_TEXT)));
    }
    if blocks.len() > MAX_BLOCKS {
        let dropped = blocks.len() - (MAX_BLOCKS - 1);
        blocks.truncate(MAX_BLOCKS - 1);
        blocks.push(context(format!(
            "_{dropped} more blocks not shown; all of it: `{}`_",
            code_text(&doc.more)
        )));
    }
    let text = format!("{}\n{}", escape(&doc.title), escape(&doc.message));
    json!({ "text": fit("", &text, MAX_TEXT), "blocks": blocks })
}

fn mrkdwn(text: String) -> Value {
    json!({ "type": "mrkdwn", "text": text })
}

fn section(text: String) -> Value {
    json!({ "type": "section", "text": mrkdwn(text) })
}

fn context(text: String) -> Value {
    json!({ "type": "context", "elements": [mrkdwn(text)] })
}

/// `lines` in as few sections as fit, the first one starting with `head`;
/// a line too long for a section of its own is cut.
fn sections(blocks: &mut Vec<Value>, head: &str, lines: &[String]) {
    let mut text = head.to_owned();
    let mut has_line = false;
    for line in lines {
        let line = fit("", line, MAX_TEXT);
        let needed = text.chars().count() + line.chars().count() + 1;
        if has_line && needed > MAX_TEXT {
            blocks.push(section(std::mem::take(&mut text)));
            has_line = false;
        }
        if has_line {
            text.push('\n');
        }
        text = fit("", &format!("{text}{line}"), MAX_TEXT);
        has_line = true;
    }
    if has_line || !text.is_empty() {
        blocks.push(section(text));
    }
}

/// `head` and as many `items` as fit in one text, with how many did not.
fn joined(head: &str, items: &[String], separator: &str) -> String {
    let mut text = head.to_owned();
    for (i, item) in items.iter().enumerate() {
        let rest = items.len() - i;
        let more = format!("{separator}… and {rest} more");
        let sep = if i == 0 { "" } else { separator };
        let len = text.chars().count() + sep.chars().count() + item.chars().count();
        // Room for the "and N more" of the items after this one.
        let reserve = if rest > 1 { more.chars().count() } else { 0 };
        if len + reserve > MAX_TEXT {
            if i == 0 {
                // Not even the first fits whole: cut it, say the rest.
                let room = MAX_TEXT.saturating_sub(text.chars().count() + more.chars().count());
                let cut_item = fit("", item, room);
                text.push_str(&cut_item);
                if rest > 1 {
                    text.push_str(&format!("{separator}… and {} more", rest - 1));
                }
            } else {
                text.push_str(&more);
            }
            return text;
        }
        text.push_str(sep);
        text.push_str(item);
    }
    text
}

/// `head` and `text` within `max` characters. When cut, the whole of
/// `text` is re-rendered as plain escaped words, so no entity or link is
/// split.
fn fit(head: &str, text: &str, max: usize) -> String {
    let joined = format!("{head}{text}");
    if joined.chars().count() <= max {
        return joined;
    }
    let plain = unescape_plain(text);
    let room = max.saturating_sub(head.chars().count());
    let escaped_cut = |take: usize| escape(&cut(&plain, take));
    // The most characters of the words whose escaped form fits.
    let (mut fits, mut too_many) = (0, plain.chars().count());
    while fits + 1 < too_many {
        let mid = fits + (too_many - fits) / 2;
        if escaped_cut(mid).chars().count() <= room {
            fits = mid;
        } else {
            too_many = mid;
        }
    }
    format!("{head}{}", escaped_cut(fits))
}

/// Rendered mrkdwn back to words: links to their text, entities to their
/// characters. Only used on what this module rendered.
fn unescape_plain(mrkdwn: &str) -> String {
    let mut out = String::new();
    let mut rest = mrkdwn;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('>') {
            Some(end) => {
                let link = &after[..end];
                out.push_str(link.split_once('|').map_or(link, |(_, text)| text));
                rest = &after[end + 1..];
            }
            None => {
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Spans as mrkdwn.
fn spans(line: &Line) -> String {
    let mut out = String::new();
    for span in line {
        match span {
            Span::Text(t) => out.push_str(&escape(t)),
            Span::Strong(t) => out.push_str(&format!("*{}*", escape(&t.replace('*', "")))),
            Span::Code(t) => out.push_str(&format!("`{}`", code_text(t))),
            Span::Link { text, url } if linkable(url) => out.push_str(&format!(
                "<{}|{}>",
                url.replace('&', "&amp;"),
                escape(&text.replace('|', "/"))
            )),
            Span::Link { text, .. } => out.push_str(&escape(text)),
        }
    }
    out
}

fn code_text(t: &str) -> String {
    escape(&t.replace('`', "'"))
}

/// Slack's escaping: `&`, `<` and `>` are the only control characters of
/// its markup; escaped, a commit cannot mention `<!channel>`, link, or
/// break out of a link.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::tests::{document, first_repository, huge_changelog, rolled_back};
    use super::*;
    use crate::plan::ReleasePhase;

    /// Slack's documented shape and limits, as a receiver would check them.
    pub(crate) fn check_shape(body: &Value) -> Result<(), String> {
        let text = body["text"].as_str().ok_or("text is not a string")?;
        if text.is_empty() || text.chars().count() > MAX_TEXT {
            return Err(format!("text of {} characters", text.chars().count()));
        }
        let blocks = body["blocks"].as_array().ok_or("blocks is not an array")?;
        if blocks.is_empty() || blocks.len() > MAX_BLOCKS {
            return Err(format!("{} blocks", blocks.len()));
        }
        let text_object = |t: &Value, max: usize| -> Result<(), String> {
            let kind = t["type"].as_str().unwrap_or("");
            let s = t["text"].as_str().ok_or(format!("no text in {t}"))?;
            if !["mrkdwn", "plain_text"].contains(&kind) || s.is_empty() || s.chars().count() > max
            {
                return Err(format!("bad text object {kind} of {}", s.chars().count()));
            }
            Ok(())
        };
        for b in blocks {
            match b["type"].as_str() {
                Some("header") => {
                    if b["text"]["type"] != "plain_text" {
                        return Err("header text is not plain_text".into());
                    }
                    text_object(&b["text"], MAX_HEADER)?;
                }
                Some("section") => {
                    if let Some(fields) = b.get("fields") {
                        let fields = fields.as_array().ok_or("fields")?;
                        if fields.len() > MAX_FIELDS {
                            return Err("too many fields".into());
                        }
                        for f in fields {
                            text_object(f, MAX_FIELD)?;
                        }
                    } else {
                        text_object(&b["text"], MAX_TEXT)?;
                    }
                }
                Some("context") => {
                    let elements = b["elements"].as_array().ok_or("elements")?;
                    if elements.is_empty() || elements.len() > 10 {
                        return Err("context elements".into());
                    }
                    for e in elements {
                        text_object(e, MAX_TEXT)?;
                    }
                }
                Some("divider") => {}
                other => return Err(format!("unknown block type {other:?}")),
            }
        }
        Ok(())
    }

    fn all_text(body: &Value) -> String {
        let mut out = String::new();
        fn walk(v: &Value, out: &mut String) {
            match v {
                Value::String(s) => {
                    out.push_str(s);
                    out.push('\n');
                }
                Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
                Value::Object(o) => o.values().for_each(|v| walk(v, out)),
                _ => {}
            }
        }
        walk(body, &mut out);
        out
    }

    #[test]
    fn a_rollback_says_why_and_which_check_with_value_and_bounds() {
        let (release, entry) = rolled_back();
        let body = render(&document(&release, &entry));
        check_shape(&body).unwrap();
        let text = all_text(&body);
        assert!(
            body["text"]
                .as_str()
                .unwrap()
                .contains("rolled back in production")
        );
        for expected in [
            "*Why*\n&gt; metric error-rate = 0.31 &gt; max 0.05",
            "• metric `error-rate`: value `0.31`, bounds `max 0.05` (3 failed in a row, 12 measurements)",
            "• smoke test `checkout` (Job `train-1-production-checkout`): BackoffLimitExceeded",
            "&lt;script&gt;alert(1)&lt;/script&gt;",
        ] {
            assert!(text.contains(expected), "{expected:?} in {text}");
        }
        assert!(!text.contains("staging-only") && !text.contains("latency"));
    }

    #[test]
    fn user_visible_changes_come_first_and_internal_ones_are_folded() {
        let (release, mut entry) = rolled_back();
        entry.phase = ReleasePhase::Released;
        let body = render(&document(&release, &entry));
        check_shape(&body).unwrap();
        let blocks = body["blocks"].as_array().unwrap();
        let types: Vec<&str> = blocks.iter().filter_map(|b| b["type"].as_str()).collect();
        assert_eq!(
            types,
            [
                "header", "section", "section", "divider", "section", "context"
            ]
        );
        let user = blocks[4]["text"]["text"].as_str().unwrap();
        assert!(user.starts_with("*packit-service* `aaaaaaaaaaaa..bbbbbbbbbbbb`, 7 commits\n"));
        assert!(user.contains(
            "• User-visible change 0 (<https://github.com/packit/packit/pull/100|#100>)"
        ));
        let folded = blocks[5]["elements"][0]["text"].as_str().unwrap();
        assert!(folded.starts_with("*3 changes not visible to end users:* Internal change 0"));
        assert!(!all_text(&body).contains("What failed"));
    }

    #[test]
    fn commit_text_cannot_mention_link_or_break_out() {
        let (mut release, mut entry) = rolled_back();
        entry.phase = ReleasePhase::Staging;
        let repo = first_repository(&mut release);
        repo.user[0].note = "Ping <!channel> & <https://evil.example|click> *now*".into();
        repo.user[0].link = Some("https://evil.example/a|b>".into());
        repo.name = "repo`name*".into();
        let body = render(&document(&release, &entry));
        check_shape(&body).unwrap();
        let text = all_text(&body);
        assert!(text.contains(
            "• Ping &lt;!channel&gt; &amp; &lt;https://evil.example|click&gt; *now* (#100)"
        ));
        assert!(!text.contains("<!channel>") && !text.contains("evil.example/a"));
        assert!(text.contains("*repo`name*"), "{text}");
    }

    #[test]
    fn a_huge_changelog_stays_within_slack_limits_and_says_so() {
        let (mut release, mut entry) = rolled_back();
        entry.phase = ReleasePhase::Production;
        let mut log = huge_changelog(400, 30, &"<&>".repeat(200));
        log.truncated = true;
        release.status.as_mut().unwrap().changelog = Some(log);
        entry.message = "&".repeat(2048);
        let body = render(&document(&release, &entry));
        check_shape(&body).unwrap();
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), MAX_BLOCKS);
        let last = blocks[MAX_BLOCKS - 1]["elements"][0]["text"]
            .as_str()
            .unwrap();
        assert!(
            last.contains(
                "more blocks not shown; all of it: `kubectl packit changelog train-1 -n packit`"
            ),
            "{last}"
        );
        // Escaped entities are never cut in half.
        let text = all_text(&body);
        assert!(
            !text.contains("&am\n") && !text.contains("&a…"),
            "cut entity"
        );
        let folded = blocks.iter().find(|b| b["type"] == "context").unwrap()["elements"][0]["text"]
            .as_str()
            .unwrap();
        assert!(folded.contains("more"), "{folded}");
    }

    #[test]
    fn cutting_keeps_entities_and_links_whole() {
        let long = format!("{} <https://x.example/|y>", "&".repeat(50));
        let cut = fit("", &escape(&long), 40);
        assert!(cut.chars().count() <= 40);
        assert!(
            cut.starts_with("&amp;&amp;") && cut.ends_with("&amp;…"),
            "{cut}"
        );
    }
}
