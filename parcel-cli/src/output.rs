//! Writing results: text and JSON on stdout, notes and warnings on stderr,
//! aligned tables, and escaping of text that came from other sites.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

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

/// Whether [`print_json`] has written anything in this process.
static JSON_PRINTED: AtomicBool = AtomicBool::new(false);

/// Whether this process has printed JSON on stdout (so that a failure does
/// not add a second document).
pub fn json_printed() -> bool {
    JSON_PRINTED.load(Ordering::Relaxed)
}

/// Writes `value` to stdout as pretty JSON followed by a newline, with the
/// characters [`printable`] escapes written as `\uXXXX` (serde_json escapes
/// only U+0000–U+001F, and JSON is read on terminals too). An object that
/// does not say `"ok"` itself gets `"ok": true`, as a failure's gets
/// `"ok": false`: a script reads one field either way.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<(), CliError> {
    let mut value = serde_json::to_value(value)?;
    if let serde_json::Value::Object(map) = &mut value {
        map.entry("ok").or_insert(serde_json::Value::Bool(true));
    }
    let mut text = escape_json(serde_json::to_string_pretty(&value)?);
    text.push('\n');
    JSON_PRINTED.store(true, Ordering::Relaxed);
    print(&text)
}

/// `json` with every character from U+007F on that [`printable`] would
/// escape written as a JSON `\uXXXX` escape. Such characters appear only
/// inside strings (JSON's own syntax is ASCII), and all lie in the Basic
/// Multilingual Plane, so each is one escape.
fn escape_json(json: String) -> String {
    let escaped = |c: char| u32::from(c) >= 0x7f && unsafe_char(c);
    if !json.chars().any(escaped) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if escaped(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Characters that can change what a terminal shows beyond themselves:
/// control characters (C0, DEL, C1: cursor moves, colours, CSI), and the
/// invisible and bidirectional formatting characters that reorder or hide
/// text (as in "Trojan Source", CVE-2021-42574).
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// A hint or progress note on stderr, left out under `--quiet`.
pub fn note(quiet: bool, text: &str) {
    if !quiet {
        let _ = writeln!(io::stderr(), "{}", printable_lines(text));
    }
}

/// A warning on stderr, shown even under `--quiet`.
pub fn warn(text: &str) {
    let _ = writeln!(io::stderr(), "parcel: warning: {}", printable_lines(text));
}

/// Prints an error on stderr as `main` does, for a command that goes on
/// after it (one of several receipts).
pub fn error(text: &str) {
    let _ = writeln!(io::stderr(), "parcel: error: {}", printable_lines(text));
}

/// [`printable`] for a message of several lines: its own line breaks stay.
/// Messages name paths from packages and media, which may hold anything.
pub fn printable_lines(text: &str) -> Cow<'_, str> {
    if text.split('\n').any(|line| line.chars().any(unsafe_char)) {
        Cow::Owned(
            text.split('\n')
                .map(printable)
                .collect::<Vec<_>>()
                .join("\n"),
        )
    } else {
        Cow::Borrowed(text)
    }
}

/// Text from a catalog or a file written elsewhere, safe to show on a
/// terminal: control characters are escaped so that they cannot move the
/// cursor or recolour the screen, and bidirectional and invisible formatting
/// characters so that they cannot reorder or hide what is shown.
pub fn printable(text: &str) -> Cow<'_, str> {
    if text.chars().any(unsafe_char) {
        Cow::Owned(
            text.chars()
                .map(|c| {
                    if unsafe_char(c) {
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

/// Reads one answer to a prompt from standard input, at most 1 KiB of it
/// (a prompt's answer is a word; nothing read is held beyond that), with
/// surrounding white space trimmed; `None` at the end of input.
pub fn read_answer() -> Result<Option<String>, CliError> {
    use std::io::{BufRead, Read};
    let mut answer = String::new();
    let read = io::stdin()
        .lock()
        .take(1024)
        .read_line(&mut answer)
        .map_err(|source| CliError::Stdio {
            action: "read",
            stream: "input",
            source,
        })?;
    Ok((read > 0).then(|| answer.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_terminal_control_sequences() {
        assert_eq!(printable("plain name"), "plain name");
        assert_eq!(printable("a\u{1b}[31mred"), "a\\u{1b}[31mred");
        assert_eq!(printable("two\nlines"), "two\\nlines");
        assert_eq!(printable("a\u{9b}2J"), "a\\u{9b}2J");
        assert_eq!(printable("RED\u{202e}txt.exe"), "RED\\u{202e}txt.exe");
        assert_eq!(printable("Zürich – 東京"), "Zürich – 東京");
    }

    #[test]
    fn messages_keep_their_lines_and_lose_what_a_path_brought() {
        assert_eq!(
            printable_lines("cannot read esc\u{1b}[31mred:\n  - volume 2"),
            "cannot read esc\\u{1b}[31mred:\n  - volume 2"
        );
        assert_eq!(printable_lines("two\nlines"), "two\nlines");
    }

    #[test]
    fn json_output_escapes_what_printable_escapes_and_stays_the_same_value() {
        let value = serde_json::json!({
            "comment": "hi\u{9b}2J\u{7f}RED\u{202e}txt.exe\u{1b}[0m Zürich",
            "list": ["\u{feff}x", "plain"],
        });
        let text = escape_json(serde_json::to_string_pretty(&value).expect("json"));
        assert!(!text.chars().any(|c| u32::from(c) >= 0x7f && unsafe_char(c)));
        assert!(text.contains("\\u009b") && text.contains("\\u202e") && text.contains("Zürich"));
        let back: serde_json::Value = serde_json::from_str(&text).expect("still JSON");
        assert_eq!(back, value);
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
