//! `parcel import`: verifies a parcel addressed to this site and switches its package into the store.

use crate::cli::ImportArgs;
use crate::error::CliError;
use crate::home::Context;

/// `parcel import`.
pub fn run(_ctx: &Context, _args: &ImportArgs) -> Result<(), CliError> {
    Err(CliError::NotImplemented("import"))
}
