//! `handoff serve`: run the service until SIGTERM or Ctrl-C.

use super::{Ctx, exit};
use anyhow::{Context, Result};
use std::io::Write;
use std::net::SocketAddr;

pub fn serve(ctx: &Ctx, listen: Option<SocketAddr>) -> Result<u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let served = runtime.block_on(async {
        // Listened for before anything else: a SIGTERM while the service
        // starts stops it as cleanly as one after (the default action of
        // an unhandled SIGTERM would kill it).
        let shutdown = shutdown_signal()?;
        let addr = listen.unwrap_or(ctx.config.serve.listen);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr} (serve.listen or --listen)"))?;
        crate::serve::serve(
            &ctx.config,
            ctx.config.store_path.clone(),
            listener,
            shutdown,
            |bound| {
                // One line on stdout, for people and for scripts waiting on it.
                status_line(&format!("listening on http://{bound}"));
            },
        )
        .await
    });
    // A run still parked after the grace period must not hold the process:
    // its state is in the store and the next start resumes it.
    runtime.shutdown_background();
    served?;
    status_line("stopped");
    Ok(exit::OK)
}

/// A status line on stdout. Best effort: a supervisor that closed our
/// stdout must not turn a clean stop into a crash.
fn status_line(what: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "handoff serve: {what}");
    let _ = out.flush();
}

/// SIGTERM (what service managers send) or Ctrl-C (SIGINT), listened for
/// from this call on; the future resolves at the first of them. A second
/// one while the runs in flight finish stops the process at once (exit
/// 1): each run stopped so resumes at the next start, as after a crash.
#[cfg(unix)]
fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = interrupt.recv() => {},
        }
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = interrupt.recv() => {},
            }
            status_line("stopped at a second signal; the runs in flight resume at the next start");
            std::process::exit(i32::from(exit::ERROR));
        });
    })
}

/// Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
