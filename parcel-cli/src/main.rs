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
mod interrupt;
mod key;
mod media;
mod out_file;
mod output;
mod progress;
mod receipt;
mod receipt_file;
mod resend;
mod site;
mod swap;
mod track;
mod verify;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, KeyCommand, ReceiptCommand, SiteCommand};
use error::CliError;
use home::Context;

fn main() -> ExitCode {
    tune_allocator();
    // Usage errors exit with 2 and --help/--version with 0, from clap itself.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap takes an empty PARCEL_HOME (with no --home given) for an
            // empty --home, and names the option rather than the variable.
            let empty_variable = std::env::var_os("PARCEL_HOME").is_some_and(|v| v.is_empty());
            let about_home = err
                .get(clap::error::ContextKind::InvalidArg)
                .is_some_and(|arg| arg.to_string().starts_with("--home"));
            if empty_variable && about_home {
                let _ = writeln!(
                    std::io::stderr(),
                    "parcel: error: PARCEL_HOME is set but empty; set it to the site home directory, or unset it (`unset PARCEL_HOME`) to use the default home"
                );
                return ExitCode::from(error::EXIT_USAGE);
            }
            err.exit()
        }
    };
    interrupt::install();
    let mut here = None;
    match run(&cli, &mut here) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let message = err.to_string();
            let _ = writeln!(
                std::io::stderr(),
                "parcel: error: {}",
                output::printable_lines(&message)
            );
            // Messages built without the command's context name commands as
            // a bare `parcel`, which would run on another home than this one.
            if let Some(command) = here.filter(|_| names_bare_command(&message)) {
                output::note(
                    cli.quiet,
                    &format!("(run at this site, `parcel` in the command(s) above is `{command}`)"),
                );
            }
            // A script that asked for JSON gets JSON, also when the command
            // failed before printing its own (verify prints its report).
            if cli.command.json() && !output::json_printed() {
                let _ = output::print_json(&serde_json::json!({
                    "ok": false,
                    "error": err.to_string(),
                    "exit_code": err.exit_code(),
                }));
            }
            ExitCode::from(err.exit_code())
        }
    }
}

/// Runs the command; `here` gets the `parcel --home …` that commands for
/// this site's home need, when a bare `parcel` would use another home.
fn run(cli: &Cli, here: &mut Option<String>) -> Result<(), CliError> {
    if let Command::Demo(args) = &cli.command {
        return demo::run(args, cli.quiet);
    }
    let ctx = Context::resolve(cli.home.as_deref(), cli.quiet)?;
    *here = ctx.hint_home.is_some().then(|| ctx.parcel_command());
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
        Command::Demo(args) => demo::run(args, cli.quiet),
    }
}

/// Whether `message` names a command as a bare `` `parcel …` `` to run at
/// this site (one that came with `--home` already is not bare, and one
/// introduced by "there, run" or followed by "there" is for another site,
/// whose home is not ours).
fn names_bare_command(message: &str) -> bool {
    message.match_indices("`parcel ").any(|(at, found)| {
        let rest = message.get(at + found.len()..).unwrap_or_default();
        let after = rest.find('`').and_then(|end| rest.get(end + 1..));
        let for_another_site = message
            .get(..at)
            .is_some_and(|before| before.ends_with("there, run "))
            || after.is_some_and(|after| after.starts_with(" there"));
        !for_another_site && !rest.starts_with("--home")
    })
}

/// Sets glibc's malloc up for parcel's threads, which allocate buffers on one
/// thread and free them on another.
///
/// Packs (up to 16 MiB each, 4 MiB by default) are decoded on worker threads
/// and freed on another. glibc's malloc raises its mmap threshold each time
/// such a buffer is freed, after which they are carved from per-thread arenas
/// that keep the pages: `parcel verify` of 200,000 files peaked at 136 MB
/// resident against 82 MB allocated. With a fixed threshold of 1 MiB they
/// stay mmap'd and go back to the system when freed (97 MB resident).
///
/// A fixed threshold also fixes the trim threshold at its 128 KiB default:
/// each arena gave back its free top whenever chunks (16 to 256 KiB) freed
/// there left more than that, and faulted the pages in again for the next
/// ones. Keeping up to 4 MiB per arena took `parcel create` of the
/// benchmark's toolchain package from 107,000 page faults to 71,000 (53,000
/// with the writer's pool of raw packs kept whole too, and 2.7% less CPU),
/// peak memory within 6 MiB of what it was.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets tuning parameters of the allocator, before
    // any other thread exists; an unknown parameter is reported by its return
    // value, which is ignored (the default stays).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 4 << 20);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_commands_for_this_site_get_its_home_added() {
        assert!(names_bare_command(
            "run `parcel site init --code CODE` first"
        ));
        assert!(!names_bare_command("run `parcel --home /h list` first"));
        assert!(!names_bare_command(
            "send it to site CEN; there, run `parcel create --repair FILE`"
        ));
        assert!(!names_bare_command(
            "ask that site to send it again (`parcel import` there writes it again)"
        ));
        assert!(!names_bare_command("nothing to run"));
    }
}
