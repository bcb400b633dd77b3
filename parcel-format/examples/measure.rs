//! Measures chunk and pack granularity on a real package (FORMAT.md §5.1, §5.2).
//!
//! ```text
//! cargo run --release -p parcel-format --example measure -- DIR
//! ```
//!
//! For each chunk average (min = avg/4, max = avg*4) and pack target, writes
//! DIR as a parcel (zstd level 3, one large volume) into a temporary directory
//! and prints its size next to `tar -C DIR -cf - . | zstd -3 -T0 -c`. Then it
//! makes a modified copy of DIR (1 MiB rewritten in the middle of the largest
//! file, 100 bytes inserted in the middle of five text files, one file added
//! and one removed) and prints, per chunk average, the share of the new
//! version's chunk bytes that the old version's chunks do not already hold:
//! what a small change to a large package costs in new chunks.
//!
//! Needs `tar` and `zstd` on the PATH. Writes only under the system's
//! temporary directory, and removes what it wrote.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use parcel_format::sign;
use parcel_format::volume::{DirSink, OutputDir};
use parcel_format::write::{scan, write_parcel, ParcelInfo, WriteOptions, WriteSummary};
use parcel_format::{ChunkParams, Hash, ParcelId};

const KIB: u32 = 1024;
const MIB: u32 = 1024 * 1024;
/// Chunk averages tried; min is a quarter, max four times.
const CHUNK_AVERAGES: [u32; 4] = [16 * KIB, 32 * KIB, 64 * KIB, 128 * KIB];
/// Pack targets tried (raw bytes per pack).
const PACK_TARGETS: [u32; 3] = [MIB, 4 * MIB, 8 * MIB];
/// Pack target used for the delta runs (chunk cuts do not depend on it).
const DELTA_PACK_TARGET: u32 = 4 * MIB;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: measure DIR");
        std::process::exit(2);
    };
    let work = tempfile::tempdir()?;

    let package = scan(&dir)?;
    println!(
        "package: {} ({} entries, {} files, {} content bytes)",
        dir.display(),
        package.entries(),
        package.files,
        package.content_bytes
    );
    let started = Instant::now();
    let baseline = shell_count(&format!(
        "tar -C '{}' -cf - . | zstd -3 -T0 -c | wc -c",
        dir.display()
    ))?;
    println!(
        "tar -C DIR -cf - . | zstd -3 -T0 -c | wc -c: {baseline} bytes ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    println!();
    println!("| chunk min/avg/max KiB | pack target MiB | chunks | packs | index bytes | parcel bytes | vs tar+zstd | write s |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");

    let mut old_chunks: Vec<(u32, HashSet<(Hash, u32)>)> = Vec::new();
    for avg in CHUNK_AVERAGES {
        let chunking = params(avg);
        for pack_target in PACK_TARGETS {
            let started = Instant::now();
            let summary = write_once(&dir, work.path(), chunking, pack_target)?;
            let seconds = started.elapsed().as_secs_f64();
            let bytes = summary.bytes();
            let index = summary.manifest.encode(3)?.0.len();
            println!(
                "| {}/{}/{} | {} | {} | {} | {} | {} | {:+.2}% | {:.1} |",
                chunking.min / KIB,
                chunking.avg / KIB,
                chunking.max / KIB,
                pack_target / MIB,
                summary.manifest.chunks.len(),
                summary.manifest.packs.len(),
                index,
                bytes,
                percent(bytes as f64 - baseline as f64, baseline as f64),
                seconds
            );
            std::io::stdout().flush()?;
            if pack_target == DELTA_PACK_TARGET {
                old_chunks.push((avg, chunk_set(&summary)));
            }
        }
    }

    let modified = work.path().join("modified");
    copy_tree(&dir, &modified)?;
    let change = modify(&modified)?;
    println!();
    println!("modified copy: {}", change.said);
    println!(
        "content bytes the change made new: {} ({:.3}% of the package)",
        change.new_bytes,
        percent(change.new_bytes as f64, package.content_bytes as f64)
    );
    println!();
    println!("| chunk min/avg/max KiB | new-version chunks | of them new | new-version chunk bytes | of them new | share | new bytes / changed bytes |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (avg, old) in &old_chunks {
        let chunking = params(*avg);
        let summary = write_once(&modified, work.path(), chunking, DELTA_PACK_TARGET)?;
        let new = chunk_set(&summary);
        let total: u64 = new.iter().map(|(_, len)| u64::from(*len)).sum();
        let fresh_chunks = new.difference(old).count();
        let fresh: u64 = new.difference(old).map(|(_, len)| u64::from(*len)).sum();
        println!(
            "| {}/{}/{} | {} | {fresh_chunks} | {total} | {fresh} | {:.3}% | {:.2} |",
            chunking.min / KIB,
            chunking.avg / KIB,
            chunking.max / KIB,
            new.len(),
            percent(fresh as f64, total as f64),
            fresh as f64 / change.new_bytes.max(1) as f64
        );
        std::io::stdout().flush()?;
    }
    Ok(())
}

fn params(avg: u32) -> ChunkParams {
    ChunkParams {
        min: avg / 4,
        avg,
        max: avg * 4,
    }
}

fn percent(part: f64, whole: f64) -> f64 {
    if whole == 0.0 {
        0.0
    } else {
        100.0 * part / whole
    }
}

/// Runs a shell pipeline that prints one number and returns it.
fn shell_count(pipeline: &str) -> Result<u64, Error> {
    let out = Command::new("sh").arg("-c").arg(pipeline).output()?;
    if !out.status.success() {
        return Err(format!(
            "`{pipeline}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(out.stdout)?.trim().parse()?)
}

/// Writes `dir` as a parcel into a fresh directory under `work`, then removes the volumes.
fn write_once(
    dir: &Path,
    work: &Path,
    chunking: ChunkParams,
    pack_target: u32,
) -> Result<WriteSummary, Error> {
    let out = tempfile::tempdir_in(work)?;
    let options = WriteOptions {
        volume_size: 64 << 30,
        level: 3,
        chunking,
        pack_target,
        threads: 0,
        encryption: None,
        read_back: false,
    };
    let info = ParcelInfo {
        parcel_id: ParcelId::random(),
        source_site: "CEN".into(),
        origin_site: None,
        destinations: vec!["BXL".into()],
        package_id: "MEASURE".into(),
        package_version: 1,
        created: 1_700_000_000,
        comment: String::new(),
    };
    let key = sign::generate_secret_key();
    let mut sink = DirSink::new(
        vec![OutputDir {
            dir: out.path().to_owned(),
            capacity: None,
        }],
        "measure",
        options.volume_size,
    );
    let package = scan(dir)?;
    let summary = write_parcel(package, &info, &key, &options, &mut sink, &mut |_| {})?;
    out.close()?;
    Ok(summary)
}

/// The distinct chunks of a parcel, by hash and length.
fn chunk_set(summary: &WriteSummary) -> HashSet<(Hash, u32)> {
    summary
        .manifest
        .chunks
        .iter()
        .map(|c| (c.sha256, c.len))
        .collect()
}

/// Copies a tree: directories, regular files (with their permissions) and symlinks.
fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    fs::create_dir(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&source, &target)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&source)?, &target)?;
        } else {
            fs::copy(&source, &target)?;
        }
    }
    Ok(())
}

/// Every regular file under `root` with its size, in a stable order.
fn files(root: &Path) -> Result<Vec<(PathBuf, u64)>, Error> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let mut names: Vec<_> = fs::read_dir(&dir)?.collect::<Result<_, _>>()?;
        names.sort_by_key(|e| e.file_name());
        for entry in names {
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                out.push((entry.path(), entry.metadata()?.len()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Whether a file looks like text (no NUL in its first 8 KiB).
fn is_text(path: &Path) -> bool {
    fs::read(path)
        .map(|data| !data.iter().take(8192).any(|&b| b == 0))
        .unwrap_or(false)
}

/// A deterministic pseudo-random byte stream (xorshift64).
fn noise(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// The small change applied to the copy: what it did, and how many bytes of
/// content it made new (the least any chunking could add).
struct Change {
    said: String,
    new_bytes: u64,
}

/// Applies the small change to the copy at `root`.
fn modify(root: &Path) -> Result<Change, Error> {
    let mut all = files(root)?;
    all.sort_by_key(|(path, size)| (std::cmp::Reverse(*size), path.clone()));
    let mut said = Vec::new();
    let mut new_bytes = 0u64;
    let mut line = vec![b'#'; 99];
    line.push(b'\n');

    // 1 MiB rewritten in the middle of the largest file (same length).
    let (largest, size) = all.first().cloned().ok_or("the package has no files")?;
    let mut data = fs::read(&largest)?;
    let span = data.len().min(MIB as usize);
    let start = (data.len() - span) / 2;
    data[start..start + span].copy_from_slice(&noise(span, 0x1234_5678_9abc_def1));
    fs::write(&largest, &data)?;
    new_bytes += span as u64;
    said.push(format!(
        "{span} bytes rewritten in the middle of {} ({size} bytes)",
        rel(root, &largest)
    ));

    // 100 bytes inserted in the middle of the second-largest file: every later byte shifts.
    if let Some((second, size)) = all.get(1) {
        let mut data = fs::read(second)?;
        let middle = data.len() / 2;
        data.splice(middle..middle, line.iter().copied());
        fs::write(second, &data)?;
        new_bytes += line.len() as u64;
        said.push(format!(
            "100 bytes inserted in the middle of {} ({size} bytes)",
            rel(root, second)
        ));
    }

    // 100 bytes inserted in the middle of five text files of 8 KiB to 1 MiB, spread over the tree.
    let mut texts: Vec<&(PathBuf, u64)> = all
        .iter()
        .skip(2)
        .filter(|(p, size)| (8192..=1 << 20).contains(size) && is_text(p))
        .collect();
    texts.sort();
    let picks = 5.min(texts.len());
    for i in 0..picks {
        let (path, _) = texts[i * texts.len() / picks];
        let mut data = fs::read(path)?;
        let middle = data.len() / 2;
        data.splice(middle..middle, line.iter().copied());
        fs::write(path, &data)?;
        new_bytes += line.len() as u64;
    }
    said.push(format!(
        "100 bytes inserted in the middle of {picks} text files"
    ));

    // One file removed (the median-sized one), one added (64 KiB of new content).
    if let Some((removed, size)) = all.get(all.len() / 2).filter(|_| all.len() > 2) {
        fs::remove_file(removed)?;
        said.push(format!("{} ({size} bytes) removed", rel(root, removed)));
    }
    fs::write(
        root.join("ADDED-BY-MEASURE.bin"),
        noise(64 * 1024, 0x0fed_cba9_8765_4321),
    )?;
    new_bytes += 64 * 1024;
    said.push("ADDED-BY-MEASURE.bin (65536 bytes) added".into());
    Ok(Change {
        said: said.join("; "),
        new_bytes,
    })
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}
