//! `parcel forward`: sends a package version from the store on to another site as a new parcel.

use crate::cli::ForwardArgs;
use crate::error::CliError;
use crate::home::Context;

/// `parcel forward`.
pub fn run(_ctx: &Context, _args: &ForwardArgs) -> Result<(), CliError> {
    Err(CliError::NotImplemented("forward"))
}
