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
        /// Queues and agents.
        #[arg(long, default_value = "sip-profiles/contact-centre.yaml")]
        contact_centre: PathBuf,
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
        /// Queues and agents.
        #[arg(long, default_value = "sip-profiles/contact-centre.yaml")]
        contact_centre: PathBuf,
    },
    /// IVR flows.
    Flow {
        #[command(subcommand)]
        command: FlowCommand,
    },
    /// The ACD (queues and agents).
    Acd {
        #[command(subcommand)]
        command: AcdCommand,
    },
    /// Speech recognition.
    Speech {
        #[command(subcommand)]
        command: SpeechCommand,
    },
}

#[derive(Subcommand)]
enum SpeechCommand {
    /// Accuracy and speed of the embedded recognizer on a corpus made by
    /// `tools/bench_asr.sh` (menu.tsv, manifest.tsv, tel/ and wide/ recordings).
    Bench {
        #[arg(long)]
        corpus: PathBuf,
        /// The 16 kHz recordings (browser audio) instead of the telephone ones.
        #[arg(long)]
        wideband: bool,
    },
}

#[derive(Subcommand)]
enum FlowCommand {
    /// Run a flow without a phone on simulated time and print what the caller would hear:
    /// `flow simulate FILE [--caller NUM] [--input dtmf:12#] [--input speech:"technical
    /// support"] [--http-fixture FILE.json] [--time 2026-11-23T09:00]`.
    Simulate {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum AcdCommand {
    /// Benchmarks: routing decisions with many agents and waiting callers, and the wait
    /// estimate's error beside Asterisk's moving average at 70/85/95% occupancy.
    Bench {
        #[arg(long, default_value_t = 1000)]
        agents: usize,
        #[arg(long, default_value_t = 10000)]
        callers: usize,
        #[arg(long, default_value_t = 50)]
        queues: usize,
        /// Timed agent cycles (call ends → next offer).
        #[arg(long, default_value_t = 20000)]
        cycles: u64,
        /// Simulated calls per wait-estimate row.
        #[arg(long, default_value_t = 20000)]
        calls: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Run the ACD on simulated time with a synthetic load and print service level, speed of
    /// answer, abandons, occupancy and the wait estimate's error, beside Erlang C.
    Simulate {
        /// Agents on the queue.
        #[arg(long, default_value_t = 10)]
        agents: usize,
        /// Arriving calls per hour.
        #[arg(long, default_value_t = 170.0)]
        calls_per_hour: f64,
        /// Mean handle time, seconds.
        #[arg(long, default_value_t = 180.0)]
        aht: f64,
        /// Handle-time distribution: exponential, or lognormal:CV (e.g. lognormal:0.3).
        #[arg(long, default_value = "exponential")]
        handle: String,
        /// Mean patience in seconds (exponential); callers abandon after it. None: never.
        #[arg(long)]
        patience: Option<f64>,
        /// Service-level target in seconds.
        #[arg(long, default_value_t = 20.0)]
        target: f64,
        /// Calls to simulate.
        #[arg(long, default_value_t = 20000)]
        calls: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            profile,
            flows,
            contact_centre,
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
                contact_centre,
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
        Command::Flow {
            command: FlowCommand::Simulate { args },
        } => flow_simulate(&args),
        Command::Acd {
            command:
                AcdCommand::Simulate {
                    agents,
                    calls_per_hour,
                    aht,
                    handle,
                    patience,
                    target,
                    calls,
                    seed,
                },
        } => acd_simulate(
            agents,
            calls_per_hour,
            aht,
            &handle,
            patience,
            target,
            calls,
            seed,
        ),
        Command::Acd {
            command:
                AcdCommand::Bench {
                    agents,
                    callers,
                    queues,
                    cycles,
                    calls,
                    seed,
                },
        } => {
            let r = switchboard::acd::bench::routing(agents, callers, queues, cycles, seed);
            print!("{r}");
            let rows = switchboard::acd::bench::ewt_table(calls, seed);
            print!("{}", switchboard::acd::bench::format_ewt(&rows));
            ExitCode::SUCCESS
        }
        Command::Speech {
            command: SpeechCommand::Bench { corpus, wideband },
        } => {
            let opts = switchboard::speech::bench::BenchOptions {
                wideband,
                ..switchboard::speech::bench::BenchOptions::new(corpus)
            };
            match switchboard::speech::bench::run(&opts) {
                Ok(report) => {
                    print!("{report}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("switchboard speech bench: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check {
            profile,
            flows,
            contact_centre,
        } => match check(&profile, &flows, &contact_centre) {
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
fn check(
    profile: &std::path::Path,
    flows: &std::path::Path,
    contact_centre: &std::path::Path,
) -> Result<usize> {
    let mut lines: Vec<String> = vec![];
    let profile = match switchboard::config::load_profile(profile) {
        Ok(p) => Some(p),
        Err(e) => {
            lines.extend(e.iter().map(|e| e.to_string()));
            None
        }
    };
    let acd = match switchboard::setup::load_contact_centre(contact_centre) {
        Ok(a) => Some(a),
        Err(e) => {
            lines.extend(e);
            None
        }
    };
    let (_, flow_errors) = switchboard::setup::load_flows(flows, profile.as_ref(), acd.as_ref());
    lines.extend(flow_errors.iter().map(|e| e.to_string()));
    for l in &lines {
        println!("{l}");
    }
    Ok(lines.len())
}

fn flow_simulate(args: &[String]) -> ExitCode {
    let parsed = match switchboard::ivr::parse_simulate_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("switchboard flow simulate: {e}");
            return ExitCode::from(2);
        }
    };
    let profile =
        switchboard::config::load_profile(std::path::Path::new("sip-profiles/default.yaml")).ok();
    let acd = switchboard::setup::load_contact_centre(std::path::Path::new(
        "sip-profiles/contact-centre.yaml",
    ))
    .ok();
    let flows_dir = parsed
        .file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    match switchboard::ivr::simulate_file(
        &parsed,
        &switchboard::setup::flow_known(flows_dir, profile.as_ref(), acd.as_ref()),
    ) {
        Ok(transcript) => {
            print!("{transcript}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn acd_simulate(
    agents: usize,
    calls_per_hour: f64,
    aht: f64,
    handle: &str,
    patience: Option<f64>,
    target: f64,
    calls: u64,
    seed: u64,
) -> ExitCode {
    use std::time::Duration;
    use switchboard::acd::{erlang_c, simulate, Dist, SimParams};
    let lambda = calls_per_hour / 3600.0;
    let mean = Duration::from_secs_f64(aht);
    let mut p = SimParams::erlang_c(std::time::Instant::now(), seed, agents, lambda, mean, calls);
    p.talk = match handle.split_once(':') {
        Some(("lognormal", cv)) => match cv.parse::<f64>() {
            Ok(cv) if cv > 0.0 => Dist::LogNormal { mean, cv },
            _ => {
                eprintln!("switchboard acd simulate: --handle lognormal:CV needs a positive CV");
                return ExitCode::from(2);
            }
        },
        None if handle == "exponential" => Dist::Exponential { mean },
        _ => {
            eprintln!("switchboard acd simulate: --handle is exponential or lognormal:CV");
            return ExitCode::from(2);
        }
    };
    p.patience = patience.map(|s| Dist::Exponential {
        mean: Duration::from_secs_f64(s),
    });
    if let Some(q) = p.config.queues.first_mut() {
        q.service_level = switchboard::acd::ServiceLevelTarget {
            fraction: 0.8,
            within: Duration::from_secs_f64(target),
        };
    }
    let r = simulate(p);
    let t = &r.total;
    let (pw, sl, asa) = erlang_c(lambda, aht, agents as u32, target);
    println!("load: {calls_per_hour} calls/h, AHT {aht} s ({handle}), {agents} agents, {:.1} erlangs, {} calls", lambda * aht, r.calls);
    println!("                     simulated   Erlang C");
    println!(
        "service level {target:>4}s      {:>6.1}%     {:>6.1}%",
        100.0 * t.service_level,
        100.0 * sl
    );
    println!("ASA                  {:>6.1} s    {:>6.1} s", t.asa, asa);
    println!(
        "P(wait)              {:>6.1}%     {:>6.1}%",
        100.0 * t.p_wait,
        100.0 * pw
    );
    println!("abandon rate         {:>6.1}%", 100.0 * t.abandon_rate);
    println!("occupancy            {:>6.1}%", 100.0 * r.occupancy);
    println!("EWT mean abs. error  {:>6.1} s ({:.0}% of the mean wait); Asterisk's moving average: {:.1} s ({:.0}%)", t.ewt_mae, 100.0 * t.ewt_mae_relative, t.ema_mae, 100.0 * t.ema_mae_relative);
    if patience.is_some() {
        println!("(Erlang C assumes nobody abandons: with patience it is pessimistic.)");
    }
    ExitCode::SUCCESS
}
