//! Diffs shown with `--diff` and by `plan`: unified diffs of files, and nothing of a secret's
//! content (what counts as secret: `postfleet_core::secrets`).

use similar::TextDiff;

/// Lines of unchanged text shown around each change.
const CONTEXT_LINES: usize = 3;

/// A unified diff from `old` (what the host has; empty for a new file) to `new` (what it will
/// have), with `--- LABEL (current)` / `+++ LABEL (desired)` headers and 3 lines of context.
/// Empty when the texts are equal.
pub fn unified(path_label: &str, old: &str, new: &str) -> String {
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(CONTEXT_LINES)
        .header(
            &format!("{path_label} (current)"),
            &format!("{path_label} (desired)"),
        )
        .to_string()
}

/// Stands in for the diff of a file marked secret: the headers, and no content.
pub fn redacted(path_label: &str) -> String {
    format!(
        "--- {path_label} (current)\n+++ {path_label} (desired)\n\
         content hidden: file is marked secret\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unified_diff_has_headers_hunks_and_three_lines_of_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let new = "a\nb\nc\nd\nE\nf\ng\nh\n";
        assert_eq!(
            unified("/etc/postfix/main.cf", old, new),
            "\
--- /etc/postfix/main.cf (current)
+++ /etc/postfix/main.cf (desired)
@@ -2,7 +2,7 @@
 b
 c
 d
-e
+E
 f
 g
 h
"
        );
    }

    #[test]
    fn unified_diff_of_equal_texts_is_empty() {
        assert_eq!(unified("x", "same\n", "same\n"), "");
    }

    #[test]
    fn unified_diff_of_a_new_file_adds_every_line() {
        let diff = unified("/etc/postfix-newsletter/transport", "", "orange.fr slow:\n");
        assert!(diff.contains("@@ -0,0 +1 @@\n+orange.fr slow:\n"), "{diff}");
    }

    #[test]
    fn unified_diff_notes_a_missing_final_newline() {
        let diff = unified("f", "a\n", "a\nb");
        assert!(diff.contains("+b\n\\ No newline at end of file"), "{diff}");
    }

    #[test]
    fn secret_file_diff_shows_no_content() {
        assert_eq!(
            redacted("/etc/postfix/sasl_passwd"),
            "--- /etc/postfix/sasl_passwd (current)\n+++ /etc/postfix/sasl_passwd (desired)\n\
             content hidden: file is marked secret\n"
        );
    }
}
