//! `parcel verify`: checks every volume of a parcel completely, without importing it.

use crate::cli::VerifyArgs;
use crate::error::CliError;
use crate::home::Context;

/// `parcel verify`.
pub fn run(_ctx: &Context, _args: &VerifyArgs) -> Result<(), CliError> {
    Err(CliError::NotImplemented("verify"))
}
