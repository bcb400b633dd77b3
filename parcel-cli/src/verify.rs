//! `parcel verify`: checks media without importing — every signature, volume,
//! pack, chunk and file hash — and names each missing volume and bad chunk.
//! Exit 0 only when the parcel is complete and intact. `--media` checks only
//! that every byte of every volume matches the signed hashes (the media
//! check; about a quarter of the time), leaving content checks to import.
//!
//! A parcel encrypted to another site (FORMAT.md §12) can only have its
//! media checked here: `parcel verify` says so, checks the media, and exits
//! 0 when they are intact; its content is checked at the destination.
//!
//! When the volumes come with parity volumes (FORMAT.md §13), lost or damaged
//! volumes are first rebuilt from them into a scratch directory in the home,
//! the check runs on the rebuilt set, and the report says what was repaired.

use serde_json::json;

use std::io::Read;

use parcel_format::repair_request::{RepairRequest, MAX_REQUEST_LEN};
use parcel_format::verify::{verify_with, Depth, VerifyReport};
use parcel_format::Problem;

use crate::cli::VerifyArgs;
use crate::clock;
use crate::error::CliError;
use crate::home::Context;
use crate::media::{choose_copies, one_parcel, problems_error, volume_files, RepairScratch, Trust};
use crate::out_file;
use crate::output;
use crate::progress::Progress;

/// Runs `parcel verify`.
pub fn run(ctx: &Context, args: &VerifyArgs) -> Result<(), CliError> {
    let catalog = ctx.home.open_catalog()?;
    let site = catalog.site()?;
    let trust = Trust::load(&catalog, &site)?;
    // Only encrypted parcels need the identity: a damaged `site.age` must not
    // stop the check of a plain parcel.
    let identity = ctx.home.load_identity().unwrap_or_else(|err| {
        output::warn(&format!(
            "{err}; parcels encrypted to this site cannot be read until it is mended"
        ));
        None
    });
    if let Some(path) = &args.repair_request {
        // Checked before the volumes are (a request is written only after
        // them, when a mistyped path could name one of them), and again
        // just before it is written.
        check_request_path(path, &site.code)?;
    }
    let files = volume_files(&args.paths)?;
    one_parcel(&files, &trust.keys)?;
    let (files, left_out) = choose_copies(ctx, files, &trust.keys);
    let scratch_parent = ctx.home.root().join("repair");
    RepairScratch::sweep_stale(&scratch_parent);
    let scratch = RepairScratch::new(&scratch_parent);
    let repair = parcel_format::repair::repair(&files, &trust.keys, scratch.path());
    for note in &repair.notes {
        ctx.note(note);
    }
    let bar = Progress::bytes(ctx, "Verifying", 0);
    let depth = if args.media {
        Depth::Media
    } else {
        Depth::Content
    };
    let mut report = verify_with(
        &repair.paths,
        &trust.keys,
        identity.as_ref(),
        depth,
        &mut |done, total| {
            bar.set_total(total);
            bar.set(done);
        },
    );
    bar.finish();
    if report.media_only && !args.media {
        // Encrypted to another site: the media are all this site can check.
        report
            .problems
            .retain(|p| !matches!(p, Problem::CannotDecrypt { .. }));
        if identity.is_some() {
            ctx.note("this parcel is encrypted to another site: only its media can be checked here (every byte against the signed hashes); its content is checked when its destination imports it");
        } else {
            // Addressed here or not, it cannot be told without a key.
            output::warn(&format!(
                "this parcel is encrypted and this site has no usable encryption key ({}): only its media were checked (every byte against the signed hashes). If it is addressed to this site, put site.age back from this site's backup to check its content",
                ctx.home.identity_path().display()
            ));
        }
    }
    report
        .problems
        .splice(0..0, repair.problems.iter().cloned());
    let repaired: Vec<String> = repair.repaired.iter().map(ToString::to_string).collect();
    let subject = match (&report.parcel_id, &report.package) {
        (Some(id), Some((package, version))) => format!("parcel {id} ({package} v{version})"),
        (Some(id), None) => format!("parcel {id}"),
        _ => "the volumes given".to_owned(),
    };
    // As import refuses it (exit 4): intact, but not from whom it claims.
    let refusal = match (&report.signer, &report.source_site) {
        (Some(signer), Some(source)) if signer != source => Some(format!(
            "it claims to come from site {source} but is signed with the key of site {signer}; it cannot be imported. Ask site {source} whether it sent it, and check with `parcel key list` that each site's key is its own"
        )),
        _ => None,
    };
    if args.json {
        output::print_json(&json!({
            "parcel_id": report.parcel_id.map(|id| id.to_string()),
            "ok": report.is_ok() && refusal.is_none(),
            "refused": refusal,
            "depth": if args.media || report.media_only { "media" } else { "content" },
            "encrypted": report.encrypted,
            "class": report.class().map(|c| c.name()),
            "signer": report.signer,
            "source_site": report.source_site,
            "destinations": report.destinations,
            "package_id": report.package.as_ref().map(|p| &p.0),
            "version": report.package.as_ref().map(|p| p.1),
            "volume_count": report.volume_count,
            "base_version": report.base_version,
            "parity_percent": repair.percent,
            "repaired": repaired,
            "repair_notes": repair.notes,
            // Copies of a volume not read, as `choose_copies` chose.
            "copies_left_out": left_out,
            // A volume rebuilt from parity was read from a scratch file that
            // is gone when this returns: it has no path to give.
            "volumes": report.volumes.iter().map(|(n, p)| {
                let rebuilt = p.starts_with(scratch.path());
                json!({"volume": n, "path": (!rebuilt).then(|| p.display().to_string()), "rebuilt": rebuilt})
            }).collect::<Vec<_>>(),
            "problems": report.problems.iter().map(|p| json!({"class": p.class().name(), "message": p.to_string()})).collect::<Vec<_>>(),
        }))?;
    }
    if !args.json {
        for line in &repaired {
            output::print(&format!("repaired: {line}\n"))?;
        }
    }
    if !report.is_ok() {
        let local = report
            .problems
            .iter()
            .any(|p| matches!(p, Problem::Write { .. }));
        if local && args.repair_request.is_some() {
            output::warn("no repair request written: what failed is this site's own disk (see below), not the media; mend it and verify again");
        }
        if let Some(path) = args.repair_request.as_ref().filter(|_| !local) {
            if report.encrypted || any_encrypted(&files, &trust) {
                // Its source keeps no parcel key, so it cannot rebuild
                // encrypted volumes (FORMAT.md §13.8).
                output::warn("no repair request written: the parcel is encrypted, and its source cannot rebuild encrypted volumes; ask the sender for a new parcel");
            } else if let Err(err) =
                write_repair_request(ctx, &catalog, &files, &report, &trust, path)
            {
                // The verification failure stays the outcome (exit 3).
                output::warn(&format!("no repair request written: {err}"));
            }
        }
        return Err(problems_error(
            &subject,
            &report.problems,
            &trust,
            &report.volumes,
        ));
    }
    if let Some(reason) = refusal {
        return Err(CliError::Refused { subject, reason });
    }
    if !args.json {
        let checked = if report.media_only {
            "every byte matches the signed hashes (media check only: the parcel is encrypted to another site, which checks its content when it imports it)".to_owned()
        } else if !args.media {
            let base = report.base_version.map_or(String::new(), |v| {
                format!("; a delta on v{v}: files made of v{v}'s content are checked when imported over it")
            });
            format!(
                "every byte, pack, chunk and file checked ({} bytes of content){base}",
                report.content_bytes
            )
        } else {
            let base = report.base_version.map_or(String::new(), |v| {
                format!("; a delta on v{v}: it imports only over v{v}")
            });
            format!("every byte matches the signed hashes (media check only; without `--media` every chunk and file is checked too){base}")
        };
        let how = if repaired.is_empty() {
            String::new()
        } else {
            " after repair from parity".to_owned()
        };
        output::print(&format!(
            "{subject}: intact{how} — {} of {} volumes, signed by {}; {checked}\n",
            report.volumes.len(),
            report.volume_count.unwrap_or(0),
            report.signer.as_deref().unwrap_or("?"),
        ))?;
    }
    if !report.destinations.is_empty() && !report.destinations.contains(&site.code) {
        // Intact, and still not for here: import would refuse it (exit 4).
        // A warning, shown under --quiet too: the result line above does
        // not say whom the parcel is for.
        output::warn(&format!(
            "it is addressed to site {}, not to this site ({}): only {} can import it",
            report.destinations.join(", "),
            site.code,
            if report.destinations.len() == 1 {
                "that site"
            } else {
                "those sites"
            }
        ));
    }
    Ok(())
}

/// Writes a signed request for the data volumes of the parcel read that the
/// report says are missing or damaged (FORMAT.md §13.8), and says where it
/// went.
fn write_repair_request(
    ctx: &Context,
    catalog: &crate::catalog::Catalog,
    files: &[std::path::PathBuf],
    report: &VerifyReport,
    trust: &Trust,
    path: &std::path::Path,
) -> Result<(), CliError> {
    let header_of = |file: &std::path::Path| {
        parcel_format::read::authenticate_volume(file, &trust.keys)
            .ok()
            .map(|(header, _)| header)
    };
    let (parcel_id, mut lost): (_, Vec<u32>) = match report.parcel_id {
        Some(parcel_id) => (
            parcel_id,
            report
                .problems
                .iter()
                .filter_map(|p| match p {
                    Problem::MissingVolume { volume, .. }
                    | Problem::VolumeCorrupt { volume, .. } => Some(*volume),
                    // A volume of the wrong length may be another parcel's
                    // (a stray file on the medium): that parcel's to ask for.
                    Problem::VolumeLength { path, volume, .. }
                        if header_of(path).is_some_and(|h| h.parcel_id == parcel_id) =>
                    {
                        Some(*volume)
                    }
                    _ => None,
                })
                .collect(),
        ),
        None => {
            // No volume was read: every data volume given was set aside for
            // its length (copies cut short). Their parcel is asked for
            // whole, none of its volumes being usable.
            let cut_short = report.problems.iter().find_map(|p| match p {
                Problem::VolumeLength { path, .. } => header_of(path),
                _ => None,
            });
            match cut_short {
                Some(h) if h.volume_count <= parcel_format::limits::MAX_VOLUMES => {
                    (h.parcel_id, (1..=h.volume_count).collect())
                }
                _ => {
                    output::warn(
                        "no repair request written: no volume of the parcel authenticates",
                    );
                    return Ok(());
                }
            }
        }
    };
    // An index that does not read stops the reader before it names damaged
    // volumes: the volumes whose bodies do not match their signed hashes
    // are the ones to ask for (an index piece lies in one of them).
    if report
        .problems
        .iter()
        .any(|p| p.class() == parcel_format::FailureClass::Index)
    {
        lost.extend(files.iter().filter_map(|path| {
            let header = header_of(path)?;
            let damaged = header.parcel_id == parcel_id
                && !header.is_parity_volume()
                && parcel_format::verify::body_matches(path, &header).is_ok_and(|ok| !ok);
            damaged.then_some(header.volume)
        }));
    }
    lost.sort_unstable();
    lost.dedup();
    if lost.is_empty() {
        output::warn("no repair request written: no volume is missing or damaged, so there is nothing to ask the sender for");
        return Ok(());
    }
    let (site, key) = ctx.home.site_identity(catalog)?;
    let Some(request) = RepairRequest::for_volumes(
        files,
        &trust.keys,
        parcel_id,
        &lost,
        &site.code,
        clock::now(),
    ) else {
        output::warn("no repair request written: no volume of the parcel authenticates");
        return Ok(());
    };
    let text = request.to_signed_text(&key);
    check_request_path(path, &site.code)?;
    out_file::write_atomically(path, text.as_bytes())?;
    let numbers: Vec<String> = lost.iter().map(u32::to_string).collect();
    output::warn(&format!(
        "repair request for volume(s) {} written to {}: send it to site {}; there, run `parcel create --repair FILE --package DIR --out DIR`",
        numbers.join(", "),
        path.display(),
        request.source_site
    ));
    Ok(())
}

/// Refuses a `--repair-request` path that holds anything but a repair
/// request this site wrote (one received from another site, not yet
/// answered, is not written over either).
fn check_request_path(path: &std::path::Path, site: &str) -> Result<(), CliError> {
    out_file::check_replaceable(
        path,
        "--repair-request",
        "a repair request of this site",
        |path| {
            std::fs::File::open(path)
                .and_then(|f| {
                    let mut bytes = Vec::new();
                    f.take(MAX_REQUEST_LEN as u64 + 1)
                        .read_to_end(&mut bytes)
                        .map(|_| bytes)
                })
                .ok()
                .and_then(|bytes| RepairRequest::parse(&bytes).ok())
                .is_some_and(|(request, _)| request.destination_site == site)
        },
    )
}

/// Whether any of the volumes given authenticates as part of an encrypted
/// parcel (FORMAT.md §12): the report alone does not say so when the parcel
/// could not be opened.
fn any_encrypted(files: &[std::path::PathBuf], trust: &Trust) -> bool {
    files.iter().any(|file| {
        parcel_format::read::read_volume_header(file, &trust.keys)
            .is_ok_and(|header| header.is_encrypted())
    })
}
