//! `rgrpc-interop-client --server_host H --server_port N --test_case NAME|all
//! [--use_tls=false] [--use_test_ca=false] [--server_host_override=NAME]`: runs interop
//! cases against a grpc.testing.TestService server. With `--use_tls=true` it dials TLS,
//! trusting the vendored test CA with `--use_test_ca=true` (else the platform's roots),
//! and checks the server's certificate against `--server_host_override` (also the
//! `:authority`) instead of `--server_host`, as grpc's interop clients do.
//! Prints `PASS <case>` / `FAIL <case>: <reason>` per case and last `N passed, M
//! failed`; exits 1 if a case failed, 2 on bad flags.

use std::process::ExitCode;
use std::time::Duration;

use rgrpc_interop::client::{self, Case, NOT_IMPLEMENTED, Settings};
use rgrpc_interop::flags::Flags;

const FLAGS: &[(&str, &str)] = &[
    ("server_host", "127.0.0.1"),
    ("server_port", ""),
    ("test_case", "all"),
    ("use_tls", "false"),
    ("use_test_ca", "false"),
    ("server_host_override", ""),
    ("rpc_timeout", "30"),
    ("connect_timeout", "10"),
    ("soak_iterations", "10"),
    ("soak_max_failures", "0"),
    ("soak_per_iteration_max_acceptable_latency_ms", "1000"),
    ("soak_overall_timeout_seconds", "0"),
];

#[tokio::main]
async fn main() -> ExitCode {
    let parsed = Flags::parse(std::env::args().skip(1), FLAGS).and_then(|f| settings(&f));
    let (settings, cases) = match parsed {
        Ok(parsed) => parsed,
        Err(reason) => {
            let names: Vec<&str> = Case::ALL.iter().map(|c| c.name()).collect();
            eprintln!(
                "rgrpc-interop-client: {reason}\nusage: rgrpc-interop-client --server_host H \
                 --server_port N --test_case CASE [--use_tls=false] [--use_test_ca=false] \
                 [--server_host_override=NAME]\ncases: all, {}",
                names.join(", ")
            );
            return ExitCode::from(2);
        }
    };
    if client::run_cases(&settings, &cases).await == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn settings(flags: &Flags) -> Result<(Settings, Vec<Case>), String> {
    if flags.string("server_port").is_empty() {
        return Err("--server_port is required".to_owned());
    }
    let target = Settings::target_of(flags.string("server_host"), flags.parsed("server_port")?);
    let mut settings = Settings::new(target);
    if flags.bool("use_tls")? {
        settings.tls = Some(Settings::tls_of(
            flags.bool("use_test_ca")?,
            flags.string("server_host_override"),
        )?);
    } else if flags.bool("use_test_ca")? {
        return Err("--use_test_ca=true needs --use_tls=true".to_owned());
    }
    let seconds = |name| flags.parsed::<f64>(name).and_then(|s| duration(s, name));
    settings.rpc_timeout = seconds("rpc_timeout")?;
    settings.connect_timeout = seconds("connect_timeout")?;
    settings.soak_iterations = flags.parsed("soak_iterations")?;
    settings.soak_max_failures = flags.parsed("soak_max_failures")?;
    settings.soak_max_latency =
        Duration::from_millis(flags.parsed("soak_per_iteration_max_acceptable_latency_ms")?);
    // As the grpcio peer: 0 means 10 s per iteration.
    settings.soak_overall_timeout = match flags.parsed::<u64>("soak_overall_timeout_seconds")? {
        0 => Duration::from_secs(10 * u64::from(settings.soak_iterations)),
        s => Duration::from_secs(s),
    };
    let name = flags.string("test_case");
    let cases = if name == "all" {
        Case::ALL.to_vec()
    } else if let Some(case) = Case::from_name(name) {
        vec![case]
    } else if let Some((_, why)) = NOT_IMPLEMENTED.iter().find(|(n, _)| *n == name) {
        return Err(format!("{name} is not implemented: {why}"));
    } else {
        return Err(format!("unknown --test_case {name:?}"));
    };
    Ok((settings, cases))
}

fn duration(seconds: f64, name: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("--{name}: {e}"))
}
