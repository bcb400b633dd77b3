//! `parcel demo`: the whole courier walk-through between two sites, CEN (the
//! source) and BXL (the destination), in a fresh directory with sample
//! package data. Each step runs this very binary with the arguments a user
//! would type, and prints them first, so the demo doubles as a tutorial.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::DemoArgs;
use crate::error::CliError;
use crate::output;

/// `parcel demo`. Needs no site home: it makes its own.
pub fn run(args: &DemoArgs, quiet: bool) -> Result<(), CliError> {
    let temp;
    let dir: PathBuf = match &args.dir {
        Some(dir) => {
            if dir.exists() && !dir.is_dir() {
                return Err(CliError::Usage(format!(
                    "{} is not a directory; give an empty or new directory to --dir",
                    dir.display()
                )));
            }
            fs::create_dir_all(dir).map_err(CliError::io("create", dir))?;
            if fs::read_dir(dir)
                .map_err(CliError::io("list", dir))?
                .next()
                .is_some()
            {
                return Err(CliError::Usage(format!(
                    "{} is not empty; give an empty or new directory to --dir",
                    dir.display()
                )));
            }
            dir.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("parcel-demo-")
                .tempdir()
                .map_err(CliError::io(
                    "create a temporary directory in",
                    &std::env::temp_dir(),
                ))?;
            temp.path().to_path_buf()
        }
    };
    let exe = std::env::current_exe()
        .map_err(CliError::io("find", Path::new("the parcel executable")))?;
    let demo = Demo {
        dir: dir.clone(),
        exe,
        quiet,
    };
    output::print(&format!("parcel demo in {}\n", dir.display()))?;

    demo.step("Make a sample package at the source site (a directory tree)")?;
    make_sample_package(&dir.join("package"))?;
    output::print("  package/: bin/tool (2 MiB), lib/libdemo.so.1 (sharing its first bytes with bin/tool) and a symlink to it, docs with a non-ASCII name, an empty directory\n")?;

    demo.step(
        "Set up the two sites; each gets its own home, Ed25519 signing key and age encryption key",
    )?;
    demo.parcel(&[
        "--home",
        "cen",
        "site",
        "init",
        "--code",
        "CEN",
        "--name",
        "Central office",
    ])?;
    demo.parcel(&[
        "--home",
        "bxl",
        "site",
        "init",
        "--code",
        "BXL",
        "--name",
        "Brussels branch",
        "--parent",
        "CEN",
    ])?;

    demo.step("Exchange public keys by hand (on paper, USB stick, e-mail) and check fingerprints by phone")?;
    demo.parcel(&["--home", "cen", "key", "export", "--out", "cen.pub"])?;
    demo.parcel(&["--home", "bxl", "key", "export", "--out", "bxl.pub"])?;
    let cen_fp = fingerprint_of(&dir.join("cen.pub"))?;
    let bxl_fp = fingerprint_of(&dir.join("bxl.pub"))?;
    demo.parcel(&[
        "--home",
        "cen",
        "key",
        "trust",
        "bxl.pub",
        "--fingerprint",
        &bxl_fp,
    ])?;
    demo.parcel(&[
        "--home",
        "bxl",
        "key",
        "trust",
        "cen.pub",
        "--fingerprint",
        &cen_fp,
    ])?;

    demo.step(
        "At CEN: create the parcel on three media (directories standing for three small discs)",
    )?;
    for disc in ["media/disc1", "media/disc2", "media/disc3"] {
        fs::create_dir_all(dir.join(disc)).map_err(CliError::io("create", &dir.join(disc)))?;
    }
    let created = demo.parcel_output(&[
        "--home",
        "cen",
        "create",
        "--package",
        "package",
        "--package-id",
        "CEN00012",
        "--version",
        "1",
        "--to",
        "BXL",
        "--out",
        "media/disc1",
        "--out",
        "media/disc2",
        "--out",
        "media/disc3",
        "--volume-size",
        "1MiB",
        "--medium-size",
        "1MiB",
        "--comment",
        "demo release",
        "--json",
    ])?;
    let parcel_id = serde_json::from_str::<serde_json::Value>(&created)
        .ok()
        .and_then(|v| {
            v.get("parcel_id")
                .and_then(|id| id.as_str())
                .map(str::to_owned)
        })
        .ok_or_else(|| CliError::Failed {
            subject: "demo".into(),
            reason: "create --json printed no parcel_id".into(),
        })?;
    demo.parcel(&[
        "--home",
        "cen",
        "sent",
        &parcel_id,
        "--via",
        "DHL Express",
        "--tracking",
        "JD014600003SE",
    ])?;

    demo.step("At BXL: check the media as they arrive, in any order, then import")?;
    demo.parcel(&[
        "--home",
        "bxl",
        "verify",
        "media/disc3",
        "media/disc1",
        "media/disc2",
    ])?;
    demo.parcel(&[
        "--home",
        "bxl",
        "import",
        "media/disc2",
        "media/disc3",
        "media/disc1",
        "--receipt",
        "receipt.txt",
    ])?;
    demo.parcel(&["--home", "bxl", "packages"])?;

    demo.step("A second import of the same parcel changes nothing")?;
    demo.parcel(&[
        "--home",
        "bxl",
        "import",
        "media/disc1",
        "media/disc2",
        "media/disc3",
        "--receipt",
        "receipt.txt",
    ])?;

    demo.step("Back at CEN: apply the signed receipt; the parcel is confirmed")?;
    demo.parcel(&["--home", "cen", "receipt", "apply", "receipt.txt"])?;
    demo.parcel(&[
        "--home",
        "cen",
        "show",
        parcel_id.get(..12).unwrap_or(&parcel_id),
    ])?;

    demo.step("Version 2 changes one file: CEN sends a delta parcel on the confirmed version 1, encrypted so that only BXL can read it")?;
    let notes = dir.join("package/share/doc/README.txt");
    fs::write(&notes, "Version 2 of the demo package.\n".repeat(200))
        .map_err(CliError::io("write", &notes))?;
    let disc4 = dir.join("media/disc4");
    fs::create_dir_all(&disc4).map_err(CliError::io("create", &disc4))?;
    demo.parcel(&[
        "--home",
        "cen",
        "create",
        "--package",
        "package",
        "--package-id",
        "CEN00012",
        "--version",
        "2",
        "--to",
        "BXL",
        "--base",
        "1",
        "--encrypt",
        "--out",
        "media/disc4",
    ])?;
    demo.parcel(&["--home", "bxl", "import", "media/disc4"])?;
    demo.parcel(&["--home", "bxl", "packages"])?;

    output::print(&format!(
        "\nDone. Everything above happened under {}{}.\nNext: read README.md for the walk-through, and FORMAT.md for the format.\n",
        dir.display(),
        if args.dir.is_some() { " (kept)" } else { " (removed now)" }
    ))?;
    Ok(())
}

struct Demo {
    dir: PathBuf,
    exe: PathBuf,
    /// `--quiet` given to the demo: the steps run with it too (no hints).
    quiet: bool,
}

impl Demo {
    fn step(&self, title: &str) -> Result<(), CliError> {
        output::print(&format!("\n== {title}\n"))
    }

    fn command(&self, args: &[&str]) -> Result<Command, CliError> {
        let shown: Vec<String> = args
            .iter()
            .map(|a| {
                if a.contains(' ') {
                    format!("'{a}'")
                } else {
                    (*a).to_owned()
                }
            })
            .collect();
        output::print(&format!("$ parcel {}\n", shown.join(" ")))?;
        let mut command = Command::new(&self.exe);
        if self.quiet {
            command.arg("--quiet");
        }
        command
            .args(args)
            .current_dir(&self.dir)
            .env_remove("PARCEL_HOME");
        Ok(command)
    }

    /// Runs a step, its output going straight to the terminal.
    fn parcel(&self, args: &[&str]) -> Result<(), CliError> {
        let status = self
            .command(args)?
            .status()
            .map_err(CliError::io("run", &self.exe))?;
        if !status.success() {
            return Err(CliError::Failed {
                subject: "demo".into(),
                reason: format!("step `parcel {}` failed ({status})", args.join(" ")),
            });
        }
        Ok(())
    }

    /// Runs a step and returns its standard output (also shown).
    fn parcel_output(&self, args: &[&str]) -> Result<String, CliError> {
        let out = self
            .command(args)?
            .output()
            .map_err(CliError::io("run", &self.exe))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        output::print(&text)?;
        if !out.status.success() {
            return Err(CliError::Failed {
                subject: "demo".into(),
                reason: format!(
                    "step `parcel {}` failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
        Ok(text)
    }
}

fn fingerprint_of(path: &Path) -> Result<String, CliError> {
    let text = fs::read_to_string(path).map_err(CliError::io("read", path))?;
    text.lines()
        .find_map(|l| l.strip_prefix("fingerprint: "))
        .map(str::to_owned)
        .ok_or_else(|| CliError::Failed {
            subject: path.display().to_string(),
            reason: "no fingerprint line".into(),
        })
}

fn make_sample_package(root: &Path) -> Result<(), CliError> {
    let write = |rel: &str, bytes: &[u8]| -> Result<(), CliError> {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(CliError::io("create", parent))?;
        }
        fs::write(&path, bytes).map_err(CliError::io("write", &path))
    };
    // Pseudo-random bytes (xorshift) stand in for a compiled binary.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let tool: Vec<u8> = (0..2 * 1024 * 1024)
        .map(|i: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let _ = i;
            state as u8
        })
        .collect();
    write("bin/tool", &tool)?;
    let tool_path = root.join("bin/tool");
    fs::set_permissions(&tool_path, fs::Permissions::from_mode(0o755))
        .map_err(CliError::io("chmod", &tool_path))?;
    write("lib/libdemo.so.1", &tool[..300_000])?;
    let link = root.join("lib/libdemo.so");
    std::os::unix::fs::symlink("libdemo.so.1", &link).map_err(CliError::io("create", &link))?;
    write(
        "share/doc/README.txt",
        "Demo package for the parcel courier sender.\n"
            .repeat(200)
            .as_bytes(),
    )?;
    write(
        "share/doc/données.txt",
        "Fichier au nom non ASCII.\n".as_bytes(),
    )?;
    let empty = root.join("var/empty");
    fs::create_dir_all(&empty).map_err(CliError::io("create", &empty))?;
    Ok(())
}
