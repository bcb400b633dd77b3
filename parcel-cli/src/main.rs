//! `parcel`, the courier sender: parses the command line, dispatches to one
//! function per command, and turns the result into an exit code.

mod catalog;
mod cli;
mod clock;
mod create;
mod demo;
mod disk;
mod error;
mod forward;
mod home;
mod import;
mod key;
mod media;
mod output;
mod progress;
mod receipt;
mod resend;
mod site;
mod track;
mod verify;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, KeyCommand, ReceiptCommand, SiteCommand};
use error::CliError;
use home::Context;

fn main() -> ExitCode {
    // Usage errors exit with 2 and --help/--version with 0, from clap itself.
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "parcel: error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

fn run(cli: &Cli) -> Result<(), CliError> {
    if let Command::Demo(args) = &cli.command {
        return demo::run(args);
    }
    let ctx = Context::resolve(cli.home.as_deref(), cli.quiet)?;
    match &cli.command {
        Command::Site { command } => match command {
            SiteCommand::Init(args) => site::init(&ctx, args),
            SiteCommand::Show(args) => site::show(&ctx, args),
        },
        Command::Key { command } => match command {
            KeyCommand::Export(args) => key::export(&ctx, args),
            KeyCommand::Trust(args) => key::trust(&ctx, args),
            KeyCommand::List(args) => key::list(&ctx, args),
            KeyCommand::Revoke(args) => key::revoke(&ctx, args),
        },
        Command::Create(args) => create::run(&ctx, args),
        Command::Verify(args) => verify::run(&ctx, args),
        Command::Import(args) => import::run(&ctx, args),
        Command::Receipt { command } => match command {
            ReceiptCommand::Apply(args) => receipt::run(&ctx, args),
        },
        Command::Forward(args) => forward::run(&ctx, args),
        Command::List(args) => track::list(&ctx, args),
        Command::Show(args) => track::show(&ctx, args),
        Command::Sent(args) => track::sent(&ctx, args),
        Command::Packages(args) => track::packages(&ctx, args),
        Command::Demo(args) => demo::run(args),
    }
}
