//! `contactd-bench`: the whole benchmark in one command (see BENCHMARKS.md).

use std::process::ExitCode;

use clap::Parser;
use contactd_bench::{Options, run_all};

#[tokio::main]
async fn main() -> ExitCode {
    match run_all(Options::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("contactd-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}
