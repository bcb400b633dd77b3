//! `parcel import`: verifies a parcel and imports its package into
//! `<home>/packages/<ID>/<VERSION>/`, atomically, then writes a signed receipt
//! for the source site.
//!
//! Steps, under the home-wide lock: clean up what an interrupted run left;
//! authenticate the volumes; apply policy (addressed to this site, signer is
//! the source, the package's origin unchanged, no rollback, no conflicting
//! content, not already imported); check free space; extract into a fresh
//! staging directory (every hash is checked on the way); one `syncfs`; rename
//! into the store; record in the catalog. A crash at any point leaves either the old store or the complete
//! new package, and the next run removes any leftovers.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use parcel_format::manifest::hex;
use parcel_format::read::Parcel;
use parcel_format::Problem;
use serde_json::json;

use crate::catalog::{Catalog, Direction, PackageRecord, ParcelRecord, Status};
use crate::cli::ImportArgs;
use crate::clock;
use crate::disk::{available_space, human_bytes, sync_dir, sync_filesystem};
use crate::error::CliError;
use crate::home::{Context, Home};
use crate::media::{
    catalog_path, choose_copies, one_parcel, problems_error, subject_of, volume_files,
    RepairScratch, Trust,
};
use crate::output;
use crate::progress::Progress;
use crate::receipt_file::{check_receipt_path, existing_at, Existing, ReceiptWriter};

/// Runs `parcel import`.
pub fn run(ctx: &Context, args: &ImportArgs) -> Result<(), CliError> {
    let started = SystemTime::now();
    let mut catalog = ctx.home.open_catalog()?;
    let (site, key) = ctx.home.site_identity(&catalog)?;
    let receipts = ReceiptWriter {
        home: &ctx.home,
        explicit: args.receipt.as_deref(),
        site: &site.code,
        key: &key,
        started,
    };
    if let Some(path) = &args.receipt {
        check_receipt_path(path)?;
    }
    let _lock = ctx.home.lock_exclusive(ctx.quiet)?;
    clean_up(ctx, &catalog)?;
    let trust = Trust::load(&catalog, &site)?;
    let files = volume_files(&args.paths)?;
    one_parcel(&files, &trust.keys)?;
    let (files, left_out) = choose_copies(ctx, files, &trust.keys);
    // Volumes lost or damaged within the repair data are rebuilt first, into
    // a scratch directory in the staging area (removed when done; `clean_up`
    // removes it after a crash), and the parcel is read from them.
    let scratch = RepairScratch::new(&ctx.home.staging_dir());
    let repair = parcel_format::repair::repair(&files, &trust.keys, scratch.path());
    for note in &repair.notes {
        ctx.note(note);
    }
    // Only an encrypted parcel needs the identity: a damaged `site.age` is
    // reported for one, and does not stop the import of a plain parcel.
    let (identity, identity_error) = match ctx.home.load_identity() {
        Ok(identity) => (identity, None),
        Err(err) => (None, Some(err)),
    };
    let parcel = Parcel::open_with(&repair.paths, &trust.keys, identity.as_ref()).map_err(
        |mut problems| {
            let subject = subject_of(&files, &trust.keys);
            if identity.is_none()
                && problems
                    .iter()
                    .any(|p| matches!(p, Problem::CannotDecrypt { .. }))
            {
                return identity_error.unwrap_or_else(|| CliError::Refused {
                    subject,
                    reason: no_encryption_key(&ctx.home),
                });
            }
            problems.extend(repair.problems.iter().cloned());
            problems_error(&subject, &problems, &trust, &[])
        },
    )?;
    let manifest = parcel.manifest();
    let id = manifest.parcel_id.to_string();
    let subject = format!(
        "parcel {id} ({} v{})",
        manifest.package_id, manifest.package_version
    );
    if !parcel.problems().is_empty() || !repair.problems.is_empty() {
        let mut problems = repair.problems.clone();
        problems.extend(parcel.problems().iter().cloned());
        return Err(problems_error(
            &subject,
            &problems,
            &trust,
            &volume_paths(&parcel),
        ));
    }
    let repaired: Vec<String> = repair.repaired.iter().map(ToString::to_string).collect();
    if !args.json {
        for line in &repaired {
            output::print(&format!("repaired: {line}\n"))?;
        }
    }
    let refused = |reason: String| CliError::Refused {
        subject: subject.clone(),
        reason,
    };
    if parcel.signer() != manifest.source_site {
        return Err(refused(format!(
            "it claims to come from site {} but is signed with the key of site {}",
            manifest.source_site,
            parcel.signer()
        )));
    }
    parcel
        .check_destination(&site.code)
        .map_err(|p| refused(format!("{p}; it must be imported at its destination site")))?;
    // Whose package this is (`origin_site`) is the signer's claim: any
    // trusted site could relay a newer "version" of another site's package.
    // A site with a parent takes packages of other sites only from it; one
    // without takes them only with --relayed-by; none takes its own.
    let relayed = manifest.origin_site != manifest.source_site;
    if let Some(given) = &args.relayed_by {
        if !relayed || *given != manifest.source_site {
            return Err(CliError::Usage(format!(
                "--relayed-by {given} does not match this parcel, {}; nothing was imported",
                if relayed {
                    format!(
                        "relayed by site {} (package of site {})",
                        manifest.source_site, manifest.origin_site
                    )
                } else {
                    format!(
                        "whose package is its signer's own ({})",
                        manifest.source_site
                    )
                }
            )));
        }
    }
    // This site's own packages come from here, never back through another.
    if relayed && manifest.origin_site == site.code {
        return Err(refused(format!(
            "site {} relays package {} as this site's own (origin {}); a site's own packages are never taken from another site, so nothing was imported. Ask {} where it got it",
            manifest.source_site, manifest.package_id, site.code, manifest.source_site
        )));
    }
    if relayed && args.relayed_by.is_none() {
        match site.parent.as_deref() {
            Some(parent) if parent != manifest.source_site => {
                return Err(refused(format!(
                    "site {} relays package {} of site {}, but this site takes packages of other sites only from its parent, {parent}; nothing was imported. Ask {parent} to forward it; or, once {} is known to forward to this site, import with --relayed-by {}",
                    manifest.source_site,
                    manifest.package_id,
                    manifest.origin_site,
                    manifest.source_site,
                    manifest.source_site
                )));
            }
            Some(_) => {}
            // Relays go from a parent to its children: a site without a
            // parent takes one only when told whom from (any trusted site
            // could otherwise claim another's package line here).
            None => {
                return Err(refused(format!(
                    "site {} relays package {} of site {}, and this site has no parent to take other sites' packages from; nothing was imported. Once {} is known to forward {}'s packages to this site, import with --relayed-by {}",
                    manifest.source_site,
                    manifest.package_id,
                    manifest.origin_site,
                    manifest.source_site,
                    manifest.origin_site,
                    manifest.source_site
                )));
            }
        }
    }
    // FORMAT.md allows any u64; the catalog (SQLite) holds up to i64::MAX,
    // as `create --version` does.
    if i64::try_from(manifest.package_version).is_err() {
        return Err(refused(format!(
            "its package version {} is above {}, the largest this site's catalog records; nothing was imported: ask {} to send the package under a smaller version number",
            manifest.package_version,
            i64::MAX,
            manifest.source_site
        )));
    }
    if let Some(path) = &args.receipt {
        if let Existing::ReceiptOf(other) = existing_at(path) {
            if other != id {
                return Err(CliError::Usage(format!(
                    "--receipt {} holds the receipt of another parcel ({other}); give a new file name (nothing was imported)",
                    path.display()
                )));
            }
        }
    }
    let digest = hex(&manifest.tree_digest());
    let previous = catalog.find_parcel(&id)?;
    // This very parcel was imported, but its copy in the store is gone
    // (deleted by hand, a restore from an old backup): it is installed again.
    let mut restoring = None;
    if let Some(previous) = &previous {
        // A parcel id names one parcel: another parcel under a known id (a
        // buggy or hostile source reusing ids) is neither a replay nor a retry.
        let same = previous.direction == Direction::Incoming
            && previous.source_site == manifest.source_site
            && previous.package_id == manifest.package_id
            && previous.package_version == manifest.package_version
            && previous.tree_digest == digest;
        if !same {
            return Err(refused(format!(
                "its id is already recorded here for {} v{} ({} parcel from {} to {}); a parcel id is never reused",
                previous.package_id,
                previous.package_version,
                match previous.direction {
                    Direction::Incoming => "an incoming",
                    Direction::Outgoing => "an outgoing",
                },
                previous.source_site,
                previous.destination_site
            )));
        }
        // The version as the store holds it, with this parcel's content
        // (brought by this parcel or by another with the same content).
        let held = catalog
            .package(&manifest.package_id, manifest.package_version)?
            .filter(|p| p.tree_digest == digest);
        if previous.status == Status::Imported
            && held
                .as_ref()
                .is_some_and(|p| store_copy_missing(&ctx.home, p))
        {
            restoring = held;
        } else if previous.status == Status::Imported {
            // The receipt may have been lost (a kill after the import was
            // recorded, a medium gone): write it again, the same receipt
            // (same import time, and Ed25519 signs deterministically); the
            // store is untouched.
            // Nothing to import; but the copy in the store is read back
            // against what was imported, so that one changed by hand since
            // is not passed over in silence.
            let store_path = ctx
                .home
                .packages_dir()
                .join(&manifest.package_id)
                .join(manifest.package_version.to_string());
            let store_intact = match held
                .as_ref()
                .map(|_| parcel_format::write::tree_digest_of_dir(&store_path))
            {
                Some(Ok(read)) => Some(hex(&read) == digest),
                Some(Err(err)) => {
                    output::warn(&format!(
                        "the copy of {} v{} in the store ({}) could not be read back to check it: {err}",
                        manifest.package_id,
                        manifest.package_version,
                        store_path.display()
                    ));
                    None
                }
                None => None,
            };
            if store_intact == Some(false) {
                output::warn(&format!(
                    "the copy of {} v{} in the store ({}) is not what was imported: something changed it since. To restore it, move that directory out of the store and run this import again",
                    manifest.package_id,
                    manifest.package_version,
                    store_path.display()
                ));
            }
            let imported = first_import_time(&catalog, &id, held.as_ref())?;
            let path = receipts.write(&files, &parcel, imported)?;
            receipt_not_beside(ctx, args, &path, &manifest.source_site);
            if args.json {
                output::print_json(&json!({
                    "parcel_id": id,
                    "package_id": manifest.package_id,
                    "version": manifest.package_version,
                    "path": store_path.display().to_string(),
                    "store_intact": store_intact,
                    "files": package_files(manifest),
                    "bytes": manifest.content_bytes(),
                    "receipt": path.display().to_string(),
                    "already_imported": true,
                    "already_in_store": held.is_some(),
                    "origin_handed_over_from": null,
                    "restored": false,
                    "repaired": repaired,
                    "copies_left_out": left_out,
                }))?;
            } else {
                output::print(&format!(
                    "{subject} was already imported; nothing to do (its receipt is written again to {})\n",
                    path.display()
                ))?;
            }
            return Ok(());
        }
    }
    // The origin the package had here, when this import hands it over to
    // another (`--new-origin`).
    let mut handed_over_from = None;
    if let Some(latest) = catalog
        .latest_package(&manifest.package_id)?
        .filter(|_| restoring.is_none())
    {
        // A package id belongs to the site it comes from: any trusted site
        // can sign a parcel, and one bringing another origin's package id
        // would otherwise add its versions beside (or above) the real ones,
        // and be forwarded on as that package.
        if latest.origin_site != manifest.origin_site {
            match &args.new_origin {
                Some(accepted) if *accepted == manifest.origin_site => {
                    handed_over_from = Some(latest.origin_site.clone());
                }
                Some(accepted) => {
                    return Err(CliError::Usage(format!(
                        "--new-origin {accepted} does not match this parcel, whose package {} comes from site {}; nothing was imported",
                        manifest.package_id, manifest.origin_site
                    )))
                }
                None => {
                    return Err(refused(format!(
                        "the store holds {} from site {} (v{}, parcel {}), but this parcel brings a package of that id from site {} (signed by {}); nothing was imported. A package id keeps its origin: ask {} whether {} now publishes it, and only then import with --new-origin {}",
                        manifest.package_id,
                        latest.origin_site,
                        latest.version,
                        latest.parcel_id,
                        manifest.origin_site,
                        parcel.signer(),
                        latest.origin_site,
                        manifest.origin_site,
                        manifest.origin_site
                    )))
                }
            }
        }
        if latest.version > manifest.package_version {
            let via = if latest.source_site == latest.origin_site {
                String::new()
            } else {
                format!(" via {}", latest.source_site)
            };
            return Err(refused(format!(
                "the store holds version {} of {} (from site {}{via}, parcel {}), newer than this parcel's version {} (rollback refused); an older version is never imported over a newer one: ask the sender for a newer version",
                latest.version,
                manifest.package_id,
                latest.origin_site,
                latest.parcel_id,
                manifest.package_version
            )));
        }
    }
    let existing = catalog.package(&manifest.package_id, manifest.package_version)?;
    if let Some(existing) = &existing {
        if existing.tree_digest != digest {
            return Err(refused(format!(
                "the store already holds {} v{} with other content (from parcel {}); a version's content never changes",
                manifest.package_id, manifest.package_version, existing.parcel_id
            )));
        }
    }
    // A delta parcel needs the base version it builds on, as its sender knew it.
    let base_dir = match &manifest.base {
        None => None,
        Some(base) => {
            let held = catalog.package(&manifest.package_id, base.package_version)?;
            match held {
                Some(held) if store_copy_missing(&ctx.home, &held) => {
                    return Err(refused(format!(
                        "it is a delta parcel on {} v{}, whose copy in this store ({}) is missing; import v{}'s parcel again to restore it, then this one, or ask {} for a full parcel",
                        manifest.package_id,
                        base.package_version,
                        store_path(&ctx.home, &held).display(),
                        base.package_version,
                        manifest.source_site
                    )))
                }
                Some(held) if held.tree_digest == hex(&base.tree_digest) => {
                    Some(store_path(&ctx.home, &held))
                }
                Some(_) => {
                    return Err(refused(format!(
                        "it is a delta parcel on {} v{}, and the v{} in this store has other content; ask {} for a full parcel",
                        manifest.package_id, base.package_version, base.package_version, manifest.source_site
                    )))
                }
                None => {
                    return Err(refused(format!(
                        "it is a delta parcel on {} v{}, which this store does not hold; import v{} first, or ask {} for a full parcel",
                        manifest.package_id, base.package_version, base.package_version, manifest.source_site
                    )))
                }
            }
        }
    };
    // A new version goes where nothing may be yet: a directory the catalog
    // does not list is someone's (`clean_up` has removed an interrupted
    // import's), and is never written over.
    if restoring.is_none() && existing.is_none() {
        let target = store_dir(&ctx.home, &manifest.package_id, manifest.package_version);
        if fs::symlink_metadata(&target).is_ok() {
            return Err(CliError::Failed {
                subject: subject.clone(),
                reason: format!(
                    "{} already exists in the store, but this site's catalog does not record it; nothing was imported: move that directory out of the store (keep it if it is yours) and run the import again",
                    target.display()
                ),
            });
        }
    }
    let now = clock::now();
    if previous.is_none() {
        let record = ParcelRecord {
            parcel_id: id.clone(),
            direction: Direction::Incoming,
            status: Status::Received,
            source_site: manifest.source_site.clone(),
            origin_site: manifest.origin_site.clone(),
            destination_site: site.code.clone(),
            package_id: manifest.package_id.clone(),
            package_version: manifest.package_version,
            created: manifest.created,
            comment: manifest.comment.clone(),
            bytes: parcel.stored_bytes(),
            volume_count: manifest.volume_count,
            volumes: files.iter().map(|p| catalog_path(p)).collect(),
            tree_digest: digest.clone(),
            encrypted: parcel.is_encrypted(),
        };
        let detail = if parcel.is_encrypted() {
            "volumes authenticated, decrypted with this site's key"
        } else {
            "volumes authenticated"
        };
        catalog.add_parcel(&record, now, detail)?;
    }
    // The time the store records and the receipt states (a restored copy
    // keeps the first import's).
    let imported = match &restoring {
        Some(held) => first_import_time(&catalog, &id, Some(held))?,
        None => clock::now(),
    };
    let already_in_store = restoring.is_none()
        && existing
            .as_ref()
            .is_some_and(|p| !store_copy_missing(&ctx.home, p));
    // The package's regular files and their bytes, which `extract` counts as
    // it writes them.
    let (file_count, bytes) = if let Some(held) = &restoring {
        let (summary, copy) = install(ctx, &parcel, base_dir.as_deref(), &trust, &subject, true)
            .map_err(|e| note_failure(&mut catalog, &id, "not installed again", e))?;
        // The catalog lists this version already: the copy is recorded.
        copy.recorded();
        let store = store_path(&ctx.home, held);
        note_after_success(
            &mut catalog,
            &id,
            &format!(
                "its copy in the store was missing; installed again into {}",
                store.display()
            ),
            &format!("{subject} was installed again into {}", store.display()),
        );
        (summary.files, summary.bytes)
    } else if already_in_store {
        let detail = "content already in the store; nothing written";
        match &handed_over_from {
            Some(_) => catalog.record_handover(
                &id,
                imported,
                detail,
                (&manifest.package_id, manifest.package_version),
                &manifest.origin_site,
            )?,
            None => catalog.advance(&id, Status::Imported, imported, detail)?,
        }
        // As an import that writes them reports them: the package's.
        (package_files(manifest), manifest.content_bytes())
    } else {
        let (summary, copy) = install(ctx, &parcel, base_dir.as_deref(), &trust, &subject, false)
            .map_err(|e| note_failure(&mut catalog, &id, "not imported", e))?;
        let record = PackageRecord {
            package_id: manifest.package_id.clone(),
            version: manifest.package_version,
            parcel_id: id.clone(),
            source_site: manifest.source_site.clone(),
            origin_site: manifest.origin_site.clone(),
            tree_digest: digest.clone(),
            files: summary.files,
            bytes: summary.bytes,
            imported_at: imported,
        };
        if let Err(err) = catalog.record_import(
            &record,
            clock::now(),
            &format!("imported into {}", store_path(&ctx.home, &record).display()),
        ) {
            let err = copy.take_back(
                err.into(),
                &subject,
                "run the same import again once the catalog can be written",
            );
            return Err(note_failure(&mut catalog, &id, "not imported", err));
        }
        copy.recorded();
        (summary.files, summary.bytes)
    };
    let receipt_path = receipts.write(&files, &parcel, imported).map_err(|e| CliError::Failed {
        subject: subject.clone(),
        reason: format!(
            "imported into the store, but its receipt could not be written: {e}. Run the same `parcel import` again (with --receipt FILE in a writable place): it writes the receipt without importing again"
        ),
    })?;
    note_after_success(
        &mut catalog,
        &id,
        &format!("receipt written to {}", catalog_path(&receipt_path)),
        &format!(
            "{subject} was imported and its receipt written to {}",
            receipt_path.display()
        ),
    );
    match (&handed_over_from, &args.new_origin) {
        (Some(old), _) => output::warn(&format!(
            "{} changed origin from {old} to {} here (--new-origin): its later versions are accepted from {} only",
            manifest.package_id, manifest.origin_site, manifest.origin_site
        )),
        (None, Some(_)) => ctx.note(&format!(
            "--new-origin had nothing to do: {} comes from {} here already, or is new to this store",
            manifest.package_id, manifest.origin_site
        )),
        (None, None) => {}
    }
    let store = store_dir(&ctx.home, &manifest.package_id, manifest.package_version);
    receipt_not_beside(ctx, args, &receipt_path, &manifest.source_site);
    if args.json {
        output::print_json(&json!({
            "parcel_id": id,
            "package_id": manifest.package_id,
            "version": manifest.package_version,
            "path": store.display().to_string(),
            "store_intact": null,
            "files": file_count,
            "bytes": bytes,
            "receipt": receipt_path.display().to_string(),
            "already_imported": false,
            "already_in_store": already_in_store,
            "origin_handed_over_from": handed_over_from,
            "restored": restoring.is_some(),
            "repaired": repaired,
            "copies_left_out": left_out,
        }))?;
    } else {
        output::print(&format!(
            "{} {subject} into {}\nreceipt for site {}: {}\n",
            if restoring.is_some() {
                "its copy in the store was missing: installed again"
            } else {
                "imported"
            },
            store.display(),
            manifest.source_site,
            receipt_path.display()
        ))?;
        ctx.note(&format!(
            "next: send the receipt to site {}; there, run `parcel receipt apply FILE`",
            manifest.source_site
        ));
    }
    Ok(())
}

/// Says, also under `--quiet` and with `--json`, that the receipt went to
/// the home rather than beside the volumes, where the user would look for
/// it (the medium read-only or full, or a file in the way).
fn receipt_not_beside(ctx: &Context, args: &ImportArgs, path: &Path, source_site: &str) {
    if args.receipt.is_none() && path.starts_with(ctx.home.receipts_dir()) {
        output::warn(&format!(
            "the receipt could not go beside the volumes (the medium is read-only, full, or a file is in the way): it is {}; copy it onto the medium going back to site {source_site}",
            path.display()
        ));
    }
}

/// Records in the parcel's history why its install failed, as `what` (on one line, at
/// most `NOTE_CHARS` characters; best effort: the error is what the user
/// gets either way), so that `show` does not leave a received parcel
/// unexplained.
fn note_failure(catalog: &mut Catalog, id: &str, what: &str, error: CliError) -> CliError {
    const NOTE_CHARS: usize = 400;
    let text = error.to_string();
    let mut line: String = text
        .split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if let Some((cut, _)) = line.char_indices().nth(NOTE_CHARS) {
        line.truncate(cut);
        line.push('…');
    }
    let _ = catalog.note(id, clock::now(), &format!("{what}: {line}"));
    error
}

/// Adds `detail` to the history of parcel `id` once the import's work is
/// done, as `done` says (the package in the store and recorded, the receipt
/// written): a catalog that cannot take the note then gets a warning, not
/// an error, since exiting 1 would tell the user that the import failed.
fn note_after_success(catalog: &mut Catalog, id: &str, detail: &str, done: &str) {
    if let Err(err) = catalog.note(id, clock::now(), detail) {
        output::warn(&format!(
            "{done}; only the note \"{detail}\" could not be added to the parcel's history in the catalog ({err}), and nothing needs doing about it"
        ));
    }
}

/// Why an encrypted parcel cannot be read at a site whose home has no
/// encryption key: it may be addressed elsewhere, or `site.age` was lost.
fn no_encryption_key(home: &Home) -> String {
    format!(
        "the parcel is encrypted, and this site has no encryption key ({} does not exist); nothing was imported. If the parcel is addressed to this site, put site.age back from this site's backup and import again; otherwise import it at the site it is addressed to",
        home.identity_path().display()
    )
}

/// When this site first imported parcel `id`, which its receipt states: the
/// store's record when this parcel brought the content, else the time the
/// parcel was recorded imported (its content already in the store).
fn first_import_time(
    catalog: &Catalog,
    id: &str,
    held: Option<&PackageRecord>,
) -> Result<i64, CliError> {
    if let Some(p) = held.filter(|p| p.parcel_id == id) {
        return Ok(p.imported_at);
    }
    Ok(catalog
        .history(id)?
        .iter()
        .find(|e| e.status == Status::Imported)
        .map_or_else(clock::now, |e| e.at))
}

/// The package's regular files, as an extraction writes and counts them;
/// `Manifest::content_bytes` is their bytes.
fn package_files(manifest: &parcel_format::Manifest) -> u64 {
    manifest
        .entries
        .iter()
        .filter(|e| matches!(e.kind, parcel_format::EntryKind::File { .. }))
        .count() as u64
}

/// Whether the store copy of a version the catalog lists is gone (not
/// merely unreadable).
pub(crate) fn store_copy_missing(home: &Home, p: &PackageRecord) -> bool {
    fs::symlink_metadata(store_path(home, p))
        .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
}

fn store_path(home: &Home, p: &PackageRecord) -> PathBuf {
    store_dir(home, &p.package_id, p.version)
}

/// Each authenticated volume's number and file.
fn volume_paths(parcel: &Parcel) -> Vec<(u32, PathBuf)> {
    parcel
        .volumes()
        .iter()
        .map(|(n, v)| (*n, v.path.clone()))
        .collect()
}

/// Extracts into staging, syncs once, and renames into the store. The
/// package is then in the store but not yet recorded: the caller records it
/// and calls [`UnrecordedCopy::recorded`], or takes it back out.
///
/// `restoring`: the catalog records this version already (its store copy
/// went missing), which changes what a copy left in the store means.
fn install(
    ctx: &Context,
    parcel: &Parcel,
    base_dir: Option<&Path>,
    trust: &Trust,
    subject: &str,
    restoring: bool,
) -> Result<(parcel_format::extract::ExtractSummary, UnrecordedCopy), CliError> {
    let manifest = parcel.manifest();
    let staging_root = ctx.home.staging_dir();
    fs::create_dir_all(&staging_root).map_err(CliError::io("create", &staging_root))?;
    let needed = needed_bytes(manifest, base_dir);
    let available = available_space(&staging_root)
        .map_err(CliError::io("check free space of", &staging_root))?;
    if available < needed {
        return Err(CliError::NoSpace {
            place: staging_root.display().to_string(),
            needed: human_bytes(needed),
            available: format!("{} available", human_bytes(available)),
            advice: "free some space and run the import again",
        });
    }
    let staging = staging_root.join(manifest.parcel_id.to_string());
    let package_dir = ctx.home.packages_dir().join(&manifest.package_id);
    let target = store_dir(&ctx.home, &manifest.package_id, manifest.package_version);
    // The package's directory in the store if there is one (it may be a
    // link to another disk), else the store's.
    let packages = ctx.home.packages_dir();
    fs::create_dir_all(&packages).map_err(CliError::io("create", &packages))?;
    let store_side = if package_dir.is_dir() {
        &package_dir
    } else {
        &packages
    };
    check_store_reachable(&staging_root, store_side, &staging, &target, manifest)?;
    fs::create_dir(&staging).map_err(CliError::io("create", &staging))?;
    let bar = Progress::bytes(ctx, "Importing", manifest.content_bytes());
    let result = parcel.extract_with_base(&staging, base_dir, &mut |done| bar.set(done));
    bar.finish();
    let summary = match result {
        Ok(summary) => summary,
        Err(problem) => {
            let _ = fs::remove_dir_all(&staging);
            if let Problem::Write { path, source } = &problem {
                if source.kind() == ErrorKind::StorageFull {
                    return Err(CliError::NoSpace {
                        place: path.display().to_string(),
                        needed: human_bytes(needed),
                        available: format!(
                            "{} available",
                            human_bytes(available_space(&staging_root).unwrap_or(0))
                        ),
                        advice: "the disk filled during the import; nothing was imported — free some space and run the import again",
                    });
                }
            }
            return Err(problems_error(
                subject,
                &[problem],
                trust,
                &volume_paths(parcel),
            ));
        }
    };
    // Durable before the rename: a kill between the rename and the
    // catalog's record leaves the marker, and the next import's `clean_up`
    // knows the directory for this import's (and nothing else for one).
    let marker = install_marker(&ctx.home, &manifest.parcel_id.to_string());
    let new_package = fs::symlink_metadata(&package_dir).is_err();
    let switched = (|| {
        sync_filesystem(&staging).map_err(CliError::io("sync", &staging))?;
        fs::create_dir_all(&package_dir).map_err(CliError::io("create", &package_dir))?;
        write_marker(
            &marker,
            &format!("{}/{}\n", manifest.package_id, manifest.package_version),
        )
        .map_err(CliError::io("write", &marker))?;
        sync_dir(&staging_root).map_err(CliError::io("sync", &staging_root))?;
        if let Err(err) = fs::rename(&staging, &target) {
            // Nothing moved: the marker must not name what is there now.
            let _ = fs::remove_file(&marker);
            return Err(CliError::io("move the staged package into", &target)(err));
        }
        Ok(())
    })();
    if let Err(err) = switched {
        // Nothing reached the store: the staged copy goes now, not at the
        // next import (which would call it the leftover of an interrupted one).
        let _ = fs::remove_dir_all(&staging);
        if new_package {
            let _ = fs::remove_dir(&package_dir);
        }
        return Err(err);
    }
    let copy = UnrecordedCopy {
        store: target,
        package_dir,
        new_package,
        staging,
        marker,
        restoring,
    };
    if let Err(err) = sync_dir(&copy.package_dir) {
        let err = CliError::io("sync", &copy.package_dir)(err);
        return Err(copy.take_back(
            err,
            subject,
            "check the disk that holds the store, then run the same import again",
        ));
    }
    Ok((summary, copy))
}

/// A package `install` renamed into the store, from the rename until the
/// catalog records the import. Its install marker names it all that time,
/// so that a kill leaves it for the next import's `clean_up` to remove.
struct UnrecordedCopy {
    /// `<home>/packages/<id>/<version>`, where it is now.
    store: PathBuf,
    /// `<home>/packages/<id>`, whose entries the rename changed.
    package_dir: PathBuf,
    /// Whether this install made `package_dir` (the store's first version
    /// of the package).
    new_package: bool,
    /// `<home>/staging/<parcel id>`, where it came from.
    staging: PathBuf,
    marker: PathBuf,
    /// The catalog lists the version already (`install`'s `restoring`).
    restoring: bool,
}

impl UnrecordedCopy {
    /// The catalog records the import: the marker goes (best effort: left
    /// behind, the next `clean_up` finds the version recorded and only
    /// removes the marker).
    fn recorded(self) {
        let _ = fs::remove_file(&self.marker);
    }

    /// A step after the rename failed with `error`: moves the copy back out
    /// of the store, so that a failed import leaves the store as it was,
    /// and returns the error to give the user, with `advice` when that
    /// worked. When even that fails, the error says that the copy is in the
    /// store and what the next import does with it.
    fn take_back(self, error: CliError, subject: &str, advice: &str) -> CliError {
        let reason = match self.move_back() {
            Ok(()) => format!(
                "{error}; nothing was {} (the package was taken out of the store again): {advice}",
                if self.restoring {
                    "installed again"
                } else {
                    "imported"
                }
            ),
            Err(undo) if self.restoring => format!(
                "{error}; and the package could not be taken out of the store again ({undo}): {} holds it, but it may not survive a power loss. Run the same import again: it checks that copy against what was imported",
                self.store.display()
            ),
            Err(undo) => format!(
                "{error}; and the package could not be taken out of the store again ({undo}): {} holds it, but this site's catalog does not record it. Run the same import again: it removes that copy and imports the package afresh",
                self.store.display()
            ),
        };
        CliError::Failed {
            subject: subject.to_owned(),
            reason,
        }
    }

    /// Renames the copy back to staging and removes it there. The marker
    /// goes last: until then a kill leaves it naming the version, and the
    /// next `clean_up` removes the copy from wherever it is.
    fn move_back(&self) -> Result<(), CliError> {
        fs::rename(&self.store, &self.staging).map_err(CliError::io(
            "move the package out of the store to",
            &self.staging,
        ))?;
        // Best effort: the disk has just failed once, and what is left in
        // staging is removed by the next import either way.
        if self.new_package {
            // Empty now, as it was before it was made for this version.
            let _ = fs::remove_dir(&self.package_dir);
        } else {
            let _ = sync_dir(&self.package_dir);
        }
        let _ = fs::remove_dir_all(&self.staging);
        let _ = fs::remove_file(&self.marker);
        Ok(())
    }
}

/// Refuses, before anything is extracted, a store the staged package could
/// not be moved into: one on another file system than the staging directory
/// (the switch is one `rename`, which cannot cross file systems), or paths
/// that would be too long for the system there (the file table allows
/// 4,096 bytes relative to the package; the home's own path comes on top).
fn check_store_reachable(
    staging_root: &Path,
    store: &Path,
    staging: &Path,
    target: &Path,
    manifest: &parcel_format::manifest::Manifest,
) -> Result<(), CliError> {
    use std::os::unix::fs::MetadataExt;
    let device = |dir: &Path| {
        fs::metadata(dir)
            .map(|m| m.dev())
            .map_err(CliError::io("inspect", dir))
    };
    if device(staging_root)? != device(store)? {
        return Err(CliError::Failed {
            subject: format!("the store directory {}", store.display()),
            reason: format!(
                "it is on another file system than the staging directory {}, and a package is moved into the store by one rename, which cannot cross file systems; nothing was imported. Put the staging directory on the store's file system (move it there and leave a symbolic link in its place), or mount that disk at the home itself",
                staging_root.display()
            ),
        });
    }
    // PATH_MAX counts the terminating NUL.
    const PATH_LIMIT: usize = 4095;
    let prefix = staging.as_os_str().len().max(target.as_os_str().len()) + 1;
    if let Some(entry) = manifest
        .entries
        .iter()
        .find(|e| prefix + e.path.len() > PATH_LIMIT)
    {
        let len = entry.path.len();
        // The shortest home there can be: `/h`, staging `/h/staging/<id>/`.
        const SHORTEST_PREFIX: usize = "/h/staging/".len() + 32 + 1;
        let what = if SHORTEST_PREFIX + len > PATH_LIMIT {
            "no home on this system can hold it: ask the sender to shorten it".to_owned()
        } else {
            format!(
                "import it into a home whose path is shorter by {} bytes or more (`--home`)",
                prefix + len - PATH_LIMIT
            )
        };
        return Err(CliError::Failed {
            subject: format!("the path {}", crate::output::printable(&entry.path)),
            reason: format!(
                "it is {len} bytes, and under this home's store it would be {}, over the system's limit of {PATH_LIMIT}; nothing was imported. {what}",
                prefix + len
            ),
        });
    }
    Ok(())
}

/// What an import writes into staging: each file's size and a block per
/// entry, where a file a delta takes whole from its base counts as the
/// base's copy (no more than declared). A signed size that is not the
/// base's is refused by the extraction as a changed base, not here as a
/// disk too small for a size no disk has. Saturating: the sizes of those
/// files are not capped by the manifest's checks.
fn needed_bytes(manifest: &parcel_format::Manifest, base_dir: Option<&Path>) -> u64 {
    manifest
        .entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let declared = match entry.kind {
                parcel_format::EntryKind::File { size, .. } => size,
                _ => 0,
            };
            let size = match base_dir {
                Some(base) if manifest.is_whole_from_base(i) => {
                    fs::symlink_metadata(base.join(&entry.path))
                        .map_or(0, |meta| meta.len().min(declared))
                }
                _ => declared,
            };
            size.saturating_add(4096)
        })
        .fold(0, u64::saturating_add)
}

/// `<home>/packages/<id>/<version>`.
pub(crate) fn store_dir(home: &Home, package_id: &str, version: u64) -> PathBuf {
    home.packages_dir()
        .join(package_id)
        .join(version.to_string())
}

/// `<home>/staging/<parcel id>.installing`: present from just before an
/// install's rename into the store until the catalog records it. It holds
/// `<package id>/<version>`.
fn install_marker(home: &Home, parcel_id: &str) -> PathBuf {
    home.staging_dir()
        .join(format!("{parcel_id}{MARKER_SUFFIX}"))
}

const MARKER_SUFFIX: &str = ".installing";

fn write_marker(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = fs::File::create(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Removes what an interrupted import left, under the home lock: a package
/// renamed into the store by an import killed before the catalog recorded
/// it (its install marker says which), then everything in staging.
///
/// Nothing else in the store is ever removed: a directory the catalog does
/// not list and no marker names (moved aside by hand, or imported after the
/// catalog's backup was taken) is someone's data, named in a warning.
fn clean_up(ctx: &Context, catalog: &Catalog) -> Result<(), CliError> {
    let staging = ctx.home.staging_dir();
    let entries: Vec<_> = fs::read_dir(&staging)
        .map(|entries| entries.flatten().collect())
        .unwrap_or_default();
    for entry in entries.iter().filter(|e| {
        e.file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(MARKER_SUFFIX))
    }) {
        let marker = entry.path();
        if let Some((id, version)) = read_marker(&marker) {
            let target = store_dir(&ctx.home, &id, version);
            if catalog.package(&id, version)?.is_none() && fs::symlink_metadata(&target).is_ok() {
                ctx.note(&format!(
                    "removing {}, an import interrupted before it was recorded",
                    target.display()
                ));
                // Out of the store first, in one step: a kill during the
                // removal leaves it in staging, emptied next time.
                let doomed = staging.join(format!(
                    "{}.removing",
                    entry
                        .file_name()
                        .to_string_lossy()
                        .trim_end_matches(MARKER_SUFFIX)
                ));
                match fs::rename(&target, &doomed) {
                    Ok(()) => remove_any(&doomed)?,
                    Err(_) => remove_any(&target)?,
                }
            }
        }
        remove_any(&marker)?;
    }
    for entry in fs::read_dir(&staging).into_iter().flatten().flatten() {
        ctx.note(&format!(
            "removing {}, left by an interrupted import",
            entry.path().display()
        ));
        remove_any(&entry.path())?;
    }
    let packages = ctx.home.packages_dir();
    let Ok(ids) = fs::read_dir(&packages) else {
        return Ok(());
    };
    for id_dir in ids.flatten() {
        let id = id_dir.file_name().to_string_lossy().into_owned();
        let Ok(versions) = fs::read_dir(id_dir.path()) else {
            continue;
        };
        for version in versions.flatten() {
            let name = version.file_name();
            let parsed = name
                .to_str()
                .and_then(|v| v.parse::<u64>().ok().filter(|n| n.to_string() == v));
            if let Some(v) = parsed {
                if catalog.package(&id, v)?.is_some() {
                    continue;
                }
            }
            output::warn(&format!(
                "{} is in the store but not in this site's catalog; it is left alone: move it out of {}{}",
                output::printable(&version.path().display().to_string()),
                packages.display(),
                if parsed.is_some() {
                    " (while it is there, that version cannot be imported)"
                } else {
                    ""
                }
            ));
        }
    }
    Ok(())
}

/// The package id and version an install marker names; `None` for a
/// marker that is not one (it is removed all the same).
fn read_marker(path: &Path) -> Option<(String, u64)> {
    let mut text = String::new();
    fs::File::open(path)
        .and_then(|f| f.take(1024).read_to_string(&mut text))
        .ok()?;
    // Whole, as written: a cut line could name another version.
    let (id, version) = text.strip_suffix('\n')?.split_once('/')?;
    parcel_format::manifest::check_package_id(id).ok()?;
    let parsed = version.parse::<u64>().ok()?;
    (parsed.to_string() == version).then(|| (id.to_owned(), parsed))
}

fn remove_any(path: &Path) -> Result<(), CliError> {
    let meta = fs::symlink_metadata(path).map_err(CliError::io("inspect", path))?;
    if meta.is_dir() {
        fs::remove_dir_all(path).map_err(CliError::io("remove", path))
    } else {
        fs::remove_file(path).map_err(CliError::io("remove", path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A package `install` has just renamed into a store under `root`, with
    /// its marker, as the copy that stands for it.
    fn switched_copy(root: &Path, restoring: bool) -> UnrecordedCopy {
        let staging_root = root.join("staging");
        let staging = staging_root.join("0123abcd");
        let package_dir = root.join("packages").join("tools");
        fs::create_dir_all(staging.join("bin")).expect("staging");
        fs::write(staging.join("bin").join("run.sh"), b"echo\n").expect("file");
        fs::create_dir_all(&package_dir).expect("package dir");
        let marker = staging_root.join(format!("0123abcd{MARKER_SUFFIX}"));
        write_marker(&marker, "tools/1\n").expect("marker");
        let store = package_dir.join("1");
        fs::rename(&staging, &store).expect("switch");
        UnrecordedCopy {
            store,
            package_dir,
            new_package: false,
            staging,
            marker,
            restoring,
        }
    }

    fn sync_failed(path: &Path) -> CliError {
        CliError::io("sync", path)(std::io::Error::other("Input/output error"))
    }

    #[test]
    fn a_step_failing_after_the_switch_takes_the_package_out_of_the_store() {
        let root = tempfile::tempdir().expect("tempdir");
        let copy = switched_copy(root.path(), false);
        let package_dir = copy.package_dir.clone();
        let error = copy.take_back(
            sync_failed(&package_dir),
            "parcel 0123abcd (tools v1)",
            "run the same import again",
        );
        let text = error.to_string();
        assert!(
            text.starts_with("parcel 0123abcd (tools v1): cannot sync "),
            "{text}"
        );
        assert!(
            text.ends_with(
                "nothing was imported (the package was taken out of the store again): run the same import again"
            ),
            "{text}"
        );
        assert_eq!(error.exit_code(), crate::error::EXIT_FAILURE);
        // The store as before the import, and nothing left in staging.
        assert_eq!(fs::read_dir(&package_dir).expect("list").count(), 0);
        let staging = root.path().join("staging");
        assert_eq!(fs::read_dir(&staging).expect("list").count(), 0);
    }

    #[test]
    fn a_package_that_cannot_be_taken_out_of_the_store_is_named_with_what_the_next_import_does() {
        let root = tempfile::tempdir().expect("tempdir");
        let copy = switched_copy(root.path(), false);
        // Something in the way at the staging path: the rename back fails.
        fs::create_dir_all(copy.staging.join("in-the-way")).expect("block");
        let (store, marker) = (copy.store.clone(), copy.marker.clone());
        let text = copy
            .take_back(sync_failed(&store), "parcel 0123abcd (tools v1)", "unused")
            .to_string();
        for words in [
            "and the package could not be taken out of the store again (cannot move the package out of the store to ",
            &format!(
                "{} holds it, but this site's catalog does not record it. Run the same import again: it removes that copy and imports the package afresh",
                store.display()
            ),
        ] {
            assert!(text.contains(words), "no {words:?} in {text}");
        }
        // The marker stays, naming the copy for the next import's clean-up.
        assert!(store.join("bin").join("run.sh").is_file());
        assert_eq!(read_marker(&marker), Some(("tools".to_owned(), 1)));
    }

    #[test]
    fn a_restored_copy_left_in_the_store_is_not_called_unrecorded() {
        let root = tempfile::tempdir().expect("tempdir");
        let copy = switched_copy(root.path(), true);
        fs::create_dir_all(copy.staging.join("in-the-way")).expect("block");
        let store = copy.store.clone();
        let text = copy
            .take_back(sync_failed(&store), "parcel 0123abcd (tools v1)", "unused")
            .to_string();
        assert!(
            text.contains("it checks that copy against what was imported"),
            "{text}"
        );
        assert!(!text.contains("does not record it"), "{text}");
    }
}
