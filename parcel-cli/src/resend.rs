//! `parcel create --repair FILE`: answers a destination's signed repair
//! request (FORMAT.md §13.8) by rebuilding the data volumes it lacks from the
//! package directory and the parcel's kept index, signed like the originals,
//! so that importing the original volumes together with them completes.

use std::cell::RefCell;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use parcel_format::manifest::Manifest;
use parcel_format::repair_request::{RepairRequest, MAX_REQUEST_LEN};
use parcel_format::resend::FileSteps;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::catalog::{Catalog, Direction};
use crate::clock;
use crate::error::CliError;
use crate::home::Context;
use crate::output;

/// Why a repair request signed with `signer` for `site` is not answered:
/// the site is unknown here, its key is revoked, or the request is not
/// signed with its trusted key. `None` when it is answered.
fn untrusted(catalog: &Catalog, site: &str, signer: &[u8; 32]) -> Result<Option<String>, CliError> {
    Ok(match catalog.trusted_site(site)? {
        Some(t) if t.revoked_at.is_none() && &t.public_key == signer => None,
        Some(t) if t.revoked_at.is_some() => Some(format!(
            "it is signed by site {site}, whose key is revoked here"
        )),
        _ => Some(format!(
            "it is not signed by the trusted key of site {site}; exchange keys first"
        )),
    })
}

/// Runs `parcel create --repair REQUEST --package DIR --out DIR`.
pub fn run(
    ctx: &Context,
    request_path: &Path,
    package: &Path,
    outs: &[PathBuf],
    json: bool,
) -> Result<(), CliError> {
    let mut catalog = ctx.home.open_catalog()?;
    let (site, key) = ctx.home.site_identity(&catalog)?;
    // One byte over the cap, so that a longer file is refused as too long
    // without reading it all.
    let mut bytes = Vec::new();
    fs::File::open(request_path)
        .and_then(|f| f.take(MAX_REQUEST_LEN as u64 + 1).read_to_end(&mut bytes))
        .map_err(CliError::input(
            "read",
            request_path,
            "the repair request file the destination sent",
        ))?;
    let subject = format!("repair request {}", request_path.display());
    let (request, signer) = RepairRequest::parse(&bytes).map_err(|e| CliError::Verification {
        subject: subject.clone(),
        reason: e.to_string(),
    })?;
    let refused = |reason: String| CliError::Refused {
        subject: subject.clone(),
        reason,
    };
    if request.source_site != site.code {
        // Run at the wrong site, most likely the one that wrote it.
        return Err(refused(format!(
            "it asks site {} for volumes of parcel {}; this is site {}: send it to site {}; there, run `parcel create --repair FILE --package DIR --out DIR`",
            request.source_site, request.parcel_id, site.code, request.source_site
        )));
    }
    if let Some(reason) = untrusted(&catalog, &request.destination_site, &signer)? {
        return Err(refused(reason));
    }
    let id = request.parcel_id.to_string();
    let record = catalog
        .find_parcel(&id)?
        .filter(|p| p.direction == Direction::Outgoing && p.source_site == site.code)
        .ok_or_else(|| refused(format!("this site never sent parcel {id}")))?;
    if record.destination_site != request.destination_site {
        return Err(refused(format!(
            "parcel {id} went to site {}, not to {}",
            record.destination_site, request.destination_site
        )));
    }
    let kept = ctx.home.sent_dir().join(format!("{id}.index"));
    let unusable = |why: String| {
        refused(format!(
            "the index of parcel {id} kept in {} is unusable ({why}), and its volumes cannot be rebuilt without it; send the package again as a new parcel",
            kept.display()
        ))
    };
    let bytes = match fs::read(&kept) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(unusable("the file is missing".into()))
        }
        read => read.map_err(CliError::io("read the sent index", &kept))?,
    };
    let (raw_len, stored) = bytes
        .split_first_chunk::<8>()
        .ok_or_else(|| unusable("too short".into()))?;
    let raw_len = u64::from_le_bytes(*raw_len);
    let manifest = Manifest::decode(stored, raw_len).map_err(|p| unusable(p.to_string()))?;
    let kept_sha256: [u8; 32] = Sha256::digest(stored).into();
    if kept_sha256 != request.index_sha256 {
        // The kept index is the plain one: for an encrypted parcel the
        // volumes' index is its ciphertext, and the parcel key is not kept.
        return Err(refused(format!(
            "its index is not the one kept here for parcel {id}: the parcel was encrypted (encrypted volumes cannot be rebuilt at the source; send a new parcel), or the request was altered"
        )));
    }
    let out = outs
        .first()
        .ok_or_else(|| CliError::Usage("give --out DIR for the repair volumes".into()))?;
    if !out.is_dir() {
        return Err(CliError::Usage(format!(
            "output {} is not a directory; mount the medium or create the directory",
            out.display()
        )));
    }
    let stem = format!(
        "{}-v{}-{}",
        record.package_id,
        record.package_version,
        &id[..8]
    );
    // Temporary files a killed earlier run left behind (never a volume).
    parcel_format::volume::DirSink::sweep_stale(out).map_err(CliError::io("clean up in", out))?;
    let sent = parcel_format::resend::SentParcel {
        manifest: &manifest,
        stored_index: stored,
        index_raw_len: raw_len,
    };
    let steps = Gated {
        out,
        stem: &stem,
        writing: RefCell::new(None),
    };
    let written =
        parcel_format::resend::rebuild_volumes(&request, &sent, package, &key, out, &stem, &steps)?;
    drop(steps);
    // Read back before anything says they are good: each authenticates as
    // a volume (header rules included: the parity layout the request gave
    // is signed into it) and its body matches, read from the medium.
    let trust = crate::media::Trust::load(&catalog, &site)?;
    let bad = written.iter().find_map(|path| {
        let _ = crate::disk::drop_cached(path);
        let checked =
            parcel_format::read::read_volume_header(path, &trust.keys).and_then(|header| {
                match parcel_format::verify::body_matches(path, &header) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(parcel_format::Problem::VolumeCorrupt {
                        path: path.clone(),
                        volume: header.volume,
                    }),
                    Err(e) => Err(parcel_format::Problem::Unreadable {
                        path: path.clone(),
                        source: e.into(),
                    }),
                }
            });
        checked.err()
    });
    if let Some(problem) = bad {
        for path in &written {
            let _ = fs::remove_file(path);
        }
        if problem.class() == parcel_format::FailureClass::Io {
            return Err(CliError::Failed {
                subject: subject.clone(),
                reason: format!(
                    "a rebuilt volume could not be read back ({problem}), so they were removed; check the medium at {} and run the command again",
                    out.display()
                ),
            });
        }
        return Err(CliError::Verification {
            subject: subject.clone(),
            reason: format!(
                "a rebuilt volume does not read back as a good volume ({problem}), so they were removed: if the request's parity fields were altered, ask site {} for the request again; else the medium may be faulty",
                request.destination_site
            ),
        });
    }
    // The rebuild can take minutes: a `key revoke` meanwhile is answered
    // with nothing, as `create` gives up a parcel to a site revoked while it
    // wrote.
    if let Some(reason) = untrusted(&catalog, &request.destination_site, &signer)? {
        for path in &written {
            let _ = fs::remove_file(path);
        }
        return Err(refused(format!(
            "{reason} (it changed while the volumes were rebuilt: they were removed)"
        )));
    }
    let numbers: Vec<String> = request.missing.iter().map(u32::to_string).collect();
    catalog.note(
        &id,
        clock::now(),
        &format!(
            "volume(s) {} rebuilt for site {}'s repair request",
            numbers.join(", "),
            request.destination_site
        ),
    )?;
    if json {
        output::print_json(&json!({
            "parcel_id": id,
            "volumes": written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "for": request.destination_site,
        }))?;
    } else {
        let mut text = format!(
            "rebuilt volume(s) {} of parcel {id} ({} v{}) for site {}:\n",
            numbers.join(", "),
            record.package_id,
            record.package_version,
            request.destination_site
        );
        for path in &written {
            text.push_str(&format!("  {}\n", path.display()));
        }
        output::print(&text)?;
        ctx.note(&format!(
            "next: send them to site {}; there, import them together with the volumes it holds",
            request.destination_site
        ));
    }
    Ok(())
}

/// The rebuild's file steps, run under the interruption gate; while the
/// writer's lock in `out` is held (its temporary files there are this
/// run's), an interruption removes them and the lock, never a finished
/// volume (each is a good volume of the parcel).
struct Gated<'a> {
    out: &'a Path,
    stem: &'a str,
    writing: RefCell<Option<crate::interrupt::Writing>>,
}

impl FileSteps for Gated<'_> {
    fn run(&self, step: &mut dyn FnMut() -> std::io::Result<()>) -> std::io::Result<()> {
        crate::interrupt::gated(step)
    }

    fn locked(&self) {
        *self.writing.borrow_mut() =
            Some(crate::interrupt::Writing::start_repair(self.out, self.stem));
    }

    fn unlock(&self, release: &mut dyn FnMut()) {
        // In one hold of the gate: once the lock is gone another run may
        // take it, and an interruption must not then remove its files.
        crate::interrupt::gated_last(release);
        self.writing.borrow_mut().take();
    }
}
