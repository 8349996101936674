//! `consul-double`: runs the Consul agent double as a standalone server, for autopilot's
//! Docker-free demo. Logs every request (never a token) to stderr.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use consul_double::{AsyncConsulDouble, Config};

/// A stand-in for a Consul agent's HTTP API v1 (services, TTL checks, health queries).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8500")]
    listen: SocketAddr,
    /// Turn ACLs on (default deny) with this as the one accepted token.
    #[arg(long)]
    token: Option<String>,
    /// The agent's datacenter.
    #[arg(long, default_value = "dc1")]
    datacenter: String,
    /// The agent's node name.
    #[arg(long, default_value = "consul-double")]
    node_name: String,
    /// How often critical services are reaped, in milliseconds (Consul: 30000).
    #[arg(long, default_value_t = 100)]
    reap_interval_ms: u64,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    let args = Args::parse();
    let config = Config {
        listen: args.listen,
        acl_token: args.token,
        datacenter: args.datacenter,
        node_name: args.node_name,
        reap_interval: Duration::from_millis(args.reap_interval_ms),
        ..Config::default()
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("consul-double: cannot start a runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match AsyncConsulDouble::start(config).await {
            Ok(_double) => std::future::pending::<std::process::ExitCode>().await,
            Err(error) => {
                eprintln!("consul-double: {error}");
                std::process::ExitCode::FAILURE
            }
        }
    })
}
