//! Release notes from PR descriptions, and trailer removal.

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
pub fn extract(description: &str, begin: &str, end: &str) -> Note {
    let (begin, end) = (begin.to_lowercase(), end.to_lowercase());
    let text = strip_comments(&description.replace("\r\n", "\n"));
    let mut lines = text.lines();
    if !lines.by_ref().any(|l| l.to_lowercase().contains(&begin)) {
        return Note::Missing;
    }
    let note = lines
        .take_while(|l| !l.to_lowercase().contains(&end))
        .filter(|l| !is_trailer(l))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if says_nothing(&note) {
        Note::NotVisible
    } else {
        Note::Text(note)
    }
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
        extract(text, BEGIN, END)
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
            extract(d, "<notes>", "</notes>"),
            Note::Text("New flag.".into())
        );
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
