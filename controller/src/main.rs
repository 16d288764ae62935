//! `cloudgate`: provisions cloud load balancers from Gateway API objects.
//!
//! - `cloudgate plan -f DIR`: translate + render manifests with no cluster and no cloud, and
//!   print the cloud resources and the status every object would get.
//! - `cloudgate controller`: the controller: watches Gateway API objects, provisions the cloud
//!   load balancers and writes status (see `controller.rs`).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod class_params;
mod config;
mod controller;
mod discovery;
mod errors;
mod features;
mod index;
mod leader;
mod manifests;
mod metrics;
mod ops_server;
mod plan_command;
mod policies;
mod providers;
mod queue;
mod reconcile;
mod status_writer;
mod watches;

#[cfg(test)]
mod fuzz_tests;

/// The controllerName cloudgate answers to unless told otherwise.
pub const DEFAULT_CONTROLLER_NAME: &str = "cloudgate.io/gateway-controller";

#[derive(Parser)]
#[command(name = "cloudgate", version, about = "Gateway API to managed cloud load balancers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the cloud resources and object status a set of manifests would produce.
    Plan(PlanArgs),
    /// Print which Gateway API features each provider implements (Markdown table).
    Features,
    /// Print cloudgate's own CRDs (class parameters and policies) as YAML, as committed in crds/.
    Crds,
    /// Run the controller: watch Gateway API objects, provision cloud load balancers, write status.
    Controller(Box<config::ControllerArgs>),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Output {
    Table,
    Yaml,
    Json,
}

#[derive(clap::Args)]
pub struct PlanArgs {
    /// Manifest files or directories (recursively), or `-` for stdin. Multi-document YAML is fine.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Which cloud to render for.
    #[arg(long, env = "CLOUDGATE_PROVIDER", default_value = "aws-alb", value_parser = clap::builder::PossibleValuesParser::new(providers::NAMES))]
    pub provider: String,
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: Output,
    /// GatewayClasses with this controllerName are ours.
    #[arg(long, env = "CLOUDGATE_CONTROLLER_NAME", default_value = DEFAULT_CONTROLLER_NAME)]
    pub controller_name: String,
    /// Cluster identity used in ownership tags and names.
    #[arg(long, env = "CLOUDGATE_CLUSTER_ID", default_value = "plan")]
    pub cluster_id: String,
    #[arg(long, env = "CLOUDGATE_REGION", default_value = "us-east-1")]
    pub region: String,
    /// AWS VPC id, or GCP network name.
    #[arg(long, env = "CLOUDGATE_NETWORK", default_value = "vpc-unset")]
    pub network: String,
    /// AWS subnet ids, or the GCP subnetwork (comma separated).
    #[arg(long, env = "CLOUDGATE_SUBNETS", value_delimiter = ',')]
    pub subnets: Vec<String>,
    /// ALB scheme (internet-facing|internal) or GCP flavour (global-external-managed,
    /// regional-external-managed, regional-internal-managed).
    #[arg(long, env = "CLOUDGATE_SCHEME", default_value = "")]
    pub scheme: String,
    #[arg(long, env = "CLOUDGATE_GCP_PROJECT", default_value = "project-unset")]
    pub project: String,
    /// Also print the cloud-neutral plan each Gateway translated to.
    #[arg(long)]
    pub show_plan: bool,
    /// Timestamp for condition lastTransitionTime (RFC 3339); now by default. For reproducible output.
    #[arg(long, hide = true)]
    pub now: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Plan(args) => match plan_command::run(&args, &mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Crds => {
            // Each file starts with its own `---`, so plain concatenation is a valid stream.
            for (_, yaml) in cloudgate_crds::crd_yamls() {
                print!("{yaml}");
            }
            ExitCode::SUCCESS
        }
        Command::Features => {
            print!("{}", features::matrix_markdown());
            ExitCode::SUCCESS
        }
        Command::Controller(args) => {
            if let Err(e) = args.validate() {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            controller::init_logging(args.log_format);
            // The AWS SDK's request pipeline nests deeply; in unoptimized builds its poll frames
            // overflowed tokio's default 2 MiB worker stack mid-apply (seen on the test ground).
            // 8 MiB is address space, not memory: pages are touched only as deep as a call goes.
            let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_stack_size(8 << 20).build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(controller::run(*args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "controller failed");
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
