//! The command line: every command and option of `parcel`, as clap derive
//! types, and the parsers of the values that have a shape (site codes,
//! names, volume sizes). Nothing here does any work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::site::{is_site_code, is_site_name};

/// parcel: ship software packages between sites on removable media as signed,
/// compressed, multi-volume parcels.
#[derive(Debug, Parser)]
#[command(
    name = "parcel",
    version,
    max_term_width = 100,
    after_help = "Example:\n  parcel site init --code CEN --name 'Central office'\n  \
                  parcel create --package ./tools --package-id tools --version 7 --to NOR --out /media/dvd\n\n\
                  Exit status: 0 success, 1 error, 2 usage, 3 verification failed, 4 refused by policy."
)]
pub struct Cli {
    /// The site home (catalog, secret key, package store) [default: the
    /// platform data directory, e.g. ~/.local/share/parcel]
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "PARCEL_HOME",
        help_heading = "Global options"
    )]
    pub home: Option<PathBuf>,

    /// No progress bars, hints or notes (results and warnings still show)
    #[arg(long, short = 'q', global = true, help_heading = "Global options")]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// The commands of `parcel`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set up or show this site
    #[command(after_help = "Example:\n  parcel site init --code CEN --name 'Central office'")]
    Site {
        #[command(subcommand)]
        command: SiteCommand,
    },
    /// Export, trust, list and revoke site keys
    #[command(
        after_help = "Example:\n  parcel key trust NOR.pub --fingerprint '12345 67890 12345 67890 12345 67890'"
    )]
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Pack a package directory into a signed parcel for another site
    #[command(
        after_help = "Example:\n  parcel create --package ./tools --package-id tools --version 7 --to NOR \\\n      --out /media/dvd1 --out /media/dvd2 --volume-size dvd"
    )]
    Create(CreateArgs),
    /// Check a parcel's volumes completely without importing it
    #[command(
        after_help = "Example:\n  parcel verify /media/dvd1 /media/dvd2\n  parcel verify --media /media/usb1/*.tar"
    )]
    Verify(VerifyArgs),
    /// Verify a parcel addressed to this site and add its package to the store
    #[command(
        after_help = "Example:\n  parcel import /media/dvd1 /media/dvd2 --receipt ./CEN00012-v24.receipt"
    )]
    Import(ImportArgs),
    /// Apply receipts that confirm parcels arrived
    #[command(
        after_help = "Example:\n  parcel receipt apply ./CEN00012-v24-1f3a9c2e.receipt\n  parcel receipt apply /media/usb1      # every receipt on a medium that came back"
    )]
    Receipt {
        #[command(subcommand)]
        command: ReceiptCommand,
    },
    /// Send a package version from the store on to another site
    #[command(
        after_help = "Example:\n  parcel forward --package-id tools --version 7 --to SUD --out /media/dvd"
    )]
    Forward(ForwardArgs),
    /// List parcels, newest first
    #[command(after_help = "Example:\n  parcel list --outgoing")]
    List(ListArgs),
    /// Show one parcel's status and history
    #[command(after_help = "Example:\n  parcel show 3f2a9c01be7d")]
    Show(ShowArgs),
    /// Mark an outgoing parcel as handed to the courier
    #[command(
        after_help = "Example:\n  parcel sent 3f2a9c01be7d --via 'DHL Express' --tracking 1234567890"
    )]
    Sent(SentArgs),
    /// List the package versions in this site's store
    #[command(after_help = "Example:\n  parcel packages --json")]
    Packages(PackagesArgs),
    /// Run the whole courier walk-through between two throw-away sites
    #[command(after_help = "Example:\n  parcel demo --dir /tmp/parcel-demo")]
    Demo(DemoArgs),
}

impl Command {
    /// Whether the command was asked for JSON on stdout (`--json`).
    pub fn json(&self) -> bool {
        match self {
            Command::Site {
                command: SiteCommand::Show(a),
            } => a.json,
            Command::Key {
                command: KeyCommand::List(a),
            } => a.json,
            Command::Create(a) => a.json,
            Command::Verify(a) => a.json,
            Command::Import(a) => a.json,
            Command::Forward(a) => a.json,
            Command::List(a) => a.json,
            Command::Show(a) => a.json,
            Command::Packages(a) => a.json,
            Command::Receipt {
                command: ReceiptCommand::Apply(a),
            } => a.json,
            Command::Sent(a) => a.json,
            Command::Site { .. } | Command::Key { .. } | Command::Demo(_) => false,
        }
    }
}

/// `parcel site …`
#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// Create this site: home directory, key pair and catalog
    #[command(
        after_help = "Example:\n  parcel site init --code NOR --name 'North depot' --parent CEN"
    )]
    Init(SiteInitArgs),
    /// Show this site's code, name and key fingerprint
    #[command(after_help = "Example:\n  parcel site show --json")]
    Show(SiteShowArgs),
}

/// `parcel site init`
#[derive(Debug, Args)]
pub struct SiteInitArgs {
    /// This site's code: exactly 3 characters A-Z or 0-9
    #[arg(long, value_name = "CODE", value_parser = parse_site_code)]
    pub code: String,
    /// A name people recognise [default: the code]
    #[arg(long, value_name = "NAME", value_parser = parse_site_name)]
    pub name: Option<String>,
    /// The site this one receives its packages from
    #[arg(long, value_name = "CODE", value_parser = parse_site_code)]
    pub parent: Option<String>,
}

/// `parcel site show`
#[derive(Debug, Args)]
pub struct SiteShowArgs {
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `parcel key …`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write this site's public key file
    #[command(after_help = "Example:\n  parcel key export --out CEN.pub")]
    Export(KeyExportArgs),
    /// Trust another site's public key file
    #[command(
        after_help = "Example:\n  parcel key trust NOR.pub --fingerprint '12345 67890 12345 67890 12345 67890'\n\n\
                      Without --fingerprint, parcel asks for confirmation at a terminal and otherwise\n\
                      trusts the key and prints its fingerprint for the record; replacing the key of\n\
                      a site already trusted, trusting a revoked key again, or recording a new site\n\
                      name for a trusted key (the name line is not signed) needs the confirmation or\n\
                      --fingerprint. A key already trusted under another site code is refused."
    )]
    Trust(KeyTrustArgs),
    /// List the trusted sites, revoked ones included
    #[command(after_help = "Example:\n  parcel key list --json")]
    List(KeyListArgs),
    /// Revoke a site's key: parcels and receipts it signs are refused
    #[command(after_help = "Example:\n  parcel key revoke NOR")]
    Revoke(KeyRevokeArgs),
}

/// `parcel key export`
#[derive(Debug, Args)]
pub struct KeyExportArgs {
    /// Write to FILE instead of standard output
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `parcel key trust`
#[derive(Debug, Args)]
pub struct KeyTrustArgs {
    /// The site key file (from `parcel key export` at that site)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The fingerprint the site gave you by another channel; must match
    #[arg(long, value_name = "FP", value_parser = parse_fingerprint)]
    pub fingerprint: Option<String>,
}

/// `parcel key list`
#[derive(Debug, Args)]
pub struct KeyListArgs {
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `parcel key revoke`
#[derive(Debug, Args)]
pub struct KeyRevokeArgs {
    /// The site whose key to revoke
    #[arg(value_name = "CODE", value_parser = parse_site_code)]
    pub code: String,
}

/// `parcel create`
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The package directory to send (with --repair: the directory the
    /// parcel was made from, exactly as it was)
    #[arg(long, value_name = "DIR")]
    pub package: PathBuf,
    /// The package's identifier, the same at every site
    #[arg(long, value_name = "ID", required_unless_present = "repair")]
    pub package_id: Option<String>,
    /// The package version; a site refuses versions older than the one it holds
    #[arg(long, value_name = "N", required_unless_present = "repair", value_parser = parse_version)]
    pub version: Option<u64>,
    /// The destination site
    #[arg(long, value_name = "CODE", value_parser = parse_site_code, required_unless_present = "repair")]
    pub to: Option<String>,
    /// Answer a repair request (written by `parcel verify --repair-request`
    /// at the destination): rebuild the volumes it asks for from --package
    /// into the one --out directory, signed like the originals
    #[arg(long, value_name = "FILE", conflicts_with_all = ["package_id", "version", "to", "base", "parity", "encrypt", "comment", "level", "volume_size", "medium_size", "force_base", "no_verify", "no_space_check"])]
    pub repair: Option<PathBuf>,
    /// Where to write volumes; repeat for one directory per medium, used in turn
    #[arg(long, value_name = "DIR", required = true)]
    pub out: Vec<PathBuf>,
    /// Largest volume: cd (700 MB), dvd (4.7 GB), dvd-dl (8.5 GB), bd (25 GB),
    /// fat32 (4 GiB - 1), or bytes with a unit: K, M, G, T (powers of 1000) or
    /// KiB, MiB, GiB, TiB (powers of 1024), e.g. 4.7G, 700MiB
    #[arg(long, value_name = "SIZE", default_value = "dvd", value_parser = parse_volume_size)]
    pub volume_size: u64,
    /// Capacity of each --out medium, when it is less than the free space of
    /// its directory (e.g. directories to be burned to discs later); same units
    #[arg(long, value_name = "SIZE", value_parser = parse_volume_size)]
    pub medium_size: Option<u64>,
    /// zstd compression level
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub level: i32,
    /// A note for the receiving site (at most 4096 bytes)
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    /// Make a delta parcel: carry only the chunks that version N of the same
    /// package, which the destination holds, lacks. N must be confirmed by a
    /// receipt from the destination
    #[arg(long, value_name = "N", value_parser = parse_version)]
    pub base: Option<u64>,
    /// With --base: build on version N even without a receipt from the
    /// destination confirming it holds it
    #[arg(long, requires = "base")]
    pub force_base: bool,
    /// Encrypt the package's content and file table so that only the
    /// destination site can read them (its key file must carry an encryption
    /// key); any site that trusts this one can still check the media with
    /// `parcel verify --media`
    #[arg(long)]
    pub encrypt: bool,
    /// Add repair data: Reed-Solomon recovery blocks, PERCENT (1-100) of the
    /// data blocks of each stripe, in extra parity volumes. With N volumes, PERCENT of at
    /// least 100/N rebuilds any one lost volume; less still repairs damaged
    /// blocks up to that amount. Verify and import repair automatically
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(1..=100))]
    pub parity: Option<u8>,
    /// Do not read the volumes back and verify them after writing
    #[arg(long)]
    pub no_verify: bool,
    /// Do not check the free space of the --out directories first
    #[arg(long)]
    pub no_space_check: bool,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

/// `parcel verify`
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Volume files, or directories holding them
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Check the media only: every byte of every volume against the signed
    /// hashes (fast: proves the media hold what the signer wrote), without
    /// decompressing packs and checking each chunk and file hash
    #[arg(long)]
    pub media: bool,
    /// When volumes are missing or damaged beyond repair, write a signed
    /// request for them to FILE, for the sending site (`parcel create
    /// --repair`); unencrypted parcels only (for an encrypted one, ask the
    /// sender for a new parcel)
    #[arg(long, value_name = "FILE")]
    pub repair_request: Option<PathBuf>,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

/// `parcel import`
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Volume files, or directories holding them
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Write the signed receipt for the sending site to FILE
    #[arg(long, value_name = "FILE")]
    pub receipt: Option<PathBuf>,
    /// Accept the package although the store holds it from another origin
    /// site: give the new origin's code, after the old origin said it hands
    /// the package over (by default a package id keeps the site it first
    /// came from)
    #[arg(long, value_name = "CODE", value_parser = parse_site_code)]
    pub new_origin: Option<String>,
    /// Accept a package of another origin relayed by a site that is not
    /// this site's parent: give the relaying site's code, once it is known
    /// to forward to this site (by default a site with a parent takes
    /// packages of other sites only from it)
    #[arg(long, value_name = "CODE", value_parser = parse_site_code)]
    pub relayed_by: Option<String>,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

/// `parcel receipt …`
#[derive(Debug, Subcommand)]
pub enum ReceiptCommand {
    /// Check a receipt's signature and mark its parcel confirmed
    #[command(
        after_help = "Example:\n  parcel receipt apply ./CEN00012-v24-1f3a9c2e.receipt\n  parcel receipt apply /media/usb1      # every receipt on a medium that came back"
    )]
    Apply(ReceiptApplyArgs),
}

/// `parcel receipt apply`
#[derive(Debug, Args)]
pub struct ReceiptApplyArgs {
    /// The receipt files written by `parcel import` at the destination, or
    /// directories holding them (a medium that came back: every `*.receipt`
    /// file in it)
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Print JSON: what became of each receipt
    #[arg(long)]
    pub json: bool,
}

/// `parcel forward`
#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// The package to forward from the store
    #[arg(long, value_name = "ID")]
    pub package_id: String,
    /// The version to forward [default: the latest in the store]
    #[arg(long, value_name = "N", value_parser = parse_version)]
    pub version: Option<u64>,
    /// The destination site
    #[arg(long, value_name = "CODE", value_parser = parse_site_code)]
    pub to: String,
    /// Where to write volumes; repeat for one directory per medium, used in turn
    #[arg(long, value_name = "DIR", required = true)]
    pub out: Vec<PathBuf>,
    /// Largest volume: cd (700 MB), dvd (4.7 GB), dvd-dl (8.5 GB), bd (25 GB),
    /// fat32 (4 GiB - 1), or bytes with a unit: K, M, G, T (powers of 1000) or
    /// KiB, MiB, GiB, TiB (powers of 1024), e.g. 4.7G, 700MiB
    #[arg(long, value_name = "SIZE", default_value = "dvd", value_parser = parse_volume_size)]
    pub volume_size: u64,
    /// Capacity of each --out medium, when it is less than the free space of
    /// its directory (e.g. directories to be burned to discs later); same units
    #[arg(long, value_name = "SIZE", value_parser = parse_volume_size)]
    pub medium_size: Option<u64>,
    /// zstd compression level
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub level: i32,
    /// A note for the receiving site (at most 4096 bytes)
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    /// Encrypt the package's content and file table so that only the
    /// destination site can read them
    #[arg(long)]
    pub encrypt: bool,
    /// Send a package that arrived encrypted without encryption (forward
    /// refuses to without --encrypt or this)
    #[arg(long, conflicts_with = "encrypt")]
    pub clear: bool,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

/// `parcel list`
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only parcels that came from other sites
    #[arg(long, conflicts_with = "outgoing")]
    pub incoming: bool,
    /// Only parcels this site created or forwarded
    #[arg(long)]
    pub outgoing: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `parcel show`
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The parcel id, or a unique prefix of at least 6 hex digits
    #[arg(value_name = "PARCEL_ID", value_parser = parse_parcel_id)]
    pub parcel_id: String,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `parcel sent`
#[derive(Debug, Args)]
pub struct SentArgs {
    /// The parcel id, or a unique prefix of at least 6 hex digits
    #[arg(value_name = "PARCEL_ID", value_parser = parse_parcel_id)]
    pub parcel_id: String,
    /// The courier or carrier
    #[arg(long, value_name = "TEXT", value_parser = parse_nonempty)]
    pub via: String,
    /// The courier's tracking number
    #[arg(long, value_name = "TEXT")]
    pub tracking: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `parcel packages`
#[derive(Debug, Args)]
pub struct PackagesArgs {
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `parcel demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to put the two demo sites and their media [default: a temporary
    /// directory, removed afterwards]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// clap parser of a site code.
fn parse_site_code(text: &str) -> Result<String, String> {
    if is_site_code(text) {
        Ok(text.to_string())
    } else {
        Err("a site code is exactly 3 characters A-Z or 0-9, e.g. CEN".to_string())
    }
}

/// clap parser of a fingerprint as people read it: 30 digits, in groups
/// separated by spaces or dashes (a mistyped one is a usage error, not a key
/// that does not match).
fn parse_fingerprint(text: &str) -> Result<String, String> {
    let digits = text.bytes().filter(u8::is_ascii_digit).count();
    if digits == 30
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b' ' || b == b'-')
    {
        Ok(text.to_string())
    } else {
        Err("a fingerprint is 30 digits in six groups of five, as `parcel site show` prints it, e.g. '12345 67890 12345 67890 12345 67890'".to_string())
    }
}

/// clap parser of a parcel id or prefix: 6 to 32 hex digits.
fn parse_parcel_id(text: &str) -> Result<String, String> {
    if (6..=32).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err("a parcel id is 32 hex digits; a unique prefix of at least 6 will do (`parcel list` shows them)".to_string())
    }
}

/// clap parser of a package version: 0 to 2^63 - 1 (the catalog stores
/// versions as SQLite integers, which are signed 64-bit).
fn parse_version(text: &str) -> Result<u64, String> {
    text.parse::<u64>()
        .ok()
        .filter(|v| i64::try_from(*v).is_ok())
        .ok_or_else(|| format!("a version is a whole number from 0 to {}", i64::MAX))
}

/// clap parser of a text that must say something.
fn parse_nonempty(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("must not be empty".to_string())
    } else {
        Ok(text.to_string())
    }
}

/// clap parser of a site name.
fn parse_site_name(text: &str) -> Result<String, String> {
    if is_site_name(text) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "a site name is 1 to {} characters, without control characters or surrounding spaces",
            crate::site::MAX_NAME_CHARS
        ))
    }
}

/// clap parser of `--volume-size`: a preset or a byte count with an optional
/// unit, as `parcel_format::volume::parse_volume_size` reads them (FORMAT.md
/// §2); at least `parcel_format::limits::MIN_VOLUME_SIZE`.
pub fn parse_volume_size(text: &str) -> Result<u64, String> {
    let bytes = parcel_format::volume::parse_volume_size(text)?;
    let min = parcel_format::limits::MIN_VOLUME_SIZE;
    if bytes < min {
        return Err(format!("a volume must be at least {min} bytes (64KiB)"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_subcommand_help_has_an_example() {
        fn walk(command: &clap::Command, path: &str) {
            for sub in command.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                let after = sub
                    .get_after_help()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                assert!(
                    after.contains("Example:\n  parcel"),
                    "`{path} --help` lacks an example"
                );
                walk(sub, &path);
            }
        }
        walk(&Cli::command(), "parcel");
    }

    #[test]
    fn volume_sizes_by_name_and_unit() {
        assert_eq!(parse_volume_size("dvd"), Ok(4_700_000_000));
        assert_eq!(parse_volume_size("DVD"), parse_volume_size("dvd"));
        assert_eq!(parse_volume_size("64KiB"), Ok(65_536));
        assert_eq!(parse_volume_size("700M"), Ok(700_000_000));
        assert_eq!(parse_volume_size("4GiB"), Ok(4 << 30));
        assert!(parse_volume_size("1K").is_err());
        assert!(parse_volume_size("floppy").is_err());
        assert!(parse_volume_size("99999999999999999999G").is_err());
        assert!(parse_volume_size("").is_err());
    }

    #[test]
    fn create_takes_its_own_version_option() {
        let cli = Cli::try_parse_from([
            "parcel",
            "create",
            "--package",
            "p",
            "--package-id",
            "tools",
            "--version",
            "7",
            "--to",
            "NOR",
            "--out",
            "a",
            "--out",
            "b",
        ])
        .expect("parse");
        let Command::Create(args) = cli.command else {
            panic!("not create")
        };
        assert_eq!(args.version, Some(7));
        assert_eq!(args.out.len(), 2);
        assert_eq!(args.level, 3);
    }

    #[test]
    fn bad_site_code_is_a_usage_error() {
        let err = Cli::try_parse_from(["parcel", "site", "init", "--code", "cent"])
            .expect_err("must refuse");
        assert_eq!(err.exit_code(), 2);
    }
}
