//! The offending line of an input file under an error, with a caret under its column, as
//! rustc shows it:
//!
//! ```text
//! error: site.yml:4:7: unknown field `tabels`, expected one of ...
//!   |
//! 4 |       tabels: []
//!   |       ^
//! ```

use postfleet_core::error::SourcePos;

/// The excerpt for `pos`, read from its file; None when the position has no line or the file
/// cannot be read (stdin, a file gone since).
pub fn excerpt(pos: &SourcePos) -> Option<String> {
    if pos.line == 0 {
        return None;
    }
    let text = std::fs::read_to_string(&pos.file).ok()?;
    render(&text, pos.line, pos.column)
}

/// The excerpt of `line` (1-based) of `text`, the caret at `column` (1-based characters;
/// 0: no caret). Tabs are shown as spaces, so the caret stays under its character.
fn render(text: &str, line: usize, column: usize) -> Option<String> {
    let source = text.lines().nth(line - 1)?;
    let shown: String = source
        .chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .collect();
    let gutter = line.to_string();
    let pad = " ".repeat(gutter.len());
    let mut out = format!("{pad} |\n{gutter} | {}\n", shown.trim_end());
    if column > 0 {
        // past the end (an error at the end of the line): under the last character + 1
        let at = (column - 1).min(shown.chars().count());
        out.push_str(&format!("{pad} | {}^\n", " ".repeat(at)));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn the_caret_stands_under_the_column() {
        let text = "- hosts: mx\n  instances:\n\t- name: x\n      tabels: []\n";
        assert_eq!(
            render(text, 4, 7).unwrap(),
            "  |\n4 |       tabels: []\n  |       ^\n"
        );
        // a tab is one column, shown as one space
        assert_eq!(render(text, 3, 2).unwrap(), "  |\n3 |  - name: x\n  |  ^\n");
        // a column past the end, no column, no such line
        assert_eq!(render("ab\n", 1, 9).unwrap(), "  |\n1 | ab\n  |   ^\n");
        assert_eq!(render("ab\n", 1, 0).unwrap(), "  |\n1 | ab\n");
        assert_eq!(render("ab\n", 2, 1), None);
        let long = "x\n".repeat(120);
        assert_eq!(render(&long, 100, 1).unwrap(), "    |\n100 | x\n    | ^\n");
    }
}
