//! Package paths: the rules every file-table path and symlink target must
//! follow (FORMAT.md §6), checked by the writer before it writes and by the
//! reader before it extracts anything.

use unicode_normalization::UnicodeNormalization;

use crate::limits::{MAX_COMPONENT, MAX_DEPTH, MAX_PATH};

/// Checks one file-table path; returns why it is refused.
///
/// A path is relative, `/`-separated UTF-8; every component is non-empty, not
/// `.` or `..`, at most 255 bytes; no NUL, backslash or control character;
/// at most 4096 bytes and 256 components in all.
pub fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    if path.len() > MAX_PATH {
        return Err(format!("longer than {MAX_PATH} bytes"));
    }
    if path.starts_with('/') {
        return Err("absolute path".into());
    }
    if let Some(c) = path
        .chars()
        .find(|&c| c == '\\' || c == '\0' || c.is_control())
    {
        return Err(match c {
            '\\' => "contains a backslash".into(),
            '\0' => "contains a NUL byte".into(),
            _ => format!("contains control character U+{:04X}", c as u32),
        });
    }
    let mut depth = 0;
    for component in path.split('/') {
        depth += 1;
        match component {
            "" => return Err("empty component (`//` or trailing `/`)".into()),
            "." | ".." => return Err(format!("contains a `{component}` component")),
            c if c.len() > MAX_COMPONENT => {
                return Err(format!("a component is longer than {MAX_COMPONENT} bytes"))
            }
            _ => {}
        }
    }
    if depth > MAX_DEPTH {
        return Err(format!("deeper than {MAX_DEPTH} components"));
    }
    Ok(())
}

/// The key two paths collide under: Unicode NFC, then lower case, then NFC
/// again. Two entries whose keys are equal would land on the same file on a
/// case-insensitive or normalising file system (macOS, Windows), so a parcel
/// holding both is refused everywhere.
pub fn collision_key(path: &str) -> String {
    // ASCII is its own NFC and lowers byte by byte: the common case, and the
    // full normalisation was a third of a `verify --media`'s time on a
    // 50,000-file package.
    if path.is_ascii() {
        return path.to_ascii_lowercase();
    }
    normalised_key(path)
}

fn normalised_key(path: &str) -> String {
    let lowered: String = path.nfc().collect::<String>().to_lowercase();
    lowered.nfc().collect()
}

/// The parent directory of a checked path, `None` at top level.
pub fn parent(path: &str) -> Option<&str> {
    path.rfind('/').map(|i| &path[..i])
}

/// Checks a symlink target for the link at `link_path`.
///
/// A target is relative: zero or more leading `..` components, then normal
/// components (none `.` or `..`); the leading `..` may climb at most to the
/// package root. Because every directory in a package is a real directory and
/// no `..` follows a normal component, resolving such a link can never leave
/// the package, whatever other links it passes through.
pub fn check_symlink_target(link_path: &str, target: &str) -> Result<(), String> {
    if target.is_empty() {
        return Err("symlink with an empty target".into());
    }
    // symlink(2) takes the target with its terminating NUL within PATH_MAX:
    // one of MAX_PATH bytes would pass here and fail only at extraction.
    if target.len() >= MAX_PATH {
        return Err(format!(
            "symlink target of {} bytes, longer than the {} a symlink can hold",
            target.len(),
            MAX_PATH - 1
        ));
    }
    if target.starts_with('/') {
        return Err(format!(
            "symlink to absolute path {target:?} (leaves the package)"
        ));
    }
    if target
        .chars()
        .any(|c| c == '\\' || c == '\0' || c.is_control())
    {
        return Err("symlink target contains a backslash, NUL or control character".into());
    }
    let parent_depth = link_path.matches('/').count();
    let mut ups = 0usize;
    let mut seen_normal = false;
    for component in target.split('/') {
        match component {
            "" => return Err(format!("symlink target {target:?} has an empty component")),
            "." => return Err(format!("symlink target {target:?} contains `.`")),
            ".." if seen_normal => {
                return Err(format!("symlink target {target:?} has `..` after a name (not allowed: it could climb through another link)"))
            }
            ".." => ups += 1,
            _ => seen_normal = true,
        }
    }
    if ups > parent_depth {
        return Err(format!("symlink target {target:?} leaves the package"));
    }
    if !seen_normal {
        return Err(format!(
            "symlink target {target:?} names a directory above the link only"
        ));
    }
    Ok(())
}

/// The plain form of a relative symlink target that [`check_symlink_target`]
/// refuses only for its spelling (`./f`, `a//b`, `a/../b`), for the link at
/// `link_path`: resolved by name, as if no component were itself a link, and
/// written back as `..` components then names. `None` when it has no such
/// form (absolute, leaving the package, naming only a directory above the
/// link) or when it was plain already.
pub fn plain_symlink_target(link_path: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let dir: Vec<&str> = link_path.split('/').collect();
    let dir = dir.get(..dir.len().saturating_sub(1))?;
    let mut resolved: Vec<&str> = dir.to_vec();
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                resolved.pop()?;
            }
            name => resolved.push(name),
        }
    }
    let common = dir
        .iter()
        .zip(&resolved)
        .take_while(|(a, b)| a == b)
        .count();
    let names = resolved.get(common..)?;
    if names.is_empty() {
        return None;
    }
    let ups = dir.len() - common;
    let plain = std::iter::repeat_n("..", ups)
        .chain(names.iter().copied())
        .collect::<Vec<_>>()
        .join("/");
    (plain != target && check_symlink_target(link_path, &plain).is_ok()).then_some(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_keys_are_the_full_normalisation() {
        let every_ascii: String = (0u8..128).map(char::from).collect();
        for path in [
            "Bin/Tool",
            "usr/LIB/libX11.so.6",
            "a-b_c.D~e",
            every_ascii.as_str(),
        ] {
            assert_eq!(collision_key(path), normalised_key(path), "{path:?}");
        }
        assert_eq!(collision_key("Bin/TOOL"), collision_key("bin/tool"));
        assert_eq!(collision_key("Caf\u{e9}"), collision_key("cafe\u{301}"));
    }

    #[test]
    fn a_symlink_target_refused_for_its_spelling_has_a_plain_form() {
        for (link, target, plain) in [
            ("weird/dotf", "./f", Some("f")),
            ("a/b/l", "..//c/./d", Some("../c/d")),
            ("a/b/l", "../b/../c", Some("../c")),
            ("a/l", "x/../../y", Some("../y")),
            // Plain already, or with no plain form.
            ("a/b/l", "../c", None),
            ("self", ".", None),
            ("a/l", "../..", None),
            ("a/l", "../../etc", None),
            ("l", "/etc/passwd", None),
        ] {
            let found = plain_symlink_target(link, target);
            assert_eq!(found.as_deref(), plain, "{link} -> {target}");
            if let Some(p) = found {
                assert!(check_symlink_target(link, &p).is_ok(), "{link} -> {p}");
            }
        }
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            "..",
            "./a",
            "a//b",
            "a/",
            "a\\b",
            "a\0b",
            "a\nb",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "a/b", "dir/Ünïcödé name.txt", "...", "a..b"] {
            assert!(check_path(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn case_and_normalisation_collide() {
        assert_eq!(collision_key("README"), collision_key("readme"));
        assert_eq!(collision_key("caf\u{e9}"), collision_key("cafe\u{301}"));
        assert_ne!(collision_key("a"), collision_key("b"));
    }

    #[test]
    fn symlink_targets_stay_inside() {
        assert!(check_symlink_target("lib/libfoo.so", "libfoo.so.1").is_ok());
        assert!(check_symlink_target("lib/x/y", "../../bin/tool").is_ok());
        assert!(check_symlink_target("lib/x", "../../etc").is_err());
        assert!(check_symlink_target("a", "/etc/passwd").is_err());
        assert!(check_symlink_target("d/y", "x/x/..").is_err());
        assert!(check_symlink_target("d/y", "..").is_err());
    }
}
