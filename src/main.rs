//! The `switchboard` command: run, check.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "A softswitch with a contact centre inside"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the switch.
    Run {
        /// SIP profile.
        #[arg(long, default_value = "sip-profiles/default.yaml")]
        profile: PathBuf,
        /// Directory of IVR flows.
        #[arg(long, default_value = "ivr-flows")]
        flows: PathBuf,
        /// Data directory (SQLite, recordings).
        #[arg(long, default_value = "var")]
        data: PathBuf,
        /// Address and port for the profile's UDP and TCP listeners.
        #[arg(long)]
        sip: Option<SocketAddr>,
        /// Address and port of the HTTP API.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
    },
    /// Validate configuration; prints every error as file:line:col: message.
    Check {
        #[arg(long, default_value = "sip-profiles/default.yaml")]
        profile: PathBuf,
        #[arg(long, default_value = "ivr-flows")]
        flows: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            profile,
            flows,
            data,
            sip,
            http,
        } => {
            switchboard::telemetry::init();
            let profile = match switchboard::config::load_profile(&profile) {
                Ok(p) => p,
                Err(errors) => {
                    for e in errors {
                        eprintln!("{e}");
                    }
                    return ExitCode::from(2);
                }
            };
            let opts = switchboard::runtime::RunOptions {
                profile: Arc::new(profile),
                flows,
                data,
                sip,
                http,
            };
            match switchboard::runtime::run(opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("switchboard: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check { profile, flows } => match check(&profile, &flows) {
            Ok(0) => {
                println!("{}: ok", profile.display());
                ExitCode::SUCCESS
            }
            Ok(_) => ExitCode::from(1),
            Err(e) => {
                eprintln!("switchboard: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

/// Prints every configuration error; returns how many there were.
fn check(profile: &std::path::Path, flows: &std::path::Path) -> Result<usize> {
    let mut errors = match switchboard::config::load_profile(profile) {
        Ok(_) => vec![],
        Err(e) => e,
    };
    errors.extend(switchboard::config::check_yaml_dir(flows));
    for e in &errors {
        println!("{e}");
    }
    Ok(errors.len())
}
