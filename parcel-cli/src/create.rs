//! `parcel create`: packs a package directory into a signed, multi-volume parcel for another site.

use crate::cli::CreateArgs;
use crate::error::CliError;
use crate::home::Context;

/// `parcel create`.
pub fn run(_ctx: &Context, _args: &CreateArgs) -> Result<(), CliError> {
    Err(CliError::NotImplemented("create"))
}
