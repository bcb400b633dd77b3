//! Writes the seed corpus of every fuzz target (run by `fuzz/seed.sh`).
//!
//! ```text
//! seed-corpus CORPUS_DIR [VECTORS_DIR]
//! ```
//!
//! Seeds come from the parcels in `parcel_fuzz` (signed by the fuzz key, so
//! the `volume` target gets past its signature check) and from the test
//! vectors in VECTORS_DIR (`*.vector`: `key: value` header lines, among them
//! `volume: NAME LEN` lines, an empty line, then the volumes' bytes one after
//! the other). From each parcel: every header record (`header`), every volume
//! (`volume`), the stored index behind its length and the decoded index
//! (`index`). A vector's volumes are also given to `volume` re-signed by the
//! fuzz key, and a few hostile fixture parcels (signed, resealed, refused by
//! the deeper checks) are added. A vector without volumes is taken as a receipt. Existing files
//! are overwritten; units the fuzzer added are left alone.

use std::fs;
use std::path::{Path, PathBuf};

use parcel_format::header::{VolumeHeader, RECORD_LEN};
use parcel_format::limits::{BLOCK, VOLUME_PREFIX};
use parcel_format::receipt::Receipt;
use parcel_format::testkit;
use parcel_format::{EntryKind, Manifest, ParcelId};
use parcel_fuzz::{noise, SeedParcel};

type Error = Box<dyn std::error::Error>;
/// A parcel's volume files' bytes, volume 1 first.
type Volumes = Vec<Vec<u8>>;
/// A change to a fixture's manifest before it is signed.
type ManifestEdit = fn(&mut Manifest);

struct Corpus {
    root: PathBuf,
    written: usize,
}

impl Corpus {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) -> Result<(), Error> {
        let dir = self.root.join(target);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(name), bytes)?;
        self.written += 1;
        Ok(())
    }

    /// Seeds `header`, `volume` and `index` from one parcel's volumes.
    fn parcel(&mut self, name: &str, volumes: &[Vec<u8>]) -> Result<(), Error> {
        let mut pieces = Vec::new();
        let mut lengths = None;
        for (i, volume) in volumes.iter().enumerate() {
            self.put("volume", &format!("{name}-v{}", i + 1), volume)?;
            let Some(record) = volume.get(BLOCK as usize..VOLUME_PREFIX as usize) else {
                continue;
            };
            self.put("header", &format!("{name}-v{}", i + 1), record)?;
            let record: &[u8; RECORD_LEN] = record.try_into()?;
            let Ok(header) = VolumeHeader::decode_verified(record) else {
                continue;
            };
            lengths = Some((header.index_stored_len, header.index_raw_len));
            let piece = header.index_piece;
            let bytes = usize::try_from(piece.offset)
                .ok()
                .zip(usize::try_from(piece.offset.saturating_add(piece.len)).ok())
                .and_then(|(start, end)| volume.get(start..end));
            if let (true, Some(bytes)) = (piece.len > 0, bytes) {
                pieces.push((piece.start, bytes));
            }
        }
        let Some((stored_len, raw_len)) = lengths else {
            return Ok(());
        };
        pieces.sort_by_key(|(start, _)| *start);
        let stored: Vec<u8> = pieces.iter().flat_map(|(_, b)| b.iter().copied()).collect();
        if stored.len() as u64 != stored_len || raw_len > u64::from(u32::MAX) {
            eprintln!("seed-corpus: {name}: index pieces incomplete, no index seed");
            return Ok(());
        }
        let mut seed = (raw_len as u32).to_le_bytes().to_vec();
        seed.extend_from_slice(&stored);
        self.put("index", &format!("{name}-stored"), &seed)?;
        if let Ok(raw) = zstd::bulk::decompress(&stored, raw_len as usize) {
            self.put("index", &format!("{name}-postcard"), &raw)?;
        }
        Ok(())
    }
}

/// Splits a vector file into its volumes (or, without volumes, its body).
fn read_vector(path: &Path) -> Result<(Vec<Vec<u8>>, Vec<u8>), String> {
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    let split = bytes
        .windows(2)
        .position(|w| w == b"\n\n")
        .ok_or("no empty line after the header")?;
    let header = std::str::from_utf8(&bytes[..split]).map_err(|_| "header is not UTF-8")?;
    let mut body = &bytes[split + 2..];
    let mut volumes = Vec::new();
    for line in header.lines() {
        let Some(value) = line.strip_prefix("volume:") else {
            continue;
        };
        let len: usize = value
            .split_whitespace()
            .last()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("bad volume line {line:?}"))?;
        if len > body.len() {
            return Err(format!("volume line {line:?} runs past the end"));
        }
        let (volume, rest) = body.split_at(len);
        volumes.push(volume.to_vec());
        body = rest;
    }
    Ok((volumes, body.to_vec()))
}

fn fixtures(corpus: &mut Corpus) -> Result<(), Error> {
    let parcels: [(&str, SeedParcel); 4] = [
        ("fixture-multi", parcel_fuzz::seed_parcel().clone()),
        ("fixture-single", parcel_fuzz::seed_parcel_one_volume()),
        ("fixture-raw", parcel_fuzz::raw_seed_parcel()),
        (
            "fixture-encrypted",
            parcel_fuzz::encrypted::seed_parcel().clone(),
        ),
    ];
    for (name, parcel) in &parcels {
        corpus.parcel(name, &parcel.volumes)?;
    }
    for (name, volumes) in hostile_fixtures(&parcels[1].1)? {
        corpus.parcel(&name, &volumes)?;
    }
    let receipt = Receipt {
        parcel_id: ParcelId([0x11; 16]),
        source_site: "CEN".into(),
        destination_site: "BXL".into(),
        package_id: "CEN00012".into(),
        package_version: 1,
        tree_digest: parcels[0].1.manifest.tree_digest(),
        index_sha256: [0xab; 32],
        imported: parcel_fuzz::CREATED + 3600,
    };
    let text = receipt.to_signed_text(parcel_fuzz::fuzz_key());
    corpus.put("receipt", "fixture-receipt", text.as_bytes())?;
    // The structured targets decode any bytes; give them a few lengths to start from.
    for target in ["verify_set", "extract", "roundtrip", "repair"] {
        for (i, len) in [16usize, 64, 256, 1024].into_iter().enumerate() {
            corpus.put(
                target,
                &format!("fixture-noise-{i}"),
                &noise(i as u64 + 1, len),
            )?;
        }
    }
    Ok(())
}

/// Correctly signed parcels that no honest writer makes, so that the `volume`
/// and `index` targets start past the signature and hash checks with content
/// the deeper checks refuse: a pack byte flipped and the volume resealed, a
/// chunk hash and a file hash wrong in the signed manifest.
fn hostile_fixtures(single: &SeedParcel) -> Result<Vec<(String, Volumes)>, Error> {
    let mut out = Vec::new();
    let tmp = parcel_fuzz::scratch();

    let path = tmp.path().join("pack-flipped.tar");
    let mut volume = single.volumes[0].clone();
    let at = single
        .manifest
        .packs
        .first()
        .map_or(VOLUME_PREFIX, |p| p.offset + 8);
    volume[at as usize] ^= 0x40;
    fs::write(&path, &volume)?;
    parcel_fuzz::reseal_volume(&path)?;
    out.push((
        "fixture-pack-flipped-resealed".into(),
        vec![fs::read(&path)?],
    ));

    let seed = parcel_fuzz::raw_seed();
    let edits: [(&str, ManifestEdit); 2] = [
        ("fixture-chunk-hash-wrong", |m| m.chunks[1].sha256[0] ^= 1),
        ("fixture-file-hash-wrong", |m| {
            // Entry 2 is bin/hello.sh (README, bin, bin/hello.sh, …).
            if let Some(EntryKind::File { sha256, .. }) = m.entries.get_mut(2).map(|e| &mut e.kind)
            {
                sha256[0] ^= 1;
            }
        }),
    ];
    for (name, edit) in edits {
        let mut manifest = seed.manifest.clone();
        edit(&mut manifest);
        let dir = tmp.path().join(name);
        fs::create_dir(&dir)?;
        let paths = parcel_fuzz::write_raw_parcel(
            &mut manifest,
            &seed.stored_packs,
            parcel_fuzz::SMALL_VOLUME,
            &dir,
        );
        let volumes = paths.iter().map(fs::read).collect::<Result<_, _>>()?;
        out.push((name.into(), volumes));
    }
    Ok(out)
}

/// A vector's volume with its header signed again by the fuzz key (fields
/// kept), so that the `volume` target trusts it and reaches the problem the
/// vector was made for; `None` when that changes nothing or is impossible.
fn resigned(volume: &[u8]) -> Option<Vec<u8>> {
    let tmp = parcel_fuzz::scratch();
    let path = tmp.path().join("volume.tar");
    fs::write(&path, volume).ok()?;
    testkit::resign_header(&path, parcel_fuzz::fuzz_key(), |_| {}).ok()?;
    let bytes = fs::read(&path).ok()?;
    (bytes != volume).then_some(bytes)
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args_os().skip(1);
    let root = PathBuf::from(
        args.next()
            .ok_or("usage: seed-corpus CORPUS_DIR [VECTORS_DIR]")?,
    );
    let vectors = args.next().map(PathBuf::from);
    let mut corpus = Corpus { root, written: 0 };
    fixtures(&mut corpus)?;
    let mut vector_count = 0;
    if let Some(dir) = vectors.filter(|d| d.is_dir()) {
        let mut paths: Vec<_> = fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "vector"))
            .collect();
        paths.sort();
        for path in paths {
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            let name = format!("vector-{stem}");
            match read_vector(&path) {
                Ok((volumes, _)) if !volumes.is_empty() => {
                    corpus.parcel(&name, &volumes)?;
                    for (i, volume) in volumes.iter().enumerate() {
                        if let Some(bytes) = resigned(volume) {
                            corpus.put("volume", &format!("{name}-v{}-resigned", i + 1), &bytes)?;
                        }
                    }
                }
                Ok((_, body)) if !body.is_empty() => corpus.put("receipt", &name, &body)?,
                Ok(_) => {}
                Err(reason) => {
                    eprintln!("seed-corpus: skipping {}: {reason}", path.display());
                    continue;
                }
            }
            vector_count += 1;
        }
    }
    println!(
        "seed-corpus: wrote {} seeds (using {} test vectors) under {}",
        corpus.written,
        vector_count,
        corpus.root.display()
    );
    Ok(())
}
