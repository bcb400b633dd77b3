//! The strict text receipts (FORMAT.md §9) and repair requests (§13.8) are
//! written in: a first line naming the kind and version, `name: value` lines
//! in a fixed order, then `signature: ` and 128 hex digits over every byte
//! before that line. This splits such a text and reads its lines; each kind
//! then checks its values, its canonical form and the signature itself.

/// A signed text taken apart: its signed body, read line by line, and its
/// signature line.
pub(crate) struct SignedText<'a> {
    /// The signed bytes: everything before the signature line.
    pub(crate) body: &'a str,
    lines: std::str::Lines<'a>,
    signature_line: &'a str,
}

impl<'a> SignedText<'a> {
    /// Splits `bytes`, at most `max_len` of them in UTF-8 with `first_line`
    /// first (`too_long` says what the limit is, for the message).
    pub(crate) fn split(
        bytes: &'a [u8],
        max_len: usize,
        too_long: &str,
        first_line: &str,
    ) -> Result<SignedText<'a>, String> {
        if bytes.len() > max_len {
            return Err(format!("longer than {too_long}"));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
        let sig_at = text
            .find("\nsignature: ")
            .ok_or_else(|| "no signature line".to_owned())?
            + 1;
        let (body, signature_line) = text.split_at(sig_at);
        let mut lines = body.lines();
        if lines.next() != Some(first_line) {
            return Err(format!("first line is not `{first_line}`"));
        }
        Ok(SignedText {
            body,
            lines,
            signature_line,
        })
    }

    /// The value of the next line, which must be `name: value`.
    pub(crate) fn field(&mut self, name: &str) -> Result<&'a str, String> {
        let line = self
            .lines
            .next()
            .ok_or_else(|| format!("missing `{name}:`"))?;
        line.strip_prefix(name)
            .and_then(|r| r.strip_prefix(": "))
            .ok_or_else(|| format!("expected `{name}:`, found {line:?}"))
    }

    /// The signature, once every field has been read: no line may be left
    /// before it.
    pub(crate) fn signature(mut self) -> Result<[u8; 64], String> {
        if self.lines.next().is_some() {
            return Err("unexpected line before the signature".into());
        }
        let hex = self
            .signature_line
            .strip_prefix("signature: ")
            .and_then(|s| s.strip_suffix('\n'))
            .ok_or_else(|| "bad signature line".to_owned())?;
        unhex(hex).ok_or_else(|| "bad signature".to_owned())
    }
}

/// Lowercase hex of exactly `N` bytes.
pub(crate) fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; N];
    for (slot, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        *slot = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}
