//! Tracking from the catalog alone: `parcel list`, `show`, `sent` and
//! `packages`. Nothing here reads volumes or the package store.

use serde::Serialize;

use crate::catalog::{Direction, Event, ParcelRecord, Status};
use crate::cli::{ListArgs, PackagesArgs, SentArgs, ShowArgs};
use crate::clock::{self, format_utc};
use crate::create::{read_back, ReadBack};
use crate::error::CliError;
use crate::home::Context;
use crate::output::{self, printable};

/// A status as the JSON output spells it.
pub fn status_name(status: Status) -> &'static str {
    crate::catalog::status_str(status)
}

/// A direction as the JSON output spells it.
pub fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Outgoing => "outgoing",
        Direction::Incoming => "incoming",
    }
}

/// The first 12 hex digits of a parcel id: enough to tell parcels apart in a
/// table and to give to `parcel show`.
pub(crate) fn short_id(parcel_id: &str) -> String {
    printable(parcel_id).chars().take(12).collect()
}

/// Bytes in binary units (`1.50 GiB`).
fn size(bytes: u64) -> String {
    crate::disk::human_bytes(bytes)
}

/// `parcel list`: parcels, newest first.
pub fn list(ctx: &Context, args: &ListArgs) -> Result<(), CliError> {
    let catalog = ctx.home.open_catalog()?;
    let direction = if args.incoming {
        Some(Direction::Incoming)
    } else if args.outgoing {
        Some(Direction::Outgoing)
    } else {
        None
    };
    let parcels = catalog.parcels(direction)?;
    if args.json {
        return output::print_json(&parcels);
    }
    if parcels.is_empty() {
        output::print("No parcels.\n")?;
        ctx.note(&format!(
            "Create one with `{0} create`, or import one with `{0} import`.",
            ctx.parcel_command()
        ));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = parcels
        .iter()
        .map(|p| {
            vec![
                short_id(&p.parcel_id),
                direction_name(p.direction).to_string(),
                status_name(p.status).to_string(),
                printable(&p.package_id).into_owned(),
                p.package_version.to_string(),
                printable(&p.source_site).into_owned(),
                printable(&p.destination_site).into_owned(),
                format_utc(p.created),
                size(p.bytes),
            ]
        })
        .collect();
    output::print(&output::table(
        &[
            "PARCEL",
            "DIRECTION",
            "STATUS",
            "PACKAGE",
            "VERSION",
            "FROM",
            "TO",
            "CREATED",
            "SIZE",
        ],
        &rows,
    ))
}

/// `show --json`: the record's fields (its `status` at the top level) and the history.
#[derive(Serialize)]
struct ParcelView<'a> {
    #[serde(flatten)]
    parcel: &'a ParcelRecord,
    history: &'a [Event],
}

/// `parcel show`: one parcel's record and timestamped history.
pub fn show(ctx: &Context, args: &ShowArgs) -> Result<(), CliError> {
    let catalog = ctx.home.open_catalog()?;
    let parcel = catalog.parcel(&args.parcel_id)?;
    let history = catalog.history(&parcel.parcel_id)?;
    if args.json {
        return output::print_json(&ParcelView {
            parcel: &parcel,
            history: &history,
        });
    }
    output::print(&render_parcel(&parcel, &history))
}

fn render_parcel(p: &ParcelRecord, history: &[Event]) -> String {
    let mut text = String::new();
    let mut field = |label: &str, value: &str| {
        text.push_str(&format!("{label:<12} {value}\n"));
    };
    field("Parcel", &printable(&p.parcel_id));
    field(
        "Status",
        &format!(
            "{} ({})",
            status_name(p.status),
            direction_name(p.direction)
        ),
    );
    field(
        "Package",
        &format!("{} version {}", printable(&p.package_id), p.package_version),
    );
    let from = if p.origin_site == p.source_site {
        printable(&p.source_site).into_owned()
    } else {
        format!(
            "{} (forwarding from origin {})",
            printable(&p.source_site),
            printable(&p.origin_site)
        )
    };
    field("From", &from);
    field("To", &printable(&p.destination_site));
    field("Created", &format_utc(p.created));
    field(
        "Size",
        &format!(
            "{} in {} volume{}",
            size(p.bytes),
            p.volume_count,
            if p.volume_count == 1 { "" } else { "s" }
        ),
    );
    field("Tree digest", &printable(&p.tree_digest));
    if p.encrypted {
        field(
            "Encrypted",
            &format!(
                "content and file table, to {}",
                printable(&p.destination_site)
            ),
        );
    }
    if !p.comment.is_empty() {
        field("Comment", &printable(&p.comment));
    }
    for (i, volume) in p.volumes.iter().enumerate() {
        field(if i == 0 { "Volumes" } else { "" }, &printable(volume));
    }
    text.push_str("\nHistory\n");
    for event in history {
        text.push_str(&format!(
            "  {}  {:<9}  {}\n",
            format_utc(event.at),
            status_name(event.status),
            printable(&event.detail)
        ));
    }
    text
}

/// `parcel sent`: marks an outgoing parcel as handed to the courier.
pub fn sent(ctx: &Context, args: &SentArgs) -> Result<(), CliError> {
    let mut catalog = ctx.home.open_catalog()?;
    let parcel = catalog.parcel(&args.parcel_id)?;
    if parcel.direction != Direction::Outgoing {
        return Err(CliError::NotOutgoing {
            parcel: parcel.parcel_id,
            source_site: parcel.source_site,
        });
    }
    if parcel.status != Status::Created {
        let already = match parcel.status {
            Status::Sent => "already marked sent",
            _ => "already confirmed by its receipt",
        };
        return Err(CliError::Refused {
            subject: format!("parcel {}", parcel.parcel_id),
            reason: format!(
                "it is {already}; `{} show {}` has its history",
                ctx.parcel_command(),
                short_id(&parcel.parcel_id)
            ),
        });
    }
    if ctx.home.is_being_read_back(&parcel.parcel_id)? {
        return Err(CliError::Refused {
            subject: format!("parcel {}", parcel.parcel_id),
            reason: "the `create` that made it is still reading its volumes back from the media, and withdraws the parcel if they are damaged; mark it sent once that create has finished".into(),
        });
    }
    match read_back(&catalog.history(&parcel.parcel_id)?) {
        ReadBack::Failed => {
            return Err(CliError::Refused {
                subject: format!("parcel {}", parcel.parcel_id),
                reason: format!(
                    "its volumes did not read back intact when it was made and could not be removed (`{} show {}` names them); delete them and create the parcel again",
                    ctx.parcel_command(),
                    short_id(&parcel.parcel_id)
                ),
            })
        }
        ReadBack::Unchecked => output::warn(&format!(
            "parcel {} was never read back from its media (made with --no-verify, or the read-back was interrupted); run `{} verify` on its media before they leave, if that is not done yet",
            short_id(&parcel.parcel_id),
            ctx.parcel_command()
        )),
        ReadBack::Verified => {}
    }
    if catalog
        .trusted_site(&parcel.destination_site)?
        .is_some_and(|t| t.revoked_at.is_some())
    {
        output::warn(&format!(
            "the key of site {} (this parcel's destination) is revoked here: its receipt will not be accepted until its new key is trusted. If the site itself is in doubt, keep the parcel back",
            parcel.destination_site
        ));
    }
    let detail = match &args.tracking {
        Some(tracking) => format!("via {}, tracking {}", args.via, tracking),
        None => format!("via {}", args.via),
    };
    catalog.advance(&parcel.parcel_id, Status::Sent, clock::now(), &detail)?;
    if args.json {
        output::print_json(&serde_json::json!({
            "ok": true,
            "parcel_id": parcel.parcel_id,
            "status": Status::Sent.to_string(),
            "package_id": parcel.package_id,
            "version": parcel.package_version,
            "destination_site": parcel.destination_site,
            "via": args.via,
            "tracking": args.tracking,
        }))?;
        return Ok(());
    }
    output::print(&format!(
        "Parcel {} ({} version {} to {}) marked sent {}\n",
        short_id(&parcel.parcel_id),
        printable(&parcel.package_id),
        parcel.package_version,
        parcel.destination_site,
        printable(&detail)
    ))?;
    ctx.note(&format!(
        "It becomes confirmed when {}'s receipt is applied with `{} receipt apply FILE`.",
        parcel.destination_site,
        ctx.parcel_command()
    ));
    Ok(())
}

/// `parcel packages`: the package versions in this site's store.
pub fn packages(ctx: &Context, args: &PackagesArgs) -> Result<(), CliError> {
    let catalog = ctx.home.open_catalog()?;
    let packages = catalog.packages()?;
    // The catalog lists what was imported; a copy moved or deleted since is
    // named, with how to get it back.
    for p in packages
        .iter()
        .filter(|p| crate::import::store_copy_missing(&ctx.home, p))
    {
        output::warn(&format!(
            "the store copy of {} v{} ({}) is missing: import parcel {} again to restore it",
            p.package_id,
            p.version,
            crate::import::store_dir(&ctx.home, &p.package_id, p.version).display(),
            p.parcel_id
        ));
    }
    if args.json {
        return output::print_json(&packages);
    }
    if packages.is_empty() {
        output::print("No packages in the store.\n")?;
        ctx.note(&format!(
            "Packages arrive with `{} import`.",
            ctx.parcel_command()
        ));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = packages
        .iter()
        .map(|p| {
            vec![
                printable(&p.package_id).into_owned(),
                p.version.to_string(),
                p.files.to_string(),
                size(p.bytes),
                printable(&p.origin_site).into_owned(),
                printable(&p.source_site).into_owned(),
                format_utc(p.imported_at),
                short_id(&p.parcel_id),
            ]
        })
        .collect();
    output::print(&output::table(
        &[
            "PACKAGE", "VERSION", "FILES", "SIZE", "ORIGIN", "VIA", "IMPORTED", "PARCEL",
        ],
        &rows,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EXIT_POLICY;
    use crate::home::Home;

    fn record(parcel_id: &str, direction: Direction) -> ParcelRecord {
        ParcelRecord {
            parcel_id: parcel_id.into(),
            direction,
            status: match direction {
                Direction::Outgoing => Status::Created,
                Direction::Incoming => Status::Received,
            },
            source_site: "CEN".into(),
            origin_site: "CEN".into(),
            destination_site: "NOR".into(),
            package_id: "tools".into(),
            package_version: 7,
            created: 1_700_000_000,
            comment: String::new(),
            bytes: 2048,
            volume_count: 1,
            volumes: vec!["/media/dvd/tools.p001".into()],
            tree_digest: "ab".repeat(32),
            encrypted: false,
        }
    }

    fn sent_args(parcel_id: &str) -> SentArgs {
        SentArgs {
            parcel_id: parcel_id.into(),
            via: "DHL".into(),
            tracking: Some("JD0001".into()),
            json: false,
        }
    }

    #[test]
    fn sent_moves_an_outgoing_parcel_forward_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = Context {
            home: Home::resolve(Some(dir.path())).expect("home"),
            quiet: true,
            hint_home: None,
        };
        let outgoing = format!("{:032x}", 1);
        let incoming = format!("{:032x}", 2);
        {
            let mut catalog = ctx.home.create_catalog().expect("catalog");
            let out = record(&outgoing, Direction::Outgoing);
            catalog.add_parcel(&out, 1, "created").expect("add");
            catalog
                .add_parcel(&record(&incoming, Direction::Incoming), 1, "received")
                .expect("add");
            catalog
                .advance(&outgoing, Status::Confirmed, 2, "receipt")
                .expect("confirm");
        }
        let backward = sent(&ctx, &sent_args(&outgoing)).expect_err("backward");
        assert_eq!(backward.exit_code(), EXIT_POLICY, "{backward}");
        let wrong_way = sent(&ctx, &sent_args(&incoming)).expect_err("incoming");
        assert_eq!(wrong_way.exit_code(), EXIT_POLICY, "{wrong_way}");
        assert!(wrong_way.to_string().contains("incoming"), "{wrong_way}");

        let fresh = format!("abcdef{:026x}", 3);
        let mut catalog = ctx.home.open_catalog().expect("catalog");
        catalog
            .add_parcel(&record(&fresh, Direction::Outgoing), 3, "created")
            .expect("add");
        sent(&ctx, &sent_args(&fresh[..8])).expect("sent");
        let history = catalog.history(&fresh).expect("history");
        assert_eq!(history.last().map(|e| e.status), Some(Status::Sent));
        assert_eq!(
            history.last().map(|e| e.detail.as_str()),
            Some("via DHL, tracking JD0001")
        );

        // Volumes that failed their read-back and could not be removed.
        let damaged = format!("{:032x}", 4);
        catalog
            .add_parcel(&record(&damaged, Direction::Outgoing), 4, "written")
            .expect("add");
        catalog
            .note(&damaged, 5, crate::create::NOT_TO_SHIP)
            .expect("note");
        let refused = sent(&ctx, &sent_args(&damaged)).expect_err("not to ship");
        assert_eq!(refused.exit_code(), EXIT_POLICY, "{refused}");
        assert!(refused.to_string().contains("did not read back intact"));
        assert_eq!(
            catalog.parcel(&damaged).expect("parcel").status,
            Status::Created
        );
    }

    #[test]
    fn shown_parcel_escapes_text_from_other_sites() {
        let mut parcel = record("0123456789abcdef0123456789abcdef", Direction::Incoming);
        parcel.comment = "hi\u{1b}[2J".into();
        let history = [Event {
            at: 1_700_000_100,
            status: Status::Received,
            detail: "from /media/dvd".into(),
        }];
        let text = render_parcel(&parcel, &history);
        assert!(text.contains("Status       received (incoming)"), "{text}");
        assert!(text.contains("hi\\u{1b}[2J"), "{text}");
        assert!(text.contains("2023-11-14 22:15:00 UTC  received   from /media/dvd"));
    }
}
