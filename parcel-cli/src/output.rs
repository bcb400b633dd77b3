//! Writing results: text and JSON on stdout, notes and warnings on stderr,
//! aligned tables, and escaping of text that came from other sites.

use std::borrow::Cow;
use std::io::{self, Write};

use serde::Serialize;

use crate::error::CliError;

/// Writes `text` to stdout. A closed pipe (`parcel list | head`) is not an error.
pub fn print(text: &str) -> Result<(), CliError> {
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(err) if err.kind() != io::ErrorKind::BrokenPipe => Err(CliError::Stdio {
            action: "write to",
            stream: "output",
            source: err,
        }),
        _ => Ok(()),
    }
}

/// Writes `value` to stdout as pretty JSON followed by a newline.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<(), CliError> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    print(&text)
}

/// A hint or progress note on stderr, left out under `--quiet`.
pub fn note(quiet: bool, text: &str) {
    if !quiet {
        let _ = writeln!(io::stderr(), "{text}");
    }
}

/// A warning on stderr, shown even under `--quiet`.
pub fn warn(text: &str) {
    let _ = writeln!(io::stderr(), "parcel: warning: {text}");
}

/// Text from a catalog or a file written elsewhere, safe to show on a
/// terminal: control characters are escaped so that they cannot move the
/// cursor or recolour the screen.
pub fn printable(text: &str) -> Cow<'_, str> {
    if text.chars().any(char::is_control) {
        Cow::Owned(
            text.chars()
                .map(|c| {
                    if c.is_control() {
                        c.escape_default().to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

/// Rows under a header, columns padded to their widest cell, two spaces apart.
/// Cells should already be [`printable`].
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = width.saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_terminal_control_sequences() {
        assert_eq!(printable("plain name"), "plain name");
        assert_eq!(printable("a\u{1b}[31mred"), "a\\u{1b}[31mred");
        assert_eq!(printable("two\nlines"), "two\\nlines");
    }

    #[test]
    fn table_aligns_columns() {
        let rows = vec![
            vec!["CEN".to_string(), "Central".to_string()],
            vec!["NORTH1".to_string(), "N".to_string()],
        ];
        assert_eq!(
            table(&["CODE", "NAME"], &rows),
            "CODE    NAME\nCEN     Central\nNORTH1  N\n"
        );
    }
}
