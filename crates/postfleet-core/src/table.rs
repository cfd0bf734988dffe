//! Fleet-wide tables (one row per host, or per host and instance) for the operations commands
//! and the recap: aligned columns for terminals and logs, JSON lines for `--json`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// Aligned columns separated by two spaces, a header line first, one line per row, no trailing
/// spaces. Columns whose every non-empty cell is a number are right-aligned, the rest left.
/// A row shorter than the headers is padded with empty cells; a longer one keeps its extra
/// cells (under an empty header).
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let columns = column_count(headers, rows);
    let aligns: Vec<Align> = (0..columns)
        .map(|col| {
            let mut cells = rows.iter().filter_map(|row| row.get(col)).peekable();
            let numeric = cells.peek().is_some()
                && cells.all(|cell| cell.is_empty() || cell.trim().parse::<f64>().is_ok());
            if numeric {
                Align::Right
            } else {
                Align::Left
            }
        })
        .collect();
    render_aligned(headers, rows, &aligns)
}

/// Like [`render`] with the alignment of each column given (missing entries mean left).
/// Cells may hold colour escape codes: widths count visible characters only.
pub fn render_aligned(headers: &[&str], rows: &[Vec<String>], aligns: &[Align]) -> String {
    let columns = column_count(headers, rows);
    let mut widths = vec![0; columns];
    for (col, header) in headers.iter().enumerate() {
        widths[col] = visible_width(header);
    }
    for row in rows {
        for (col, cell) in row.iter().enumerate() {
            widths[col] = widths[col].max(visible_width(cell));
        }
    }

    let mut out = String::new();
    let header_cells: Vec<&str> = headers.to_vec();
    push_line(&mut out, &header_cells, &widths, aligns);
    for row in rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        push_line(&mut out, &cells, &widths, aligns);
    }
    out
}

fn column_count(headers: &[&str], rows: &[Vec<String>]) -> usize {
    rows.iter()
        .map(Vec::len)
        .chain(std::iter::once(headers.len()))
        .max()
        .unwrap_or(0)
}

fn push_line(out: &mut String, cells: &[&str], widths: &[usize], aligns: &[Align]) {
    let mut line = String::new();
    for (col, width) in widths.iter().enumerate() {
        let cell = cells.get(col).copied().unwrap_or("");
        let pad = " ".repeat(width - visible_width(cell));
        if col > 0 {
            line.push_str("  ");
        }
        match aligns.get(col).copied().unwrap_or(Align::Left) {
            Align::Left => {
                line.push_str(cell);
                line.push_str(&pad);
            }
            Align::Right => {
                line.push_str(&pad);
                line.push_str(cell);
            }
        }
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// Columns `text` takes on a terminal: escape sequences take none.
pub fn visible_width(text: &str) -> usize {
    let mut width = 0;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI sequence: ESC [ parameters... final byte in @..~
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            width += 1;
        }
    }
    width
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(cells: &[&[&str]]) -> Vec<Vec<String>> {
        cells
            .iter()
            .map(|row| row.iter().map(|c| c.to_string()).collect())
            .collect()
    }

    #[test]
    fn columns_line_up_and_numbers_align_right() {
        let table = render(
            &["HOST", "INSTANCE", "STATE", "QUEUE"],
            &rows(&[
                &["mx1.example.org", "-", "active", "0"],
                &["mx1.example.org", "postfix-newsletter", "active", "1520"],
                &["mx22", "-", "inactive", "7"],
            ]),
        );
        assert_eq!(
            table,
            "\
HOST             INSTANCE            STATE     QUEUE
mx1.example.org  -                   active        0
mx1.example.org  postfix-newsletter  active     1520
mx22             -                   inactive      7
"
        );
    }

    #[test]
    fn ragged_rows_do_not_panic_and_keep_alignment() {
        let table = render(&["A", "B"], &rows(&[&["x"], &["yy", "z", "extra"]]));
        assert_eq!(table, "A   B\nx\nyy  z  extra\n");
    }

    #[test]
    fn no_rows_gives_the_header_line() {
        assert_eq!(render(&["HOST", "QUEUE"], &[]), "HOST  QUEUE\n");
    }

    #[test]
    fn coloured_cells_are_measured_without_their_escapes() {
        let red = "\x1b[31mfailed\x1b[0m".to_string();
        let table = render_aligned(
            &["HOST", "STATUS", "N"],
            &[vec!["a".into(), red.clone(), "1".into()]],
            &[Align::Left, Align::Left, Align::Right],
        );
        assert_eq!(table, format!("HOST  STATUS  N\na     {red}  1\n"));
    }
}
