//! `parcel forward`: sends a package from this site's store on to another
//! site (a child site) as a new parcel signed by this site, recording the
//! site where the package was first made.

use crate::cli::ForwardArgs;
use crate::create::{send, Outgoing};
use crate::error::CliError;
use crate::home::Context;
use crate::track::short_id;

/// Runs `parcel forward`.
pub fn run(ctx: &Context, args: &ForwardArgs) -> Result<(), CliError> {
    let catalog = ctx.home.open_catalog()?;
    let package = match args.version {
        Some(v) => catalog.package(&args.package_id, v)?,
        None => catalog.latest_package(&args.package_id)?,
    };
    let Some(package) = package else {
        let which = args
            .version
            .map_or("version".to_owned(), |v| format!("version {v}"));
        return Err(CliError::Usage(format!(
            "the store holds no {which} of package {}; `parcel packages` lists what it holds",
            args.package_id
        )));
    };
    // Forwarding goes away from the origin: back to where the package came
    // from is a loop (that site has it), never a delivery.
    for (site, role) in [
        (&package.origin_site, "made it"),
        (&package.source_site, "sent it here"),
    ] {
        if *site == args.to {
            return Err(CliError::Refused {
                subject: format!("{} v{}", package.package_id, package.version),
                reason: format!(
                    "site {} {role}, so it has it already; forward to a site that does not (a child site)",
                    args.to
                ),
            });
        }
    }
    // A package that came signed by a key revoked since it came (the key
    // its sender or its origin had then; revoked now, or revoked and
    // replaced) is not passed on under this site's signature: the
    // revocation says that key may have signed anything.
    for (site, role) in [
        (&package.source_site, "sent it here"),
        (&package.origin_site, "made it"),
    ] {
        if let Some(revoked) = catalog
            .last_revocation(site)?
            .filter(|&at| at >= package.imported_at)
        {
            return Err(CliError::Refused {
                subject: format!("{} v{}", package.package_id, package.version),
                reason: format!(
                    "site {site} {role}, and the key it had then was revoked here on {}: what it signed is not passed on. Get the package again as a new parcel signed with a key this site trusts",
                    crate::clock::format_utc(revoked)
                ),
            });
        }
    }
    // Confidentiality chosen at the origin is not dropped silently on the way.
    let arrived_in = catalog.parcel(&package.parcel_id)?;
    if arrived_in.encrypted && !args.encrypt && !args.clear {
        return Err(CliError::Usage(format!(
            "{} v{} arrived encrypted (parcel {} from {}); forward it with --encrypt so that only {} can read it, or with --clear to send it unencrypted",
            package.package_id,
            package.version,
            short_id(&arrived_in.parcel_id),
            arrived_in.source_site,
            args.to
        )));
    }
    drop(catalog);
    let dir = ctx
        .home
        .packages_dir()
        .join(&package.package_id)
        .join(package.version.to_string());
    if !dir.is_dir() {
        return Err(CliError::Failed {
            subject: format!("{} v{}", package.package_id, package.version),
            reason: format!(
                "its copy in the store ({}) is missing; import its parcel again to restore it, then forward it",
                dir.display()
            ),
        });
    }
    send(
        ctx,
        &Outgoing {
            package_dir: &dir,
            package_id: &package.package_id,
            version: package.version,
            to: &args.to,
            outs: &args.out,
            volume_size: args.volume_size,
            medium_size: args.medium_size,
            level: args.level,
            comment: args.comment.as_deref().unwrap_or(""),
            origin: Some(package.origin_site.clone()),
            verify: true,
            space_check: true,
            json: args.json,
            base: None,
            force_base: false,
            encrypt: args.encrypt,
            parity: None,
            expected_digest: Some(&package.tree_digest),
        },
    )
}
