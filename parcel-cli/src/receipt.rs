//! `parcel receipt apply`: at the source site, checks a receipt's signature
//! against the destination site's trusted key and marks the outgoing parcel
//! `confirmed`.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use parcel_format::manifest::hex;
use parcel_format::receipt::{SignedReceipt, MAX_RECEIPT_LEN};
use serde_json::json;

use crate::catalog::{Catalog, CatalogError, Direction, Status};
use crate::cli::ReceiptApplyArgs;
use crate::clock;
use crate::error::CliError;
use crate::home::Context;
use crate::media::SameFile;
use crate::output;

/// Runs `parcel receipt apply`: each receipt in turn, every one even when
/// one fails (each is checked on its own). With `--json`, one document
/// lists what became of each receipt.
pub fn run(ctx: &Context, args: &ReceiptApplyArgs) -> Result<(), CliError> {
    let mut catalog = ctx.home.open_catalog()?;
    let receipts = receipt_files(&args.paths)?;
    let mut results = Vec::with_capacity(receipts.len());
    let mut first_failure = None;
    let mut failed = 0;
    for (file, in_directory) in &receipts {
        let result = apply(&mut catalog, file, *in_directory);
        match &result {
            Ok(applied) if !args.json => applied.print()?,
            Ok(_) => {}
            // One receipt alone fails as the command (below); of several,
            // each failure is said as it comes.
            Err(err) if receipts.len() > 1 => {
                output::error(&err.to_string());
                failed += 1;
                first_failure.get_or_insert(err.exit_code());
            }
            Err(_) => {}
        }
        results.push((file, result));
    }
    let passed_over: Vec<String> = results
        .iter()
        .filter_map(|(_, r)| match r {
            Ok(Applied::PassedOver { source, .. }) => Some(source.clone()),
            _ => None,
        })
        .collect();
    let listed: Vec<serde_json::Value> = results
        .iter()
        .map(|(file, result)| {
            let file = file.display().to_string();
            match result {
                Ok(applied) => applied.json(&file),
                Err(err) => json!({
                    "file": file,
                    "result": "not applied",
                    "error": err.to_string(),
                    "exit_code": err.exit_code(),
                }),
            }
        })
        .collect();
    let outcome = if let [(_, Err(_))] = &results[..] {
        match results.pop() {
            Some((_, Err(err))) => Err(err),
            _ => Ok(()),
        }
    } else {
        match first_failure {
            // Every one another site's: nothing was done here, and a script
            // must not take it for a parcel confirmed.
            None if passed_over.len() == receipts.len() => {
                Err(none_for_here(&catalog, &passed_over)?)
            }
            None => Ok(()),
            Some(code) => Err(CliError::SomeReceipts {
                failed,
                total: receipts.len(),
                code,
            }),
        }
    };
    if args.json {
        output::print_json(&json!({
            "ok": outcome.is_ok(),
            "error": outcome.as_ref().err().map(ToString::to_string),
            "exit_code": outcome.as_ref().map_or_else(CliError::exit_code, |()| 0),
            "receipts": listed,
        }))?;
    }
    outcome
}

/// What became of one receipt that was not refused.
enum Applied {
    /// This site's parcel, confirmed now, or `already` before.
    Confirmed {
        parcel_id: String,
        destination: String,
        package: String,
        version: u64,
        already: bool,
    },
    /// Another site's (found in a directory): passed over, with a warning;
    /// `source` is the site it is for.
    PassedOver { parcel_id: String, source: String },
}

impl Applied {
    fn print(&self) -> Result<(), CliError> {
        match self {
            Applied::Confirmed {
                parcel_id,
                already: true,
                ..
            } => output::print(&format!(
                "parcel {parcel_id} was already confirmed; nothing to do\n"
            )),
            Applied::Confirmed {
                parcel_id,
                destination,
                package,
                version,
                ..
            } => output::print(&format!(
                "parcel {parcel_id} confirmed: {destination} imported {package} v{version}\n"
            )),
            Applied::PassedOver { .. } => Ok(()),
        }
    }

    fn json(&self, file: &str) -> serde_json::Value {
        match self {
            Applied::Confirmed {
                parcel_id,
                destination,
                package,
                version,
                already,
            } => json!({
                "file": file,
                "result": if *already { "already confirmed" } else { "confirmed" },
                "parcel_id": parcel_id,
                "destination_site": destination,
                "package_id": package,
                "version": version,
            }),
            Applied::PassedOver { parcel_id, source } => json!({
                "file": file,
                "result": "passed over",
                "parcel_id": parcel_id,
                "source_site": source,
            }),
        }
    }
}

/// The refusal of receipts that were all for other sites (`sources`).
fn none_for_here(catalog: &Catalog, sources: &[String]) -> Result<CliError, CliError> {
    let mut sites = sources.to_vec();
    sites.sort();
    sites.dedup();
    Ok(CliError::Refused {
        subject: "receipt apply".into(),
        reason: format!(
            "no receipt given is for a parcel of this site ({}); they are site {}'s: apply them there",
            catalog.site()?.code,
            sites.join(", ")
        ),
    })
}

/// The receipt files given, each once (by device and inode): files as they
/// are, and the `*.receipt` files of directories (not recursing), in name
/// order, marked as found in a directory.
fn receipt_files(paths: &[PathBuf]) -> Result<Vec<(PathBuf, bool)>, CliError> {
    let mut receipts = Vec::new();
    for path in paths {
        if !path.is_dir() {
            receipts.push((path.clone(), false));
            continue;
        }
        let entries = fs::read_dir(path).map_err(CliError::input(
            "read",
            path,
            "the receipt file, or the medium holding it",
        ))?;
        let mut found = Vec::new();
        for entry in entries {
            // A medium that fails while listed is said to, not passed over.
            let file = entry.map_err(CliError::io("list", path))?.path();
            if file.extension().is_some_and(|e| e == "receipt") && file.is_file() {
                found.push(file);
            }
        }
        if found.is_empty() {
            return Err(CliError::Usage(format!(
                "{} holds no receipt (*.receipt file); give the receipt file the destination sent back, or the directory it is in",
                path.display()
            )));
        }
        found.sort();
        receipts.extend(found.into_iter().map(|f| (f, true)));
    }
    let mut seen = SameFile::default();
    receipts.retain(|(f, _)| seen.first_time(f));
    Ok(receipts)
}

/// Applies one receipt file. One found in a directory (a medium that came
/// back) for another site's parcel is passed over with a warning: a medium may
/// carry receipts for several sources.
fn apply(catalog: &mut Catalog, path: &Path, in_directory: bool) -> Result<Applied, CliError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(MAX_RECEIPT_LEN as u64 + 1).read_to_end(&mut bytes))
        .map_err(CliError::input(
            "read",
            path,
            "the receipt file the destination sent back",
        ))?;
    let subject = format!("receipt {}", path.display());
    let bad = |reason: String| CliError::Verification {
        subject: subject.clone(),
        reason,
    };
    let signed = SignedReceipt::parse(&bytes).map_err(|e| {
        // The usual way a genuine receipt breaks on the way back.
        let converted = if bytes.windows(2).any(|w| w == b"\r\n") {
            " (its lines end in CR LF: a mail program or an editor converted it on the way)"
        } else {
            ""
        };
        bad(format!(
            "{e}{converted}; a receipt is applied exactly as its destination wrote it: ask that site to send it again (`parcel import` there writes it again)"
        ))
    })?;
    let r = &signed.receipt;
    let refused = |reason: String| CliError::Refused {
        subject: subject.clone(),
        reason,
    };
    let own = catalog.site()?.code;
    if in_directory && r.source_site != own {
        output::warn(&format!(
            "{} is site {}'s receipt (for parcel {}); passed over: apply it there",
            path.display(),
            r.source_site,
            r.parcel_id
        ));
        return Ok(Applied::PassedOver {
            parcel_id: r.parcel_id.to_string(),
            source: r.source_site.clone(),
        });
    }
    let parcel = catalog
        .find_parcel(&r.parcel_id.to_string())?
        .filter(|p| p.direction == Direction::Outgoing)
        .ok_or_else(|| {
            refused(if r.source_site == own {
                format!(
                    "it is for parcel {}, which this site did not send",
                    r.parcel_id
                )
            } else {
                // Applied at the wrong site: say where it belongs.
                format!(
                    "it is for parcel {}, which site {} sent to site {}; apply it at site {}",
                    r.parcel_id, r.source_site, r.destination_site, r.source_site
                )
            })
        })?;
    let site = match catalog.trusted_site(&r.destination_site)? {
        Some(site) if site.revoked_at.is_none() => site,
        Some(_) => {
            return Err(refused(format!(
                "it comes from site {} (the parcel's destination), whose key is revoked here; if {} has a new key, trust its new key file and ask for the receipt again",
                r.destination_site, r.destination_site
            )))
        }
        None => {
            return Err(refused(format!(
                "it comes from site {} (the parcel's destination), which is not trusted here",
                r.destination_site
            )))
        }
    };
    if signed.signer != site.public_key {
        return Err(bad(format!(
            "it is not signed with the key of site {} trusted here (forged, or signed with a key {} had before it changed keys); do not count the parcel as delivered: check with site {} whether it imported it, and if so ask it for the receipt again (`parcel import` of the same volumes there writes it with its current key)",
            r.destination_site, r.destination_site, r.destination_site
        )));
    }
    // The index hash is not kept in the catalog; the tree digest binds the
    // content, and the parcel id, source and destination bind the shipment.
    if r.destination_site != parcel.destination_site
        || r.source_site != parcel.source_site
        || r.package_id != parcel.package_id
        || r.package_version != parcel.package_version
        || hex(&r.tree_digest) != parcel.tree_digest
    {
        return Err(bad(format!(
            "it does not match parcel {} as sent (source, destination, package or content differ)",
            parcel.parcel_id
        )));
    }
    let confirmed = |already: bool| Applied::Confirmed {
        parcel_id: parcel.parcel_id.clone(),
        destination: r.destination_site.clone(),
        package: r.package_id.clone(),
        version: r.package_version,
        already,
    };
    if parcel.status == Status::Confirmed {
        return Ok(confirmed(true));
    }
    // Only while the signer's key is still the one checked above.
    let advanced = catalog.advance_trusting(
        &parcel.parcel_id,
        Status::Confirmed,
        clock::now(),
        &format!(
            "imported at {} on {}",
            r.destination_site,
            clock::format_utc(r.imported)
        ),
        &site,
    );
    match advanced {
        // Another `receipt apply` of it got there first.
        Err(CatalogError::BadTransition {
            from: Status::Confirmed,
            ..
        }) => return Ok(confirmed(true)),
        other => other?,
    }
    Ok(confirmed(false))
}
