//! `parcel create` (and the sending half of `parcel forward`): turns a package
//! directory into a signed parcel on one or more media, checks the media have
//! room before writing anything, reads back and verifies what it wrote, and
//! records the outgoing parcel as `created`.

use std::fs::{self, File};
use std::io::{IsTerminal, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use parcel_format::delta::BaseIndex;
use parcel_format::encrypt::{Encryption, Recipient};
use parcel_format::limits::MIN_VOLUME_SIZE;
use parcel_format::manifest::{check_package_id, hex, Manifest};
use parcel_format::volume::{DirSink, OutputDir};
use parcel_format::write::{self, ParcelInfo, WriteOptions};
use parcel_format::ParcelId;
use serde_json::json;

use crate::catalog::{Catalog, Direction, Event, ParcelRecord, Status, TrustedSite};
use crate::cli::CreateArgs;
use crate::clock;
use crate::disk::{available_space, human_bytes, largest_file, total_space};
use crate::error::CliError;
use crate::home::Context;
use crate::media::{describe, Trust};
use crate::output;
use crate::progress::Progress;
use crate::swap::copy_to_media;

/// One outgoing parcel to write.
pub struct Outgoing<'a> {
    pub package_dir: &'a Path,
    pub package_id: &'a str,
    pub version: u64,
    pub to: &'a str,
    pub outs: &'a [PathBuf],
    pub volume_size: u64,
    pub medium_size: Option<u64>,
    pub level: i32,
    pub comment: &'a str,
    /// The site where the package was first made, when forwarding.
    pub origin: Option<String>,
    pub verify: bool,
    pub space_check: bool,
    pub json: bool,
    /// For a delta parcel: the version the destination holds, and whether to
    /// build on it without a receipt confirming it.
    pub base: Option<u64>,
    pub force_base: bool,
    /// Encrypt to the destination's encryption key (FORMAT.md §12).
    pub encrypt: bool,
    /// Repair data to add, in percent (FORMAT.md §13).
    pub parity: Option<u8>,
    /// When sending a copy from the store: the tree digest (hex) recorded
    /// when it was imported, which the content read must still have.
    pub expected_digest: Option<&'a str>,
}

/// Warns, before anything is written, when the destination confirmed a
/// newer version of the package from this site: it refuses this one as a
/// rollback (exit 4 there). Only a warning: its store may have been reset.
fn warn_of_rollback(catalog: &Catalog, o: &Outgoing<'_>) -> Result<(), CliError> {
    let newest = catalog
        .parcels(Some(Direction::Outgoing))?
        .into_iter()
        .filter(|p| {
            p.destination_site == o.to
                && p.package_id == o.package_id
                && p.status == Status::Confirmed
                && p.package_version > o.version
        })
        .max_by_key(|p| p.package_version);
    if let Some(p) = newest {
        output::warn(&format!(
            "site {} confirmed {} v{} already (parcel {}), newer than v{}: it refuses this parcel as a rollback. Send a version above v{} instead",
            o.to, o.package_id, p.package_version, p.parcel_id, o.version, p.package_version
        ));
    }
    Ok(())
}

/// Runs `parcel create`.
pub fn run(ctx: &Context, args: &CreateArgs) -> Result<(), CliError> {
    if let Some(request) = &args.repair {
        if args.out.len() > 1 {
            return Err(CliError::Usage(
                "--repair writes the rebuilt volumes to one --out directory; give only one".into(),
            ));
        }
        check_outputs(ctx, &args.out, &args.package)?;
        return crate::resend::run(ctx, request, &args.package, &args.out, args.json);
    }
    let (Some(package_id), Some(version), Some(to)) = (&args.package_id, args.version, &args.to)
    else {
        return Err(CliError::Usage(
            "create needs --package-id, --version and --to (or --repair FILE)".into(),
        ));
    };
    check_package_id(package_id).map_err(CliError::Usage)?;
    send(
        ctx,
        &Outgoing {
            package_dir: &args.package,
            package_id,
            version,
            to,
            outs: &args.out,
            volume_size: args.volume_size,
            medium_size: args.medium_size,
            level: args.level,
            comment: args.comment.as_deref().unwrap_or(""),
            origin: None,
            verify: !args.no_verify,
            space_check: !args.no_space_check,
            json: args.json,
            base: args.base,
            force_base: args.force_base,
            encrypt: args.encrypt,
            parity: args.parity,
            expected_digest: None,
        },
    )
}

/// The base a delta parcel builds on: the index of a parcel this site sent
/// with that version, one the destination confirmed unless `force`.
fn load_base(
    ctx: &Context,
    catalog: &Catalog,
    o: &Outgoing<'_>,
    version: u64,
) -> Result<BaseIndex, CliError> {
    let refused = |reason: String| CliError::Refused {
        subject: format!(
            "delta parcel of {} v{} on v{version}",
            o.package_id, o.version
        ),
        reason,
    };
    if version >= o.version {
        return Err(refused(format!(
            "the base must be an earlier version than {}",
            o.version
        )));
    }
    let sent: Vec<ParcelRecord> = catalog
        .parcels(Some(Direction::Outgoing))?
        .into_iter()
        .filter(|p| p.package_id == o.package_id && p.package_version == version)
        .collect();
    if sent.is_empty() {
        return Err(refused(format!(
            "this site never sent {} v{version}, so it does not know its chunks; send a full parcel",
            o.package_id
        )));
    }
    let confirmed = sent
        .iter()
        .find(|p| p.destination_site == o.to && p.status == Status::Confirmed);
    let chosen = match (confirmed, sent.first()) {
        (Some(p), _) => p,
        (None, Some(first)) if o.force_base => sent
            .iter()
            .find(|p| p.destination_site == o.to)
            .unwrap_or(first),
        _ => {
            return Err(refused(format!(
                "site {} has not confirmed holding {} v{version} (no receipt applied here); send a full parcel, or pass --force-base if you know it holds that version",
                o.to, o.package_id
            )))
        }
    };
    let path = ctx
        .home
        .sent_dir()
        .join(format!("{}.index", chosen.parcel_id));
    let unusable = |why: String| {
        refused(format!(
            "the index of parcel {} kept in {} is unusable ({why}); send a full parcel",
            chosen.parcel_id,
            path.display()
        ))
    };
    let bytes = match fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(unusable("the file is missing".into()))
        }
        read => read.map_err(CliError::io("read the sent index", &path))?,
    };
    let (len, stored) = bytes
        .split_first_chunk::<8>()
        .ok_or_else(|| unusable("too short".into()))?;
    let manifest =
        Manifest::decode(stored, u64::from_le_bytes(*len)).map_err(|p| unusable(p.to_string()))?;
    Ok(BaseIndex::from_manifest(&manifest))
}

/// Keeps the index of a parcel just written in `<home>/sent/`, for delta
/// parcels built on it later: its raw length (u64, little-endian), then the
/// stored index.
fn keep_index(ctx: &Context, manifest: &Manifest, level: i32) -> Result<PathBuf, CliError> {
    let dir = ctx.home.sent_dir();
    fs::create_dir_all(&dir).map_err(CliError::io("create", &dir))?;
    let path = dir.join(format!("{}.index", manifest.parcel_id));
    // Written whole or not at all: a temporary file, synced, then renamed.
    // The stored index is streamed into it, never held whole (a
    // million-file index is about 100 MB); its raw length, known at the
    // end, goes into the first 8 bytes.
    let mut tmp =
        tempfile::NamedTempFile::new_in(&dir).map_err(CliError::temp_in("write in", &dir))?;
    let write = |file: &mut File| -> std::io::Result<()> {
        let mut out = std::io::BufWriter::new(&mut *file);
        out.write_all(&[0; 8])?;
        let (_, raw_len) = manifest.encode_to(level, &mut out)?;
        out.flush()?;
        drop(out);
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&raw_len.to_le_bytes())
    };
    write(tmp.as_file_mut()).map_err(CliError::io("write", &path))?;
    tmp.as_file()
        .sync_all()
        .map_err(CliError::io("sync", &path))?;
    tmp.persist(&path)
        .map_err(|e| CliError::io("write", &path)(e.error))?;
    Ok(path)
}

/// An upper bound on the size of a parcel carrying `content` bytes of files
/// and `entries` entries: content that does not compress, plus tar headers,
/// padding, index and zstd's worst case; for an encrypted parcel also the
/// `parcel-keys` entry of every volume (about 1 KiB in each volume of at
/// least 64 KiB) and the tags; with `parity` percent of repair data, that
/// much more, rounded up generously (stripes round recovery up, and each
/// parity volume holds a block table).
///
/// Saturating: a sparse file can declare any size, and a bound that wrapped
/// would pass the room check.
fn size_bound(content: u64, entries: usize, encrypted: bool, parity: Option<u8>) -> u64 {
    let plain = content
        .saturating_add(content / 64)
        .saturating_add((entries as u64).saturating_mul(1024))
        .saturating_add(64 << 10);
    let data = if encrypted {
        plain.saturating_add(plain / 32)
    } else {
        plain
    };
    match parity {
        None => data,
        Some(percent) => data
            .saturating_add(data / 100 * (u64::from(percent) + 4))
            .saturating_add(256 << 10),
    }
}

/// The room a parcel needs on the media, checked before anything is written.
struct Room {
    /// [`size_bound`] of the whole package: no parcel of it is larger.
    bound: u64,
    /// What the check asks for: `bound` for a full parcel; for a delta, the
    /// bound over the files that differ from the base in size or
    /// modification time only. That is an estimate (a file changed without
    /// changing either is missed); should it come out low, the media fill
    /// while writing and the write stops cleanly, as with --no-space-check.
    needed: u64,
    /// The base version of a delta.
    base_version: Option<u64>,
    /// Whether repair data is counted in (`--parity`).
    parity: bool,
}

impl Room {
    fn of(
        scan: &write::Scan,
        base: Option<&BaseIndex>,
        encrypted: bool,
        parity: Option<u8>,
    ) -> Room {
        let bound = size_bound(scan.content_bytes, scan.entries(), encrypted, parity);
        let needed = base.map_or(bound, |b| {
            size_bound(
                scan.content_bytes_beyond(b),
                scan.entries(),
                encrypted,
                parity,
            )
        });
        Room {
            bound,
            needed,
            base_version: base.map(BaseIndex::package_version),
            parity: parity.is_some(),
        }
    }

    /// The volume size to write with, given the room on the roomiest medium
    /// (when known). A small parcel needs no full-size volume: capping the
    /// size keeps the room check honest. No volume is larger than the
    /// roomiest medium takes (a parcel larger than any one medium is cut to
    /// fit them: `--medium-size 700M` with the default `dvd` volumes). A
    /// delta's volumes are capped by the whole package's bound, not by its
    /// estimate, so that an estimate that comes out low cannot cut the
    /// parcel into many tiny volumes.
    fn volume_size(&self, requested: u64, largest_room: Option<u64>) -> u64 {
        let cap = largest_room.map_or(self.bound, |room| room.min(self.bound));
        requested.min(cap.max(MIN_VOLUME_SIZE))
    }

    /// What the parcel needs, for the message of a failed room check.
    fn describe(&self) -> String {
        let parity = if self.parity {
            ", with its repair data"
        } else {
            ""
        };
        match self.base_version {
            None => format!(
                "up to {} (the parcel's size before compression{parity})",
                human_bytes(self.needed)
            ),
            Some(v) => format!(
                "up to {} (before compression, the files that differ from v{v} in size or modification time{parity})",
                human_bytes(self.needed)
            ),
        }
    }

    /// What the parcel needs, for the message of media that filled while it
    /// was written: for a delta, the estimate came out low.
    fn describe_filled(&self) -> String {
        match self.base_version {
            None => self.describe(),
            Some(_) => format!(
                "more than the {} estimated from sizes and modification times, up to {} (the whole package before compression)",
                human_bytes(self.needed),
                human_bytes(self.bound)
            ),
        }
    }
}

/// Writes, verifies and records one outgoing parcel.
pub fn send(ctx: &Context, o: &Outgoing<'_>) -> Result<(), CliError> {
    // A wrong argument, said before anything is read (the writer's own
    // check would come after the package was scanned, as a failure).
    let cap = parcel_format::limits::MAX_COMMENT;
    if o.comment.len() > cap {
        return Err(CliError::Usage(format!(
            "--comment is at most {cap} bytes; this one is {}",
            o.comment.len()
        )));
    }
    let mut catalog = ctx.home.open_catalog()?;
    let (site, key) = ctx.home.site_identity(&catalog)?;
    let refused = |reason: String| CliError::Refused {
        subject: format!("site {}", o.to),
        reason,
    };
    if o.to == site.code {
        return Err(refused(
            "is this site; a parcel goes to another site".into(),
        ));
    }
    let destination = match catalog.trusted_site(o.to)? {
        None => return Err(refused("is not a trusted site; exchange keys first (`parcel key trust FILE` with its exported key)".into())),
        Some(t) if t.revoked_at.is_some() => return Err(refused("has a revoked key; trust its new key before sending to it".into())),
        Some(t) => t,
    };
    let encryption = if o.encrypt {
        let Some(recipient) = &destination.encryption_key else {
            return Err(refused(format!(
                "has no encryption key on record here, so a parcel cannot be encrypted to it; ask {} for a new key file (`parcel key export` there), then `parcel key trust` it here",
                o.to
            )));
        };
        let recipient: Recipient = recipient.parse().map_err(|_| {
            refused(format!(
                "has an unusable encryption key on record here; ask {} for a new key file and `parcel key trust` it again",
                o.to
            ))
        })?;
        Some(Encryption::to_recipients(&[recipient])?)
    } else {
        None
    };
    warn_of_rollback(&catalog, o)?;
    check_outputs(ctx, o.outs, o.package_dir)?;
    // Temporary volumes an interrupted create left behind go first: they are
    // never finished, and they take room on the medium (FORMAT.md §2.4).
    let spool = ctx.home.root().join("spool");
    for out in o.outs.iter().chain(spool.is_dir().then_some(&spool)) {
        let removed = DirSink::sweep_stale(out).map_err(CliError::io("clean up in", out))?;
        if !removed.is_empty() {
            ctx.note(&format!(
                "removed {} unfinished volume file(s) an interrupted create left in {}",
                removed.len(),
                out.display()
            ));
        }
    }
    let base = match o.base {
        Some(version) => Some(load_base(ctx, &catalog, o, version)?),
        None => None,
    };
    let scan = write::scan(o.package_dir)?;
    let room = Room::of(&scan, base.as_ref(), encryption.is_some(), o.parity);
    let mut disks = Vec::with_capacity(o.outs.len());
    for out in o.outs {
        use std::os::unix::fs::MetadataExt;
        let check = CliError::io("check free space of", out);
        let device = fs::metadata(out).map_err(check)?.dev();
        let free = available_space(out).map_err(CliError::io("check free space of", out))?;
        disks.push((device, free));
    }
    let mut outputs: Vec<OutputDir> = o
        .outs
        .iter()
        .zip(&disks)
        .map(|(out, &(_, free))| OutputDir {
            dir: out.clone(),
            capacity: (o.space_check || o.medium_size.is_some()).then(|| {
                o.medium_size
                    .map_or(free, |m| if o.space_check { m.min(free) } else { m })
            }),
        })
        .collect();
    // A volume larger than the file system of an --out takes would fail
    // there after gigabytes (FAT32 sticks: 4 GiB − 1).
    let fat = o
        .outs
        .iter()
        .filter_map(|out| largest_file(out).ok().flatten().map(|max| (max, out)))
        .min();
    let sized = |room_on_media: Option<u64>| {
        let size = room.volume_size(o.volume_size, room_on_media);
        match fat {
            Some((max, _)) => size.min(max),
            None => size,
        }
    };
    let largest_room = outputs.iter().filter_map(|out| out.capacity).max();
    let mut volume_size = sized(largest_room);
    let capacities: Vec<Option<u64>> = outputs.iter().map(|out| out.capacity).collect();
    let usable = usable_room(&disks, &capacities, volume_size, o.space_check);
    // One medium too small, and someone at the terminal: spool the parcel in
    // the home, then copy it out volume by volume, asking for each next medium.
    let swap_media = o.space_check
        && usable < room.needed
        && o.outs.len() == 1
        && o.medium_size.is_none()
        && interactive();
    if swap_media {
        // Sized for the media to come, as large as the medium in the drive
        // is, not for the room left on it (a medium partly full made
        // volumes of a few KiB for every empty one after it).
        volume_size = sized(total_space(&o.outs[0]).ok());
    }
    if let Some((max, out)) = fat.filter(|&(max, _)| volume_size == max) {
        ctx.note(&format!(
            "volumes of at most {}: {} is on a FAT file system, which holds no larger file",
            human_bytes(max),
            out.display()
        ));
    }
    // Held until the parcel is on the media or given up.
    let _spool = if swap_media {
        Some(take_spool(ctx, &spool)?)
    } else {
        None
    };
    if swap_media {
        outputs = vec![OutputDir {
            dir: spool.clone(),
            capacity: None,
        }];
        ctx.note(&format!("{} has too little room for the whole parcel; it is prepared in {} and you will be asked for each next medium", o.outs[0].display(), spool.display()));
    } else if o.space_check && usable < room.needed {
        let free = outputs
            .iter()
            .filter_map(|out| out.capacity)
            .fold(0, u64::saturating_add);
        let available = if usable == free {
            format!("{} available", human_bytes(usable))
        } else {
            // Each medium holds whole volumes: what is left over is not room.
            format!(
                "{} available as whole volumes of {} ({} free)",
                human_bytes(usable),
                human_bytes(volume_size),
                human_bytes(free)
            )
        };
        // The room counted is that of every --out together.
        let available = match o.outs.len() {
            0 | 1 => available,
            n => format!("{available} on the {n} --out media together"),
        };
        let place: Vec<String> = o.outs.iter().map(|p| p.display().to_string()).collect();
        return Err(CliError::NoSpace {
            place: place.join(", "),
            needed: room.describe(),
            available,
            advice: "add another --out medium, choose a smaller --volume-size, or pass --no-space-check if it will compress well",
        });
    }
    let parcel_id = ParcelId::random();
    let short_id = &parcel_id.to_string()[..8];
    // The names of an encrypted parcel's volumes do not tell what its
    // encryption hides (FORMAT.md §2.5, §12.3).
    let stem = if o.encrypt {
        format!("parcel-{short_id}")
    } else {
        format!("{}-v{}-{short_id}", o.package_id, o.version)
    };
    let info = ParcelInfo {
        parcel_id,
        source_site: site.code.clone(),
        origin_site: o.origin.clone(),
        destinations: vec![o.to.to_owned()],
        package_id: o.package_id.to_owned(),
        package_version: o.version,
        created: clock::now(),
        comment: o.comment.to_owned(),
    };
    let options = WriteOptions {
        volume_size,
        level: o.level,
        encryption,
        // Volumes written straight to the media are read back as they are
        // written; spooled ones are read back from the media once copied.
        read_back: o.verify && !swap_media,
        ..WriteOptions::default()
    };
    // `sent` waits for the read-back (which may withdraw the parcel): taken
    // before anything is written (it may fail) and so before the record,
    // and let go once the read-back is over.
    let reading_back = if o.verify && !swap_media {
        Some(ctx.home.reading_back(&parcel_id.to_string())?)
    } else {
        None
    };
    let dirs: Vec<PathBuf> = outputs.iter().map(|o| o.dir.clone()).collect();
    let writing = crate::interrupt::Writing::start(&dirs, &stem, ctx.parcel_command());
    let mut sink = DirSink::new(outputs, stem.clone(), volume_size);
    let bar = Progress::bytes(ctx, "Creating", scan.content_bytes);
    let files = scan.files;
    let extras = write::Extras {
        base: base.as_ref(),
        parity_percent: o.parity,
    };
    let written = write::write_parcel_with(
        scan,
        &info,
        &key,
        &options,
        &extras,
        &mut crate::interrupt::GatedSink(&mut sink),
        &mut |done| bar.set(done),
    )
    .map_err(|err| {
        let (written_to, medium_size) = if swap_media {
            (std::slice::from_ref(&spool), None)
        } else {
            (o.outs, o.medium_size)
        };
        medium_filled(err, written_to, medium_size, &room, swap_media)
    })?;
    bar.finish();
    let mut paths: Vec<PathBuf> = written.volumes.iter().map(|(p, _)| p.clone()).collect();
    let mut parity_paths: Vec<PathBuf> = written
        .parity_volumes
        .iter()
        .map(|(p, _)| p.clone())
        .collect();
    let manifest = &written.manifest;
    if let Some(expected) = o.expected_digest {
        if hex(&manifest.tree_digest()) != expected {
            // Changed in the store since it was imported: never passed on.
            let left = remove_volumes(paths.iter().chain(&parity_paths));
            return Err(CliError::Refused {
                subject: format!("{} v{} in the store", o.package_id, o.version),
                reason: format!(
                    "{} changed since it was imported (its files no longer match the tree digest recorded then), so it was not sent{left}; restore it: move that directory out of the store and import its parcel again",
                    o.package_dir.display()
                ),
            });
        }
    }
    // Once volumes are on the media under their final names, the catalog
    // knows the parcel: a kill during the read-back must not leave a parcel
    // that can be shipped and imported but whose receipt this site refuses.
    // (Spooled for media swapped at a terminal, they reach the media only
    // after the read-back, and are recorded then.)
    let early = if swap_media {
        None
    } else {
        let recorded = writing.recording(|| {
            record_created(
                ctx,
                &mut catalog,
                o,
                &site.code,
                &info,
                &written,
                &paths,
                &parity_paths,
                false,
                &destination,
            )
        });
        match recorded {
            Ok(record) => Some(record),
            Err(e) => return Err(given_up(e, writing.abandon(), AGAIN_ONCE_FIXED)),
        }
    };
    if o.verify {
        // The volumes are synced: read them back from the medium itself.
        for path in paths.iter().chain(&parity_paths) {
            let _ = crate::disk::drop_cached(path);
        }
        let trust = Trust::load(&catalog, &site)?;
        let bar = Progress::bytes(ctx, "Verifying", 0);
        // Bodies read back while written are not read again; headers and
        // index are read now, from the medium.
        let mut report = parcel_format::verify::verify_written(
            &paths,
            &trust.keys,
            &written.read_back,
            &mut |done, total| {
                bar.set_total(total);
                bar.set(done);
            },
        );
        report
            .problems
            .extend(parcel_format::repair::check_parity_volumes(
                &parity_paths,
                &trust.keys,
            ));
        bar.finish();
        let id = parcel_id.to_string();
        if !report.is_ok() {
            // Nothing that failed its read-back stays to be shipped: the
            // volumes go, and once they are gone the kept index and the
            // record too (a kill now leaves the record, whose volumes fail
            // any verify). Volumes that cannot be removed keep the record,
            // noted not to be shipped.
            let left = remove_volumes(paths.iter().chain(&parity_paths));
            if early.is_some() {
                let gone = if left.is_empty() {
                    let _ = fs::remove_file(ctx.home.sent_dir().join(format!("{id}.index")));
                    catalog.forget_unshipped(&id)
                } else {
                    catalog.note(&id, clock::now(), NOT_TO_SHIP)
                };
                if let Err(e) = gone {
                    output::warn(&format!(
                        "parcel {id} stays in the catalog ({e}); do not mark it sent"
                    ));
                }
            }
            let place = if swap_media {
                format!(
                    "the copy spooled in {} may have been damaged on its disk",
                    spool.display()
                )
            } else {
                "the medium may be faulty".to_owned()
            };
            return Err(CliError::Verification {
                subject: format!("parcel {parcel_id} as written"),
                reason: format!(
                    "the volumes just written do not read back intact{}; {place}: create the parcel again onto other media:{}",
                    if left.is_empty() { ", so they were removed".to_owned() } else { left },
                    describe(&report.problems, &report.volumes)
                ),
            });
        }
        if early.is_some() {
            catalog.note(&id, clock::now(), READ_BACK)?;
        }
    }
    drop(reading_back);
    let record = match early {
        Some(record) => {
            // Recorded and read back: an interruption from here on removes
            // nothing.
            drop(writing);
            record
        }
        None => {
            // Spooled for media swapped at a terminal. Until it is recorded,
            // an interruption, a failed copy or a stop at the prompt removes
            // the parcel's volumes from the spool and from the medium in the
            // drive: nothing unrecorded is kept.
            let copying = writing.into_copy(&spool, &o.outs[0]);
            let out = &o.outs[0];
            let copied = copy_to_media(&paths, out, &stem, "volume", o.verify, &copying).and_then(
                |placed| {
                    let parity = copy_to_media(
                        &parity_paths,
                        out,
                        &stem,
                        "parity volume",
                        o.verify,
                        &copying,
                    )?;
                    Ok((placed, parity))
                },
            );
            match copied {
                Ok((placed, parity)) => {
                    paths = placed;
                    parity_paths = parity;
                }
                Err(e) => return Err(given_up(e, copying.abandon(), AGAIN_WITH_MEDIA)),
            }
            let recorded = copying.recording(|| {
                record_created(
                    ctx,
                    &mut catalog,
                    o,
                    &site.code,
                    &info,
                    &written,
                    &paths,
                    &parity_paths,
                    o.verify,
                    &destination,
                )
            });
            match recorded {
                Ok(record) => record,
                Err(e) => return Err(given_up(e, copying.abandon(), AGAIN_ONCE_FIXED)),
            }
        }
    };
    let base_version = manifest.base.as_ref().map(|b| b.package_version);
    let conflicting: Vec<String> = catalog
        .parcels(Some(Direction::Outgoing))?
        .into_iter()
        .filter(|p| {
            p.parcel_id != record.parcel_id
                && p.package_id == record.package_id
                && p.package_version == record.package_version
                && p.tree_digest != record.tree_digest
        })
        .map(|p| format!("{} (to {}, {})", p.parcel_id, p.destination_site, p.status))
        .collect();
    if !conflicting.is_empty() {
        // A version's content never changes: a site that imported the other
        // content refuses this one (exit 4 there).
        output::warn(&format!(
            "this site already made {} v{} with other content: parcel(s) {}. A site that imported that refuses this parcel; give changed content a new --version",
            record.package_id,
            record.package_version,
            conflicting.join(", ")
        ));
    }
    let shared = media_with_both(&paths, &parity_paths);
    if o.outs.len() > 1 && !shared.is_empty() {
        // Parity goes where there is room after the data: with too few
        // media, beside it, where one lost medium takes both.
        output::warn(&format!(
            "the repair data shares {} with data volumes: should that medium be lost, the parity volumes on it go too, and those left may not rebuild it. To keep them apart, create again with one more --out for the repair data",
            shared
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(percent) = o.parity {
        let count = paths.len() as u64;
        // The most data volumes one medium holds: what losing it costs.
        let mut per_medium: std::collections::BTreeMap<&Path, u64> = Default::default();
        for p in &paths {
            *per_medium.entry(p.parent().unwrap_or(p)).or_default() += 1;
        }
        let media = per_medium.len();
        let (medium, most) = per_medium
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .unwrap_or((Path::new(""), 1));
        if u64::from(percent) * count < 100 {
            ctx.note(&format!(
                "with {count} volume(s), {percent}% repair data rebuilds damaged blocks but not a whole lost volume; that needs --parity {} or more",
                100u64.div_ceil(count.max(1))
            ));
        } else if media > 1 && most > 1 && u64::from(percent) * count < 100 * most {
            output::warn(&format!(
                "{} holds {most} of the {count} volumes: {percent}% repair data rebuilds any one lost volume, but not that whole medium lost; that needs --parity {} or more (or smaller media)",
                medium.display(),
                (100 * most).div_ceil(count.max(1))
            ));
        }
    }
    if o.json {
        output::print_json(&json!({
            "parcel_id": record.parcel_id,
            "package_id": record.package_id,
            "version": record.package_version,
            "to": record.destination_site,
            "volumes": paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "parity_volumes": parity_paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "parity_percent": o.parity,
            "bytes": record.bytes,
            "content_bytes": manifest.content_bytes(),
            "files": files,
            "verified": o.verify,
            "base_version": base_version,
            "encrypted": o.encrypt,
        }))?;
    } else {
        let mut text = format!(
            "created parcel {} ({} v{} for {}{}{}): {} volume(s), {} from {} of content\n",
            record.parcel_id,
            record.package_id,
            record.package_version,
            record.destination_site,
            base_version.map_or(String::new(), |v| format!(", a delta on v{v}")),
            if o.encrypt {
                format!(
                    ", encrypted: only {} can read the content",
                    record.destination_site
                )
            } else {
                String::new()
            },
            paths.len(),
            human_bytes(record.bytes),
            human_bytes(manifest.content_bytes())
        );
        for p in &paths {
            text.push_str(&format!("  {}\n", p.display()));
        }
        if let Some(percent) = o.parity {
            text.push_str(&format!(
                "repair data ({percent}%) in {} parity volume(s); ship them with the others:\n",
                parity_paths.len()
            ));
            for p in &parity_paths {
                text.push_str(&format!("  {}\n", p.display()));
            }
        }
        output::print(&text)?;
        ctx.note(&format!(
            "next: ship the media, then `{} sent {} --via CARRIER`",
            ctx.parcel_command(),
            &record.parcel_id[..8]
        ));
    }
    Ok(())
}

/// The room for whole volumes of `volume_size` the outputs offer together:
/// each one's `capacity` in whole volumes, and, with the space check, the
/// outputs on one file system (`disks`: its device and free space, in the
/// order of the outputs) no more together than its free space holds (two
/// folders on one disk share it; it is not counted twice).
fn usable_room(
    disks: &[(u64, u64)],
    capacities: &[Option<u64>],
    volume_size: u64,
    space_check: bool,
) -> u64 {
    let whole = |bytes: u64| bytes / volume_size.max(1) * volume_size.max(1);
    let mut per_disk: Vec<(u64, u64, u64)> = Vec::new();
    for (&(device, free), capacity) in disks.iter().zip(capacities) {
        let Some(capacity) = capacity else { continue };
        match per_disk.iter_mut().find(|(d, _, _)| *d == device) {
            Some(entry) => entry.2 = entry.2.saturating_add(whole(*capacity)),
            None => per_disk.push((device, free, whole(*capacity))),
        }
    }
    per_disk
        .iter()
        .map(|&(_, free, room)| {
            if space_check {
                room.min(whole(free))
            } else {
                room
            }
        })
        .fold(0, u64::saturating_add)
}

/// The directories holding both a data volume and a parity volume.
fn media_with_both<'a>(data: &[PathBuf], parity: &'a [PathBuf]) -> Vec<&'a Path> {
    let data_dirs: std::collections::HashSet<&Path> =
        data.iter().filter_map(|p| p.parent()).collect();
    let mut shared: Vec<&Path> = parity
        .iter()
        .filter_map(|p| p.parent())
        .filter(|d| data_dirs.contains(d))
        .collect();
    shared.dedup();
    shared
}

/// Refuses outputs that are no directory, or that lie inside the site home
/// (its store, catalog and keys) or inside the package being sent (whose
/// next parcel would take the volumes in), and a package that is no
/// directory: usage errors, found before anything is written.
pub(crate) fn check_outputs(
    ctx: &Context,
    outs: &[PathBuf],
    package: &Path,
) -> Result<(), CliError> {
    for out in outs {
        if !out.is_dir() {
            return Err(CliError::Usage(format!(
                "output {} is not a directory; mount the medium or create the directory",
                out.display()
            )));
        }
    }
    if !package.is_dir() {
        return Err(CliError::Usage(format!(
            "package {} is not a directory; give the directory that holds the package's files",
            package.display()
        )));
    }
    let package_dir = fs::canonicalize(package).map_err(CliError::io("read", package))?;
    let home_dir = fs::canonicalize(ctx.home.root()).ok();
    let mut seen: Vec<(PathBuf, &PathBuf)> = Vec::new();
    for out in outs {
        let out_dir = fs::canonicalize(out).map_err(CliError::io("read", out))?;
        // One medium given twice (or through a link) would have its room
        // counted twice.
        if let Some((_, first)) = seen.iter().find(|(dir, _)| *dir == out_dir) {
            return Err(CliError::Usage(format!(
                "outputs {} and {} are the same directory; give each medium once",
                first.display(),
                out.display()
            )));
        }
        seen.push((out_dir.clone(), out));
        if home_dir.as_ref().is_some_and(|h| out_dir.starts_with(h)) {
            return Err(CliError::Usage(format!(
                "output {} is inside the site home {}, which parcel manages (its store, catalog and keys); write the volumes to a medium outside it",
                out.display(),
                ctx.home.root().display()
            )));
        }
        if out_dir.starts_with(&package_dir) {
            return Err(CliError::Usage(format!(
                "output {} is inside the package {}: its volumes would become part of the package; write them to a directory outside it",
                out.display(),
                package.display()
            )));
        }
    }
    Ok(())
}

/// Removes volume files just written; returns "" when all are gone, else a
/// clause naming those left, for the error message.
fn remove_volumes<'p>(paths: impl Iterator<Item = &'p PathBuf>) -> String {
    let left: Vec<String> = paths
        .filter(|p| fs::remove_file(p).is_err_and(|e| e.kind() != std::io::ErrorKind::NotFound))
        .map(|p| p.display().to_string())
        .collect();
    if left.is_empty() {
        String::new()
    } else {
        format!(
            ", and these could not be removed (delete them, and do not ship them): {}",
            left.join(", ")
        )
    }
}

/// The history note of a parcel whose volumes failed their read-back and
/// could not be removed.
pub(crate) const NOT_TO_SHIP: &str = "the volumes did not read back intact: do not ship them";
/// The history note of a parcel whose volumes read back intact.
const READ_BACK: &str = "read back from the media and verified";
/// The end of the `created` event's detail when the read-back came first
/// (media swapped at a terminal: recorded once verified).
const CREATED_VERIFIED: &str = ", verified";

/// What a parcel's history says of the read-back of its volumes.
#[derive(Debug, PartialEq)]
pub(crate) enum ReadBack {
    Verified,
    /// They did not read back intact and are still on the media.
    Failed,
    /// Never read back: made with `--no-verify`, or the read-back was
    /// interrupted.
    Unchecked,
}

/// What `history` (of an outgoing parcel) says of its read-back.
pub(crate) fn read_back(history: &[Event]) -> ReadBack {
    if history.iter().any(|e| e.detail == NOT_TO_SHIP) {
        ReadBack::Failed
    } else if history.iter().any(|e| {
        e.detail == READ_BACK
            || (e.status == Status::Created && e.detail.ends_with(CREATED_VERIFIED))
    }) {
        ReadBack::Verified
    } else {
        ReadBack::Unchecked
    }
}

/// Keeps the parcel's index for repair requests and records the outgoing
/// parcel as created, with the volumes at `paths` and `parity_paths`;
/// `verified` says the record comes after the read-back.
#[allow(clippy::too_many_arguments)]
fn record_created(
    ctx: &Context,
    catalog: &mut Catalog,
    o: &Outgoing<'_>,
    source_site: &str,
    info: &ParcelInfo,
    written: &write::WriteSummary,
    paths: &[PathBuf],
    parity_paths: &[PathBuf],
    verified: bool,
    destination: &TrustedSite,
) -> Result<ParcelRecord, CliError> {
    let manifest = &written.manifest;
    let kept = keep_index(ctx, manifest, o.level)?;
    let base_version = manifest.base.as_ref().map(|b| b.package_version);
    let record = ParcelRecord {
        parcel_id: info.parcel_id.to_string(),
        direction: Direction::Outgoing,
        status: Status::Created,
        source_site: source_site.to_owned(),
        origin_site: manifest.origin_site.clone(),
        destination_site: o.to.to_owned(),
        package_id: o.package_id.to_owned(),
        package_version: o.version,
        created: info.created,
        comment: o.comment.to_owned(),
        bytes: written.bytes(),
        volume_count: manifest.volume_count,
        volumes: paths
            .iter()
            .chain(parity_paths)
            .map(|p| crate::media::catalog_path(p))
            .collect(),
        tree_digest: hex(&manifest.tree_digest()),
        encrypted: o.encrypt,
    };
    let added = catalog.add_parcel_trusting(
        &record,
        clock::now(),
        &format!(
            "written as {} volume(s){}{}{}{}",
            paths.len(),
            base_version.map_or(String::new(), |v| format!(", delta on v{v}")),
            if o.encrypt {
                format!(", encrypted to {}", o.to)
            } else {
                String::new()
            },
            o.parity.map_or(String::new(), |p| format!(
                ", {p}% repair data in {} parity volume(s)",
                parity_paths.len()
            )),
            if verified { CREATED_VERIFIED } else { "" }
        ),
        // A `key revoke` or `key trust` of the destination while this ran
        // would otherwise be ignored: the parcel is given up instead.
        destination,
    );
    if let Err(e) = added {
        // Not recorded: no index kept for it either.
        let _ = fs::remove_file(&kept);
        return Err(e.into());
    }
    Ok(record)
}

/// The error of a create that gave its parcel up after `e`, its volumes
/// removed as `removed` says ([`crate::interrupt::Writing::abandon`]).
fn given_up(e: CliError, removed: String, advice: &'static str) -> CliError {
    CliError::GivenUp {
        cause: Box::new(e),
        removed,
        advice,
    }
}

/// What to do after the copy onto swapped media failed or was stopped.
const AGAIN_WITH_MEDIA: &str = "run create again when the media to hold it are at hand";
/// What to do after the parcel could not be recorded.
const AGAIN_ONCE_FIXED: &str = "run create again once that is put right";

/// A medium that filled up while volumes were written (the free-space check
/// skipped, a delta's estimate that came out low, or another writer on the
/// medium) is a [`CliError::NoSpace`] that says how much room the parcel
/// needs and the room there is (the free space, at most `medium_size`, of
/// the `outs` together); any other error writing a volume names the `outs`;
/// other errors are kept as they are. The medium is full when the filesystem
/// says so, or when the next volume would not fit the room the writer was
/// given. `spooled`: `outs` is the spool in the home, whose disk filled (no
/// medium to add).
fn medium_filled(
    err: parcel_format::WriteError,
    outs: &[PathBuf],
    medium_size: Option<u64>,
    room: &Room,
    spooled: bool,
) -> CliError {
    let parcel_format::WriteError::Volume { volume, source } = &err else {
        return err.into();
    };
    let full = source.raw_os_error() == Some(libc::ENOSPC)
        || source.kind() == std::io::ErrorKind::StorageFull;
    if !full {
        // The writer removed its partial volumes; name where it wrote.
        let dirs: Vec<String> = outs.iter().map(|o| o.display().to_string()).collect();
        let advice = if source.raw_os_error() == Some(libc::EFBIG) {
            "the file system there takes no file this large: give a smaller --volume-size (fat32 for a FAT32 medium), then run create again"
        } else {
            "check that the medium is mounted and writable, then run create again"
        };
        return CliError::Failed {
            subject: format!("writing volume {volume} in {}", dirs.join(", ")),
            reason: format!("{source}; {advice}"),
        };
    }
    // The writer removed its partial volumes: this is the room there is,
    // on every output together (the writer fills them in turn, and the last
    // one it wrote to is not known here).
    // Folders on one disk share its free space: counted by `usable_room`,
    // in bytes rather than whole volumes.
    let disks: Vec<(u64, u64)> = outs
        .iter()
        .map(|out| {
            use std::os::unix::fs::MetadataExt;
            let device = fs::metadata(out).map_or(0, |m| m.dev());
            (device, available_space(out).unwrap_or(0))
        })
        .collect();
    let capacities: Vec<Option<u64>> = disks
        .iter()
        .map(|&(_, free)| Some(medium_size.map_or(free, |m| m.min(free))))
        .collect();
    let available = usable_room(&disks, &capacities, 1, true);
    let place: Vec<String> = outs.iter().map(|p| p.display().to_string()).collect();
    let available = match outs.len() {
        0 | 1 => format!("{} available", human_bytes(available)),
        n => format!(
            "{} available on the {n} --out media together",
            human_bytes(available)
        ),
    };
    CliError::NoSpace {
        place: place.join(", "),
        needed: room.describe_filled(),
        available,
        advice: if spooled {
            "the disk of this site's home filled while the parcel was prepared there for the media, and it was removed; free some space on it and run create again"
        } else if outs.len() > 1 {
            "the media filled while the volumes were written, and they were removed; free some space, add another --out medium or choose a smaller --volume-size, and run create again"
        } else {
            "the medium filled while the volumes were written, and they were removed; free some space, add another --out medium or choose a smaller --volume-size, and run create again"
        },
    }
}

fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Takes the spool (`<home>/spool`) for this create, one create at a time
/// (`<home>/spool.lock`), and empties it: nothing in it outlives the create
/// that put it there, so what is there was left by one that was killed.
fn take_spool(ctx: &Context, spool: &Path) -> Result<File, CliError> {
    let lock_path = ctx.home.root().join("spool.lock");
    let lock = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(CliError::io("open lock file", &lock_path))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            return Err(CliError::Failed {
                subject: "create".into(),
                reason: format!(
                    "another create is preparing a parcel in {} for media swapped at a terminal (it may be waiting there for the next medium); let it finish, or give --out media with room for the whole parcel",
                    spool.display()
                ),
            })
        }
        Err(fs::TryLockError::Error(e)) => return Err(CliError::io("lock", &lock_path)(e)),
    }
    fs::create_dir_all(spool).map_err(CliError::io("create", spool))?;
    let mut removed = 0usize;
    for entry in fs::read_dir(spool).map_err(CliError::io("list", spool))? {
        let entry = entry.map_err(CliError::io("list", spool))?;
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            fs::remove_file(entry.path()).map_err(CliError::io("remove", &entry.path()))?;
            removed += 1;
        }
    }
    if removed > 0 {
        ctx.note(&format!(
            "removed {removed} file(s) a killed create left in {}",
            spool.display()
        ));
    }
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_on_one_disk_share_its_free_space() {
        const G: u64 = 1 << 30;
        const V: u64 = G / 4;
        // Two folders on one 10 GiB disk, one on a 3 GiB disk: 13 GiB, not 23.
        let disks = [(1, 10 * G), (1, 10 * G), (2, 3 * G)];
        let free = [Some(10 * G), Some(10 * G), Some(3 * G)];
        assert_eq!(usable_room(&disks, &free, V, true), 13 * G);
        // Capped at 4 GiB per medium (folders to burn to discs later): both
        // caps fit on the disk.
        let capped = [Some(4 * G), Some(4 * G), Some(3 * G)];
        assert_eq!(usable_room(&disks, &capped, V, true), 11 * G);
        // Without the space check the caps alone count.
        assert_eq!(
            usable_room(&[(1, G), (1, G)], &[Some(4 * G), Some(4 * G)], V, false),
            8 * G
        );
        // Whole volumes only: 1.1 GiB holds four volumes of 0.25 GiB.
        assert_eq!(
            usable_room(&[(1, G + G / 10)], &[Some(G + G / 10)], V, true),
            G
        );
    }
}
