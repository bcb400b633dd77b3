//! `parcel site init` and `parcel site show`: setting up this site's identity
//! (code, name, key pair) in its home, and showing it.

use serde::Serialize;

use crate::catalog::{CatalogError, SiteRecord};
use crate::cli::{SiteInitArgs, SiteShowArgs};
use crate::clock;
use crate::error::CliError;
use crate::home::Context;
use crate::output::{self, printable};

/// Longest site name, in characters.
pub const MAX_NAME_CHARS: usize = 80;

/// Whether `code` is a site code: exactly 3 characters `A`–`Z` or `0`–`9`.
pub fn is_site_code(code: &str) -> bool {
    code.len() == 3
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Whether `name` is a site name: 1 to [`MAX_NAME_CHARS`] characters, no
/// control characters, no leading or trailing white space (so that it
/// survives a `key: value` line unchanged).
pub fn is_site_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && !name.chars().any(char::is_control)
        && name.trim() == name
}

/// `parcel site init`: creates the home, the key pair and the site record.
pub fn init(ctx: &Context, args: &SiteInitArgs) -> Result<(), CliError> {
    if args.parent.as_deref() == Some(args.code.as_str()) {
        return Err(CliError::Usage(format!(
            "site {} cannot be its own parent; give the code of the site that sends to it",
            args.code
        )));
    }
    let home = &ctx.home;
    // A site's home inside another's (its store, its staging) would be
    // swept, replaced or imported over by that site.
    if let Some(outer) = enclosing_site(home.root()) {
        return Err(CliError::Usage(format!(
            "{} is inside the home of another site ({}); give --home a directory outside it",
            home.root().display(),
            outer.display()
        )));
    }
    home.create_dirs()?;
    let _lock = home.lock_exclusive(ctx.quiet)?;
    // A secret key without a catalog is a site whose catalog was lost, not
    // a place for a new one (an empty catalog made here would hide that).
    if !home.catalog_path().exists() {
        if let err @ CliError::CatalogMissing(_) = home.no_catalog() {
            return Err(err);
        }
    }
    let mut catalog = home.create_catalog()?;
    match catalog.site() {
        Ok(existing) => {
            return Err(CliError::SiteExists {
                home: home.root().to_path_buf(),
                code: existing.code,
            })
        }
        Err(CatalogError::NoSite) => {}
        Err(err) => return Err(err.into()),
    }

    let key = parcel_format::sign::generate_secret_key();
    let public = key.verifying_key();
    let site = SiteRecord {
        code: args.code.clone(),
        name: args.name.clone().unwrap_or_else(|| args.code.clone()),
        parent: args.parent.clone(),
        public_key: public.to_bytes(),
        fingerprint: parcel_format::sign::fingerprint(&public),
        created: clock::now(),
    };
    home.write_secret_key(&key)?;
    if let Err(err) = home.write_identity(&parcel_format::encrypt::Identity::generate()) {
        let _ = std::fs::remove_file(home.secret_key_path());
        return Err(err);
    }
    if let Err(err) = catalog.init_site(&site) {
        // Without the record the keys are orphans that would block the next init.
        let _ = std::fs::remove_file(home.secret_key_path());
        let _ = std::fs::remove_file(home.identity_path());
        return Err(match err {
            CatalogError::SiteExists(code) => CliError::SiteExists {
                home: home.root().to_path_buf(),
                code,
            },
            other => other.into(),
        });
    }

    output::print(&format!(
        "Site {} ({}) is set up in {}\nFingerprint: {}\n",
        site.code,
        printable(&site.name),
        home.root().display(),
        site.fingerprint
    ))?;
    ctx.note(&format!(
        "next: run `{parcel} key export --out {code}.pub` and give the file to the sites that \
         exchange parcels with {code}; read them the fingerprint over the phone so that they \
         can check it.",
        parcel = ctx.parcel_command(),
        code = site.code
    ));
    Ok(())
}

/// `site show --json`: the site record plus its public key and home.
#[derive(Serialize)]
struct SiteView<'a> {
    #[serde(flatten)]
    site: &'a SiteRecord,
    /// Public key, 64 lowercase hex digits.
    key: String,
    /// The age X25519 recipient parcels for this site are encrypted to;
    /// `None` until the home has an encryption key.
    encryption_key: Option<String>,
    home: String,
}

/// `parcel site show`: this site's code, name, parent, fingerprint and home.
pub fn show(ctx: &Context, args: &SiteShowArgs) -> Result<(), CliError> {
    let catalog = ctx.home.open_catalog()?;
    let site = catalog.site()?;
    let encryption_key = ctx
        .home
        .load_identity()?
        .map(|identity| identity.to_public().to_string());
    if args.json {
        return output::print_json(&SiteView {
            site: &site,
            key: crate::key::hex(&site.public_key),
            encryption_key,
            home: ctx.home.root().display().to_string(),
        });
    }
    let text = format!(
        "Site         {}\nName         {}\nParent       {}\nFingerprint  {}\nEncryption   {}\nCreated      {}\nHome         {}\n",
        site.code,
        printable(&site.name),
        site.parent.as_deref().unwrap_or("(none)"),
        site.fingerprint,
        encryption_key
            .as_deref()
            .unwrap_or("(none yet: `parcel key export` makes one)"),
        clock::format_utc(site.created),
        ctx.home.root().display()
    );
    output::print(&text)
}

/// The home of another site that `home` lies inside, if any: the path is
/// resolved (symlinks, `..`) as far as it exists, then its directories are
/// looked at upwards for a site's catalog and key.
fn enclosing_site(home: &std::path::Path) -> Option<std::path::PathBuf> {
    use std::path::Path;
    let existing = home
        .ancestors()
        .find(|p| p.as_os_str().is_empty() || p.exists())?;
    let real = std::fs::canonicalize(if existing.as_os_str().is_empty() {
        Path::new(".")
    } else {
        existing
    })
    .ok()?;
    // A home that exists already is not inside itself.
    let start = if existing == home {
        real.parent()?
    } else {
        real.as_path()
    };
    start
        .ancestors()
        .find(|dir| dir.join("catalog.db").is_file() && dir.join("site.key").is_file())
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_codes_are_three_uppercase_letters_or_digits() {
        assert!(is_site_code("CEN"));
        assert!(is_site_code("N01"));
        assert!(!is_site_code("cen"));
        assert!(!is_site_code("CENT"));
        assert!(!is_site_code("CE"));
        assert!(!is_site_code("C-N"));
        assert!(!is_site_code("ÇEN"));
    }

    #[test]
    fn site_names_are_printable_and_trimmed() {
        assert!(is_site_name("Central office"));
        assert!(!is_site_name(""));
        assert!(!is_site_name(" padded"));
        assert!(!is_site_name("evil\u{1b}[2J"));
        assert!(!is_site_name(&"x".repeat(MAX_NAME_CHARS + 1)));
    }
}
