//! `parcel demo`: the whole courier walk-through between two throw-away sites.

use crate::cli::DemoArgs;
use crate::error::CliError;

/// `parcel demo`. Needs no site home: it makes its own.
pub fn run(_args: &DemoArgs) -> Result<(), CliError> {
    Err(CliError::NotImplemented("demo"))
}
