//! Release notes from PR descriptions, and trailer removal.

use std::sync::LazyLock;

use regex::Regex;

/// Default markers around the release note in a PR description.
pub const BEGIN: &str = "RELEASE NOTES BEGIN";
pub const END: &str = "RELEASE NOTES END";

/// What a PR description says about its release note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// A note to publish.
    Text(String),
    /// The markers are there but say "N/A", "none" or nothing: not
    /// user-visible.
    NotVisible,
    /// No markers.
    Missing,
}

// Trailer keys git and the forges add; a line starting with one of these is
// metadata about the change, not part of it.
const TRAILERS: &[&str] = &[
    "signed-off-by",
    "reviewed-by",
    "co-authored-by",
    "acked-by",
    "tested-by",
    "reported-by",
    "suggested-by",
    "helped-by",
    "reviewed-on",
    "approved-by",
    "change-id",
    "cc",
];

/// Whether `line` is a commit trailer such as `Signed-off-by: A <a@b>`.
pub fn is_trailer(line: &str) -> bool {
    let Some((key, value)) = line.trim().split_once(':') else {
        return false;
    };
    !value.trim().is_empty() && TRAILERS.contains(&key.trim().to_ascii_lowercase().as_str())
}

/// `text` without trailer lines.
pub fn strip_trailers(text: &str) -> String {
    text.lines()
        .filter(|l| !is_trailer(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The note between `begin` and `end` (lines containing the markers,
/// case-insensitively); an unterminated note runs to the end of the
/// description. Lines are joined with spaces, HTML comments (PR templates)
/// and trailers dropped.
///
/// A note that only says there is nothing to say ("Empty on purpose", "No
/// user-visible change here.", see [`is_placeholder`]) or that repeats one
/// of `placeholders` (the example notes of the repository's PR templates,
/// see [`template_placeholders`]) is no note: [`Note::Missing`].
pub fn extract(description: &str, begin: &str, end: &str, placeholders: &[String]) -> Note {
    let Some(note) = between(description, begin, end) else {
        return Note::Missing;
    };
    if says_nothing(&note) {
        return Note::NotVisible;
    }
    let key = normalise(&note);
    if is_placeholder(&note) || placeholders.contains(&key) {
        Note::Missing
    } else {
        Note::Text(note)
    }
}

/// The text between the markers, on one line; `None` without a begin
/// marker.
fn between(description: &str, begin: &str, end: &str) -> Option<String> {
    let (begin, end) = (begin.to_lowercase(), end.to_lowercase());
    let text = strip_comments(&description.replace("\r\n", "\n"));
    let mut lines = text.lines();
    if !lines.by_ref().any(|l| l.to_lowercase().contains(&begin)) {
        return None;
    }
    Some(
        lines
            .take_while(|l| !l.to_lowercase().contains(&end))
            .filter(|l| !is_trailer(l))
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// The example notes of PR templates (their text between the markers), in
/// the form [`extract`] compares them; templates without a note or whose
/// note already says nothing are left out.
pub fn template_placeholders(templates: &[String], begin: &str, end: &str) -> Vec<String> {
    let mut out: Vec<String> = templates
        .iter()
        .filter_map(|t| between(t, begin, end))
        .filter(|n| !says_nothing(n))
        .map(|n| normalise(&n))
        .filter(|n| !n.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Lower case, words only: every run of characters that are not letters or
/// digits becomes one space.
fn normalise(text: &str) -> String {
    let lower = text.to_lowercase();
    lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:",
        r"(?:this is |this was |left |intentionally |deliberately )*(?:left )?empty(?: on purpose| intentionally| deliberately)?",
        r"|not applicable|does not apply|n a",
        r"|nothing(?: to (?:note|add|mention|report|see|say))?(?: here)?",
        r"|no (?:release )?notes? (?:needed|required|necessary)",
        r"|no (?:release )?notes?",
        r"|no (?:(?:user|end user|customer) ?(?:visible|facing) |functional |visible |relevant )?changes?(?: here| in this (?:pr|pull request))?",
        r"|no changelog(?: entry)?(?: needed)?",
        r"|tbd|todo",
        r")$"
    ))
    .unwrap_or_else(|e| unreachable!("{e}"))
});

/// Whether `note` only says that there is nothing to say: "Empty on
/// purpose", "No user-visible change(s) here.", "Not applicable", "Nothing
/// to note", in any case and punctuation.
pub fn is_placeholder(note: &str) -> bool {
    PLACEHOLDER.is_match(&normalise(note))
}

/// "N/A", "none", "-" and the like.
fn says_nothing(note: &str) -> bool {
    let word: String = note
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    matches!(word.as_str(), "" | "na" | "none" | "nothing" | "no")
}

fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        match rest[start..].find("-->") {
            Some(end) => rest = &rest[start + end + 3..],
            None => rest = "",
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(text: &str) -> Note {
        extract(text, BEGIN, END, &[])
    }

    #[test]
    fn note_between_markers() {
        let d = "Fixes #1\n\nRELEASE NOTES BEGIN\npackit init now adds\nworking directories.\nRELEASE NOTES END\n\nReviewed-by: A";
        assert_eq!(
            note(d),
            Note::Text("packit init now adds working directories.".into())
        );
    }

    #[test]
    fn na_none_and_empty_are_not_visible() {
        for d in [
            "RELEASE NOTES BEGIN\r\n\r\nN/A\r\n\r\nRELEASE NOTES END",
            "RELEASE NOTES BEGIN\nnone\nRELEASE NOTES END",
            "RELEASE NOTES BEGIN\n\nRELEASE NOTES END",
            "RELEASE NOTES BEGIN\n<!-- write the note here -->\nRELEASE NOTES END",
        ] {
            assert_eq!(note(d), Note::NotVisible, "{d:?}");
        }
    }

    #[test]
    fn no_markers_is_missing() {
        assert_eq!(note("Just a description"), Note::Missing);
    }

    #[test]
    fn custom_markers_and_trailers_inside() {
        let d = "<notes>\nNew flag.\nSigned-off-by: A <a@b>\n</notes>";
        assert_eq!(
            extract(d, "<notes>", "</notes>", &[]),
            Note::Text("New flag.".into())
        );
    }

    #[test]
    fn placeholders_are_no_note() {
        for text in [
            "Empty on purpose",
            "empty on purpose.",
            "No user-visible change here.",
            "No user-visible changes",
            "NO USER VISIBLE CHANGES!",
            "Not applicable",
            "not applicable.",
            "Nothing to note",
            "_Nothing to note._",
            "No release note needed",
            "Intentionally left empty",
        ] {
            let d = format!("RELEASE NOTES BEGIN\n{text}\nRELEASE NOTES END");
            assert_eq!(note(&d), Note::Missing, "{text}");
        }
        for text in [
            "Empty directories are now kept.",
            "No longer crashes on empty specfiles.",
            "Nothing is uploaded twice any more.",
        ] {
            let d = format!("RELEASE NOTES BEGIN\n{text}\nRELEASE NOTES END");
            assert_eq!(note(&d), Note::Text(text.into()), "{text}");
        }
    }

    #[test]
    fn the_templates_example_note_is_no_note() {
        let template = "Fixes\n\nRELEASE NOTES BEGIN\nPackit now supports automatic \
                        ordering of ☕ after all checks pass.\nRELEASE NOTES END\n";
        let placeholders = template_placeholders(&[template.to_owned()], BEGIN, END);
        assert_eq!(placeholders.len(), 1);
        let pr = "Fixes #12\n\nRELEASE NOTES BEGIN\nPackit now supports automatic ordering\r\nof ☕ after all checks pass\nRELEASE NOTES END";
        assert_eq!(extract(pr, BEGIN, END, &placeholders), Note::Missing);
        let real = "RELEASE NOTES BEGIN\nPackit now orders tea.\nRELEASE NOTES END";
        assert_eq!(
            extract(real, BEGIN, END, &placeholders),
            Note::Text("Packit now orders tea.".into())
        );
        // A template whose note says nothing adds nothing.
        let empty = "RELEASE NOTES BEGIN\nN/A\nRELEASE NOTES END".to_owned();
        assert!(template_placeholders(&[empty], BEGIN, END).is_empty());
    }

    #[test]
    fn trailers() {
        assert!(is_trailer(
            "Signed-off-by: Nikola Forró <nforro@redhat.com>"
        ));
        assert!(is_trailer("Reviewed-by: Matej Focko"));
        assert!(is_trailer("Co-authored-by: A <a@b>"));
        assert!(!is_trailer("Fixes: the build"));
        assert!(!is_trailer("Reviewed-by:"));
        assert_eq!(strip_trailers("a\nReviewed-by: X\nb"), "a\nb");
    }
}
