//! `parcel key …`: the site public key file, and exporting, trusting, listing
//! and revoking site keys.
//!
//! The key file is plain text so that it can be mailed, printed and compared
//! by eye:
//!
//! ```text
//! parcel-site-key v1
//! site: CEN
//! name: Central office
//! key: <64 lowercase hex digits of the Ed25519 public key>
//! fingerprint: 12345 67890 12345 67890 12345 67890
//! encryption-key: age1…
//! encryption-key-signature: <128 lowercase hex digits>
//! ```
//!
//! Reading is strict: bounded size, the exact first line, each field exactly
//! once, no unknown fields, and a fingerprint line that matches the key.
//!
//! The encryption key (the site's age X25519 recipient, to which parcels
//! for it are encrypted) is signed by the site's Ed25519 key, so that
//! checking the fingerprint over the phone also authenticates it: a file
//! whose encryption key was swapped in transit is refused. Files made before
//! parcels could be encrypted have neither line and still parse; such a site
//! cannot be encrypted to until it sends a new file.

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use parcel_format::encrypt::Recipient;
use parcel_format::sign::{fingerprint, fingerprints_match, PublicKey, SecretKey};
use serde::Serialize;

use crate::catalog::TrustedSite;
use crate::cli::{KeyExportArgs, KeyListArgs, KeyRevokeArgs, KeyTrustArgs};
use crate::clock;
use crate::error::CliError;
use crate::home::Context;
use crate::out_file;
use crate::output::{self, printable};
use crate::site::{is_site_code, is_site_name};

/// First line of a site key file.
pub const KEY_FILE_HEADER: &str = "parcel-site-key v1";
/// Largest site key file read, in bytes; a real one is under 200.
pub const MAX_KEY_FILE: u64 = 64 * 1024;

/// Domain string of the signature over a site's encryption key: the
/// message is this, then the site code, a newline and the `age1…` recipient.
pub const DOMAIN_ENCRYPTION_KEY: &[u8] = b"parcel-site-key/v1/encryption-key\0";

/// What is wrong with a site key file; the path is added by [`CliError::KeyFile`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileProblem {
    #[error("larger than {MAX_KEY_FILE} bytes; this is not a parcel site key file")]
    TooLarge,
    #[error("not UTF-8 text; this is not a parcel site key file")]
    NotText,
    #[error("the first line is not `{KEY_FILE_HEADER}`; this is not a parcel site key file (or it is from a newer parcel)")]
    BadHeader,
    #[error("line {line}: expected `field: value`")]
    Malformed { line: usize },
    #[error("line {line}: unknown field `{field}`")]
    UnknownField { line: usize, field: String },
    #[error("line {line}: field `{field}` appears a second time")]
    DuplicateField { line: usize, field: &'static str },
    #[error("the `{0}` field is missing")]
    MissingField(&'static str),
    #[error("line {line}: the site code must be 3 characters A-Z or 0-9")]
    BadSiteCode { line: usize },
    #[error("line {line}: the site name must be 1 to 80 printable characters")]
    BadName { line: usize },
    #[error("line {line}: the key must be 64 lowercase hex digits of a valid Ed25519 public key")]
    BadKey { line: usize },
    #[error(
        "line {line}: the fingerprint does not match the key; the file is damaged or was edited"
    )]
    FingerprintMismatch { line: usize },
    #[error("line {line}: the encryption key must be an age X25519 recipient (age1…)")]
    BadEncryptionKey { line: usize },
    #[error("line {line}: the encryption key signature must be 128 lowercase hex digits")]
    BadEncryptionSignature { line: usize },
    #[error("line {line}: the encryption key is not signed by the site's key: the file was altered (its encryption key may have been swapped); ask the site for its key file again")]
    EncryptionKeyForged { line: usize },
}

/// A site's encryption key with the signature binding it to the site's
/// signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionKey {
    /// The age X25519 recipient parcels for the site are encrypted to.
    pub recipient: Recipient,
    /// Ed25519 signature by the site's key (see [`DOMAIN_ENCRYPTION_KEY`]).
    pub signature: [u8; 64],
}

impl EncryptionKey {
    fn message(site: &str, recipient: &Recipient) -> Vec<u8> {
        format!("{site}\n{recipient}").into_bytes()
    }

    /// `recipient`, signed as site `site`'s encryption key.
    pub fn sign(site: &str, recipient: Recipient, key: &SecretKey) -> EncryptionKey {
        let signature = parcel_format::sign::sign(
            key,
            DOMAIN_ENCRYPTION_KEY,
            &EncryptionKey::message(site, &recipient),
        );
        EncryptionKey {
            recipient,
            signature,
        }
    }

    /// Whether the signature is site `site`'s, made with `key`.
    pub fn is_signed_by(&self, site: &str, key: &PublicKey) -> bool {
        parcel_format::sign::verify(
            key,
            DOMAIN_ENCRYPTION_KEY,
            &EncryptionKey::message(site, &self.recipient),
            &self.signature,
        )
    }
}

/// The public identity of a site, as exchanged between sites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteKeyFile {
    pub site: String,
    pub name: String,
    pub key: PublicKey,
    /// `None` in files made before parcels could be encrypted.
    pub encryption_key: Option<EncryptionKey>,
}

impl SiteKeyFile {
    /// The key's fingerprint, as people read it over the phone.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.key)
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut text = format!(
            "{KEY_FILE_HEADER}\nsite: {}\nname: {}\nkey: {}\nfingerprint: {}\n",
            self.site,
            self.name,
            hex(self.key.as_bytes()),
            self.fingerprint()
        );
        if let Some(e) = &self.encryption_key {
            text.push_str(&format!(
                "encryption-key: {}\nencryption-key-signature: {}\n",
                e.recipient,
                hex(&e.signature)
            ));
        }
        text
    }

    /// Parses a key file's text strictly.
    pub fn parse(text: &str) -> Result<SiteKeyFile, KeyFileProblem> {
        let mut lines = text.lines().enumerate().map(|(i, line)| (i + 1, line));
        match lines.next() {
            Some((_, KEY_FILE_HEADER)) => {}
            _ => return Err(KeyFileProblem::BadHeader),
        }
        let mut site = None;
        let mut name = None;
        let mut key = None;
        let mut stated_fingerprint = None;
        let mut encryption_key = None;
        let mut encryption_signature = None;
        for (line, content) in lines {
            let (field, value) = content
                .split_once(": ")
                .ok_or(KeyFileProblem::Malformed { line })?;
            let (slot, field) = match field {
                "site" => (&mut site, "site"),
                "name" => (&mut name, "name"),
                "key" => (&mut key, "key"),
                "fingerprint" => (&mut stated_fingerprint, "fingerprint"),
                "encryption-key" => (&mut encryption_key, "encryption-key"),
                "encryption-key-signature" => {
                    (&mut encryption_signature, "encryption-key-signature")
                }
                other => {
                    return Err(KeyFileProblem::UnknownField {
                        line,
                        field: printable(other).chars().take(40).collect(),
                    })
                }
            };
            if slot.replace((line, value)).is_some() {
                return Err(KeyFileProblem::DuplicateField { line, field });
            }
        }

        let (line, site) = site.ok_or(KeyFileProblem::MissingField("site"))?;
        if !is_site_code(site) {
            return Err(KeyFileProblem::BadSiteCode { line });
        }
        let (line, name) = name.ok_or(KeyFileProblem::MissingField("name"))?;
        if !is_site_name(name) {
            return Err(KeyFileProblem::BadName { line });
        }
        let (line, key_hex) = key.ok_or(KeyFileProblem::MissingField("key"))?;
        let key = parse_public_key(key_hex).ok_or(KeyFileProblem::BadKey { line })?;
        let (line, stated) =
            stated_fingerprint.ok_or(KeyFileProblem::MissingField("fingerprint"))?;
        if stated != fingerprint(&key) {
            return Err(KeyFileProblem::FingerprintMismatch { line });
        }
        let encryption_key = match (encryption_key, encryption_signature) {
            (None, None) => None,
            (None, Some(_)) => return Err(KeyFileProblem::MissingField("encryption-key")),
            (Some(_), None) => {
                return Err(KeyFileProblem::MissingField("encryption-key-signature"))
            }
            (Some((line, recipient)), Some((sig_line, signature))) => {
                let recipient = recipient
                    .parse::<Recipient>()
                    .map_err(|_| KeyFileProblem::BadEncryptionKey { line })?;
                let signature = parse_hex::<64>(signature)
                    .ok_or(KeyFileProblem::BadEncryptionSignature { line: sig_line })?;
                let signed = EncryptionKey {
                    recipient,
                    signature,
                };
                if !signed.is_signed_by(site, &key) {
                    return Err(KeyFileProblem::EncryptionKeyForged { line });
                }
                Some(signed)
            }
        };
        Ok(SiteKeyFile {
            site: site.to_string(),
            name: name.to_string(),
            key,
            encryption_key,
        })
    }

    /// Reads and parses the key file at `path`, refusing files over [`MAX_KEY_FILE`].
    pub fn read(path: &Path) -> Result<SiteKeyFile, CliError> {
        let problem = |problem| CliError::KeyFile {
            path: path.to_path_buf(),
            problem,
        };
        let file = File::open(path).map_err(CliError::input(
            "open site key file",
            path,
            "the file `parcel key export` wrote at the other site",
        ))?;
        let mut bytes = Vec::new();
        file.take(MAX_KEY_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(CliError::io("read site key file", path))?;
        if bytes.len() as u64 > MAX_KEY_FILE {
            return Err(problem(KeyFileProblem::TooLarge));
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| problem(KeyFileProblem::NotText))?;
        SiteKeyFile::parse(text).map_err(problem)
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A public key from exactly 64 lowercase hex digits; `None` if malformed, not
/// a curve point, or a weak (small-order) key.
fn parse_public_key(text: &str) -> Option<PublicKey> {
    let bytes = parse_hex::<32>(text)?;
    let key = PublicKey::from_bytes(&bytes).ok()?;
    (!key.is_weak()).then_some(key)
}

/// Exactly `2 * N` lowercase hex digits as bytes; `None` otherwise.
fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let nibble = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    let mut bytes = [0u8; N];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        let (&high, &low) = (pair.first()?, pair.get(1)?);
        *byte = nibble(high)? << 4 | nibble(low)?;
    }
    Some(bytes)
}

/// `parcel key export`: this site's public key file, to `--out` or stdout.
/// It carries the site's encryption key, signed; a home made before parcels
/// could be encrypted gets its encryption key now.
pub fn export(ctx: &Context, args: &KeyExportArgs) -> Result<(), CliError> {
    let catalog = ctx.home.open_catalog()?;
    let (site, secret) = ctx.home.site_identity(&catalog)?;
    let key = secret.verifying_key();
    if let Some(out) = &args.out {
        // Before anything is made (the encryption key of an older home).
        out_file::check_replaceable(out, "--out", "a public key file of this site", |path| {
            SiteKeyFile::read(path).is_ok_and(|old| old.site == site.code)
        })?;
    }
    let identity = ctx.home.identity_or_create()?;
    let file = SiteKeyFile {
        site: site.code.clone(),
        name: site.name.clone(),
        key,
        encryption_key: Some(EncryptionKey::sign(
            &site.code,
            identity.to_public(),
            &secret,
        )),
    };
    let text = file.render();
    let Some(out) = &args.out else {
        return output::print(&text);
    };
    out_file::write_atomically(out, text.as_bytes())?;
    output::print(&format!(
        "Wrote the public key of site {} to {}\nFingerprint: {}\n",
        file.site,
        out.display(),
        file.fingerprint()
    ))?;
    ctx.note(&format!(
        "next: give {} to the other sites; they run `parcel key trust {} --fingerprint '{}'`.",
        out.display(),
        out.display(),
        file.fingerprint()
    ));
    Ok(())
}

/// `parcel key trust`: trusts another site's key after its fingerprint is
/// confirmed by `--fingerprint`, by the user at a terminal, or (non-interactive
/// use) printed for the record.
pub fn trust(ctx: &Context, args: &KeyTrustArgs) -> Result<(), CliError> {
    let mut catalog = ctx.home.open_catalog()?;
    let own = catalog.site()?;
    let file = SiteKeyFile::read(&args.file)?;
    let actual = file.fingerprint();
    if file.site == own.code || file.key.as_bytes() == &own.public_key {
        return Err(CliError::OwnSite {
            path: args.file.clone(),
            site: own.code,
        });
    }

    // One key, one site: a key trusted under two codes would let a parcel
    // signed by one site pass for the other's, and a revocation of one code
    // leave the key trusted under the other.
    if let Some(other) = catalog
        .trusted_sites()?
        .into_iter()
        .find(|s| s.public_key == file.key.to_bytes() && s.code != file.site)
    {
        let revoked = if other.revoked_at.is_some() {
            " (revoked)"
        } else {
            ""
        };
        return Err(CliError::Refused {
            subject: format!("key file {}", args.file.display()),
            reason: format!(
                "it names site {} but its key (fingerprint {actual}) is already the key of site {}{revoked}, and a key belongs to one site. Check with site {} which site the file really comes from; a site that changes its code makes a new key",
                file.site, other.code, other.code
            ),
        });
    }
    if let Some(retired) = catalog.retired_key(&file.key.to_bytes())? {
        let (code, fingerprint) = (&retired.code, &retired.fingerprint);
        let when = clock::format_utc(retired.retired_at);
        if *code != file.site {
            return Err(CliError::Refused {
                subject: format!("key file {}", args.file.display()),
                reason: format!(
                    "it names site {} but its key (fingerprint {fingerprint}) was the key of site {code} until it was replaced on {when}, and a key belongs to one site for good. Check with site {code} which site the file really comes from",
                    file.site
                ),
            });
        }
        if let Some(revoked) = retired.revoked_at {
            return Err(CliError::Refused {
                subject: format!("key file {}", args.file.display()),
                reason: format!(
                    "its key (fingerprint {fingerprint}) is site {code}'s old key, revoked here on {} and replaced on {when}; a revoked key that was replaced is not taken back. Ask site {code} for its current key file",
                    clock::format_utc(revoked)
                ),
            });
        }
    }
    let previous = catalog.trusted_site(&file.site)?;
    let replaces = previous
        .as_ref()
        .is_some_and(|old| old.public_key != file.key.to_bytes());
    let unrevokes = previous
        .as_ref()
        .is_some_and(|old| old.public_key == file.key.to_bytes() && old.revoked_at.is_some());
    // The same key, trusted, under another name: the name line is not
    // signed (anyone may edit it in a copy of the file), so it replaces the
    // recorded one only when the user confirms it (at a terminal, or by
    // giving the fingerprint they checked).
    let trusted_as = previous
        .as_ref()
        .filter(|old| old.public_key == file.key.to_bytes() && old.revoked_at.is_none());
    let renames = trusted_as.is_some_and(|old| old.name != file.name);
    // Another encryption key for a site trusted with this signing key: the
    // file's signature over it carries no date, so an old file replayed
    // would put back a key the site has left (and may have lost). Like a
    // key replacement, it is taken only when the user confirms it.
    let new_recipient = file
        .encryption_key
        .as_ref()
        .map(|e| e.recipient.to_string());
    let changes_encryption = trusted_as.is_some_and(|old| {
        old.encryption_key.is_some()
            && new_recipient.is_some()
            && old.encryption_key != new_recipient
    });
    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();

    if let Some(expected) = &args.fingerprint {
        if !fingerprints_match(expected, &actual) {
            return Err(CliError::FingerprintMismatch {
                path: args.file.clone(),
                site: file.site,
                expected: printable(expected).into_owned(),
                actual,
            });
        }
    } else if terminal
        && !confirm(&match (&previous, replaces, unrevokes) {
            (Some(old), true, _) => format!(
                "Replace the key of site {} (fingerprint {}) with the key in {} (fingerprint {})? [y/N] ",
                file.site,
                old.fingerprint,
                args.file.display(),
                actual
            ),
            (_, _, true) => format!(
                "Trust again the REVOKED key of site {} (fingerprint {})? [y/N] ",
                file.site, actual
            ),
            (Some(_), _, _) if changes_encryption => format!(
                "Site {} is trusted with this key; {} gives it another encryption key (parcels encrypted to it from now on). Record it? [y/N] ",
                file.site,
                args.file.display()
            ),
            (Some(old), _, _) if renames => format!(
                "Site {} is trusted with this key as \"{}\"; {} names it \"{}\". Record the new name? [y/N] ",
                file.site,
                printable(&old.name),
                args.file.display(),
                printable(&file.name)
            ),
            _ => format!(
                "Trust site {} ({}) with fingerprint {}? [y/N] ",
                file.site,
                printable(&file.name),
                actual
            ),
        })?
    {
        let outcome = match &previous {
            Some(old) if replaces && old.revoked_at.is_none() => format!(
                "the key of site {} was not replaced; it stays trusted with its old key (fingerprint {})",
                file.site, old.fingerprint
            ),
            Some(_) if unrevokes => format!("the key of site {} stays revoked", file.site),
            Some(_) if changes_encryption => format!(
                "site {} keeps the encryption key on record",
                file.site
            ),
            Some(_) if replaces => format!(
                "the key of site {} was not replaced; its old key stays revoked",
                file.site
            ),
            Some(_) => format!(
                "nothing was changed; site {} stays trusted as it was",
                file.site
            ),
            None => format!("site {} was not trusted", file.site),
        };
        return Err(CliError::TrustDeclined { outcome });
    } else if (replaces || unrevokes || changes_encryption) && !terminal {
        // Trusting a new site unasked is how a script adds one; replacing the
        // key of a site already trusted, or undoing a revocation, unseen, is
        // how a key is swapped.
        let old = previous.as_ref().map_or("", |o| o.fingerprint.as_str());
        let revoked = previous.as_ref().is_some_and(|o| o.revoked_at.is_some());
        let what = if replaces && revoked {
            format!("has another key on record, revoked (fingerprint {old})")
        } else if replaces {
            format!("is already trusted with another key (fingerprint {old})")
        } else if unrevokes {
            "had this key revoked".to_owned()
        } else {
            "is trusted with another encryption key, which this file would replace (an old key file given again would put back a key the site has left)".to_owned()
        };
        return Err(CliError::Refused {
            subject: format!("key file {}", args.file.display()),
            reason: format!(
                "site {} {what}; nothing was changed. The key in this file has fingerprint {actual}: to trust it without a terminal, have site {} read you its fingerprint by another channel (telephone), and if the two match, run again with --fingerprint and the fingerprint they read",
                file.site, file.site
            ),
        });
    }

    let now = clock::now();
    // An older file of the same key (without an encryption key) keeps the
    // encryption key already recorded.
    let encryption_key = file
        .encryption_key
        .as_ref()
        .map(|e| e.recipient.to_string())
        .or_else(|| {
            previous
                .as_ref()
                .filter(|old| old.public_key == file.key.to_bytes())
                .and_then(|old| old.encryption_key.clone())
        });
    // Not while an import runs: it checked signatures against the trust
    // list it loaded, and records its result as of then (the lock is taken
    // after the prompt, which may wait long).
    let _lock = ctx.home.lock_exclusive(ctx.quiet)?;
    let rename_confirmed = terminal || args.fingerprint.is_some();
    let name = match trusted_as {
        Some(old) if renames && !rename_confirmed => old.name.clone(),
        _ => file.name.clone(),
    };
    // Written only if nothing changed since `previous` was read (a prompt
    // may have waited a long time).
    catalog.trust_site(
        &TrustedSite {
            code: file.site.clone(),
            name: name.clone(),
            public_key: file.key.to_bytes(),
            fingerprint: actual.clone(),
            // Trusted since it was first trusted, when the same key stays.
            trusted_at: trusted_as.map_or(now, |old| old.trusted_at),
            revoked_at: None,
            encryption_key: encryption_key.clone(),
        },
        previous.as_ref(),
    )?;

    let summary = match &previous {
        Some(old) if old.public_key != file.key.to_bytes() => {
            output::warn(&format!(
                "SITE {} HAD A DIFFERENT KEY. The old key (fingerprint {}) is replaced by the key \
                 in {} (fingerprint {}). Parcels signed with the old key are no longer accepted. \
                 If site {} did not tell you it changed its key, run `{} key revoke {}` and \
                 call them.",
                file.site,
                old.fingerprint,
                args.file.display(),
                actual,
                file.site,
                ctx.parcel_command(),
                file.site
            ));
            "Replaced the key of site"
        }
        Some(old) if old.revoked_at.is_some() => "Trusted again the previously revoked key of site",
        Some(old) if old.encryption_key.is_none() && encryption_key.is_some() => {
            "Recorded the encryption key of the already trusted site"
        }
        Some(old) if old.encryption_key != encryption_key => {
            "Recorded the new encryption key of the already trusted site"
        }
        Some(_) if renames && rename_confirmed => "Renamed the already trusted site",
        Some(_) => "Already trusted: site",
        None => "Trusted site",
    };
    output::print(&format!(
        "{summary} {} ({})\nFingerprint: {actual}\n",
        file.site,
        printable(&name)
    ))?;
    if renames && !rename_confirmed {
        output::warn(&format!(
            "{} names site {} \"{}\", but this site knows it as \"{}\" and keeps that name: a key file's name line is not signed. If {} did change its name, run again with --fingerprint {actual} (or at a terminal) to record it",
            args.file.display(),
            file.site,
            printable(&file.name),
            printable(&name),
            file.site
        ));
    }
    if encryption_key.is_none() {
        ctx.note(&format!(
            "{} has no encryption key in this file, so `parcel create --encrypt --to {}` is refused; ask {} for a new key file (`parcel key export`) and trust it",
            file.site, file.site, file.site
        ));
    }
    Ok(())
}

/// Asks a yes/no question on stderr and reads the answer from stdin; only
/// "y" or "yes" (any case) is a yes.
fn confirm(question: &str) -> Result<bool, CliError> {
    let mut stderr = std::io::stderr();
    let _ = stderr.write_all(question.as_bytes());
    let _ = stderr.flush();
    let answer = output::read_answer()?.unwrap_or_default();
    Ok(answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes"))
}

/// `key list --json`: one trusted site with its key and state.
#[derive(Serialize)]
struct TrustedSiteView<'a> {
    #[serde(flatten)]
    site: &'a TrustedSite,
    /// Public key, 64 lowercase hex digits.
    key: String,
    /// `trusted` or `revoked`.
    state: &'static str,
}

fn state_of(site: &TrustedSite) -> &'static str {
    if site.revoked_at.is_some() {
        "revoked"
    } else {
        "trusted"
    }
}

/// `parcel key list`: the sites this site trusts, revoked ones included.
pub fn list(ctx: &Context, args: &KeyListArgs) -> Result<(), CliError> {
    let catalog = ctx.home.open_catalog()?;
    let sites = catalog.trusted_sites()?;
    if args.json {
        let views: Vec<TrustedSiteView> = sites
            .iter()
            .map(|site| TrustedSiteView {
                site,
                key: hex(&site.public_key),
                state: state_of(site),
            })
            .collect();
        return output::print_json(&views);
    }
    if sites.is_empty() {
        output::print("No trusted sites.\n")?;
        ctx.note(&format!(
            "Trust a site with `{} key trust FILE --fingerprint FP`.",
            ctx.parcel_command()
        ));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = sites
        .iter()
        .map(|site| {
            let since = match site.revoked_at {
                Some(at) => clock::format_utc(at),
                None => clock::format_utc(site.trusted_at),
            };
            vec![
                site.code.clone(),
                printable(&site.name).into_owned(),
                site.fingerprint.clone(),
                state_of(site).to_string(),
                since,
                if site.revoked_at.is_some() {
                    "no (revoked)"
                } else if site.encryption_key.is_some() {
                    "yes"
                } else {
                    "no (old key file)"
                }
                .to_string(),
            ]
        })
        .collect();
    output::print(&output::table(
        &[
            "SITE",
            "NAME",
            "FINGERPRINT",
            "STATE",
            "SINCE",
            "ENCRYPT TO",
        ],
        &rows,
    ))
}

/// `parcel key revoke`: marks a site's key revoked; parcels and receipts it
/// signed are refused from now on.
pub fn revoke(ctx: &Context, args: &KeyRevokeArgs) -> Result<(), CliError> {
    let mut catalog = ctx.home.open_catalog()?;
    let own = catalog.site()?;
    if own.code == args.code {
        return Err(CliError::Usage(format!(
            "{} is this site; its own key is not in its trust list. To stop using this key, set up a new site home (`parcel site init`) and send its key file to the other sites",
            own.code
        )));
    }
    if let Some(site) = catalog.trusted_site(&args.code)? {
        if let Some(at) = site.revoked_at {
            return output::print(&format!(
                "The key of site {} is already revoked (since {}).\n",
                site.code,
                clock::format_utc(at)
            ));
        }
    }
    // Waits for a running import, which trusts the key until it ends: the
    // revocation then holds for everything after this message.
    let _lock = ctx.home.lock_exclusive(ctx.quiet)?;
    catalog.revoke_site(&args.code, clock::now())?;
    output::print(&format!(
        "Revoked the key of site {}; parcels and receipts it signs are refused from now on.\n",
        args.code
    ))?;
    ctx.note(&format!(
        "To trust site {} again, get its new key file and run `{} key trust FILE --fingerprint FP`.",
        args.code,
        ctx.parcel_command()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SiteKeyFile {
        let key = parcel_format::sign::SecretKey::from_bytes(&[9u8; 32]).verifying_key();
        SiteKeyFile {
            site: "CEN".into(),
            name: "Central office".into(),
            key,
            encryption_key: None,
        }
    }

    #[test]
    fn encryption_key_is_signed_and_a_swapped_one_is_refused() {
        let secret = parcel_format::sign::SecretKey::from_bytes(&[9u8; 32]);
        let ours = parcel_format::encrypt::Identity::generate().to_public();
        let theirs = parcel_format::encrypt::Identity::generate().to_public();
        let file = SiteKeyFile {
            encryption_key: Some(EncryptionKey::sign("CEN", ours.clone(), &secret)),
            ..sample()
        };
        let text = file.render();
        assert_eq!(SiteKeyFile::parse(&text), Ok(file));
        let swapped = text.replace(&ours.to_string(), &theirs.to_string());
        assert_eq!(
            SiteKeyFile::parse(&swapped),
            Err(KeyFileProblem::EncryptionKeyForged { line: 6 })
        );
        // A signature for another site code does not carry over.
        let other_site = SiteKeyFile {
            encryption_key: Some(EncryptionKey::sign("NOR", ours, &secret)),
            ..sample()
        };
        assert_eq!(
            SiteKeyFile::parse(&other_site.render()),
            Err(KeyFileProblem::EncryptionKeyForged { line: 6 })
        );
        let without_signature: String = text
            .lines()
            .filter(|l| !l.starts_with("encryption-key-signature:"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            SiteKeyFile::parse(&without_signature),
            Err(KeyFileProblem::MissingField("encryption-key-signature"))
        );
    }

    #[test]
    fn rendered_key_file_parses_back() {
        let file = sample();
        let text = file.render();
        assert!(text.starts_with("parcel-site-key v1\nsite: CEN\nname: Central office\nkey: "));
        assert_eq!(SiteKeyFile::parse(&text), Ok(file));
    }

    #[test]
    fn key_file_with_edited_key_fails_on_the_fingerprint_line() {
        let file = sample();
        let other = parcel_format::sign::SecretKey::from_bytes(&[8u8; 32]).verifying_key();
        let text = file
            .render()
            .replace(&hex(file.key.as_bytes()), &hex(other.as_bytes()));
        assert_eq!(
            SiteKeyFile::parse(&text),
            Err(KeyFileProblem::FingerprintMismatch { line: 5 })
        );
    }

    #[test]
    fn key_file_refuses_unknown_duplicate_and_missing_fields() {
        let text = sample().render();
        assert_eq!(
            SiteKeyFile::parse(&format!("{text}comment: hi\n")),
            Err(KeyFileProblem::UnknownField {
                line: 6,
                field: "comment".into()
            })
        );
        assert_eq!(
            SiteKeyFile::parse(&format!("{text}site: NOR\n")),
            Err(KeyFileProblem::DuplicateField {
                line: 6,
                field: "site"
            })
        );
        let without_name: String = text
            .lines()
            .filter(|l| !l.starts_with("name:"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            SiteKeyFile::parse(&without_name),
            Err(KeyFileProblem::MissingField("name"))
        );
        assert_eq!(
            SiteKeyFile::parse(&format!("{text}\n")),
            Err(KeyFileProblem::Malformed { line: 6 })
        );
        assert_eq!(
            SiteKeyFile::parse("parcel-site-key v2\n"),
            Err(KeyFileProblem::BadHeader)
        );
    }

    #[test]
    fn key_must_be_lowercase_hex_of_a_strong_key() {
        let good = hex(sample().key.as_bytes());
        assert!(parse_public_key(&good).is_some());
        assert!(parse_public_key(&good.to_uppercase()).is_none());
        assert!(parse_public_key(&good[..62]).is_none());
        // The identity point is a small-order (weak) key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(parse_public_key(&hex(&identity)).is_none());
    }
}
