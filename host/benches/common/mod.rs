//! What the benchmarks share: the process's CPU time and resident memory,
//! `handoff serve` running in the benchmark's own process, and a signed
//! webhook sent to it. (Included by each benchmark that uses it; not every
//! one uses every piece.)
#![allow(dead_code)]

use handoff::config::Config;
use handoff::serve::signature::sign_standard;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The CPU time this process has used so far, all threads (those that
/// ended too), user and system, the store's checkpointer included: on 2
/// cores, 1,000 runs/s leaves at most 2 ms of it per run. Read from
/// `/proc/self/stat` in the kernel's clock ticks (100 a second on Linux).
pub fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The fields after the command name, which is in parentheses and may
    // hold spaces: state is field 3, utime 14, stime 15.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks = |i: usize| fields[i - 3].parse::<u64>().unwrap();
    Duration::from_millis((ticks(14) + ticks(15)) * 10)
}

/// The process's resident memory, in MiB.
pub fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// `handoff serve` on 127.0.0.1 in this process, until [`Service::stop`].
pub struct Service {
    /// Where events are posted: `http://ADDR/v1/events`.
    pub events_url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
    runtime: tokio::runtime::Runtime,
}

impl Service {
    /// Serve `config` from a runtime of `threads` threads (0: tokio's
    /// default), once it is ready to take requests.
    pub fn start(config: Config, threads: usize) -> Service {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if threads > 0 {
            builder.worker_threads(threads);
        }
        let runtime = builder.enable_all().build().unwrap();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = runtime.spawn(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let store_path = config.store_path.clone();
            handoff::serve::serve(
                &config,
                store_path,
                listener,
                async {
                    let _ = stop_rx.await;
                },
                move |addr| ready_tx.send(addr).unwrap(),
            )
            .await
            .unwrap();
        });
        let addr = ready_rx.recv_timeout(Duration::from_secs(120)).unwrap();
        Service {
            events_url: format!("http://{addr}/v1/events"),
            stop,
            server,
            runtime,
        }
    }

    /// Stop it as SIGTERM does, and wait for it.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.runtime.block_on(self.server);
        self.runtime.shutdown_background();
    }
}

/// POST `body` to `url` as a Standard Webhooks sender signs it with `key`,
/// under message id `id`; the event must be accepted (202).
pub fn post_signed(agent: &ureq::Agent, url: &str, key: &[u8], id: &str, body: &[u8]) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let response = agent
        .post(url)
        .set("content-type", "application/cloudevents+json")
        .set("webhook-id", id)
        .set("webhook-timestamp", &now.to_string())
        .set("webhook-signature", &sign_standard(key, id, now, body))
        .send_bytes(body)
        .unwrap_or_else(|e| panic!("event {id}: {e}"));
    assert_eq!(response.status(), 202, "event {id}");
}
