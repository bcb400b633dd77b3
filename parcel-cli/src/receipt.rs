//! `parcel receipt apply`: checks a receipt from a destination site and marks its parcel confirmed.

use crate::cli::ReceiptApplyArgs;
use crate::error::CliError;
use crate::home::Context;

/// `parcel receipt apply`.
pub fn run(_ctx: &Context, _args: &ReceiptApplyArgs) -> Result<(), CliError> {
    Err(CliError::NotImplemented("receipt apply"))
}
