//! The `[serve]` section of `handoff.toml`: where `handoff serve` listens,
//! how much it takes at once, and who may send it events.
//!
//! ```toml
//! [serve]
//! listen = "127.0.0.1:8480"
//! context = "context.json"          # the workflow context every run gets
//! max-in-flight = 256               # runs driven at once (`workers`, its older name)
//! threads = 0                       # threads driving them; 0: three per core
//! max-queued = 1000                 # accepted runs waiting; beyond, 429
//! max-body-bytes = 262144
//! shutdown-grace-seconds = 30       # for runs in flight when stopping; every period: at most a day
//! reconcile-seconds = 300           # poll every policy's source; 0: never
//! anchor-log-seconds = 3600         # log the audit head as an anchor; 0: only at start and stop
//!
//! [serve.sources."governance/release-reviews"]   # the CloudEvent `source`
//! signature = "standard-webhooks"   # or "github"
//! secrets = [{ env = "GOVERNANCE_WEBHOOK_SECRET" }]   # several while rotating
//! tolerance-seconds = 300
//! ```
//!
//! Events can also come from NATS JetStream, through a durable consumer
//! (the stream is the operator's; the consumer is created if missing):
//!
//! ```toml
//! [serve.nats]
//! server = "127.0.0.1:4222"
//! stream = "DECISIONS"
//! subject = "decisions.>"           # the consumer's filter
//! durable = "handoff"
//! ack-wait-seconds = 30             # unacknowledged for this long: redelivered
//! ```
//!
//! A source with no secret is a configuration error: handoff never accepts
//! an unsigned event.

use super::SecretSource;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// How a source signs its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    StandardWebhooks,
    #[serde(rename = "github")]
    GitHub,
}

/// One configured event source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConfig {
    pub scheme: Scheme,
    pub secrets: Vec<SecretSource>,
    pub tolerance_secs: i64,
}

/// `[serve.nats]`: a durable JetStream consumer as a second door.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NatsIntake {
    pub server: String,
    pub stream: String,
    pub subject: String,
    #[serde(default = "default_durable")]
    pub durable: String,
    #[serde(default = "default_ack_wait")]
    pub ack_wait_seconds: u64,
}

fn default_durable() -> String {
    "handoff".into()
}

fn default_ack_wait() -> u64 {
    30
}

/// `[serve]`, with defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub context: Option<PathBuf>,
    /// Runs driven at once, each an async task (`max-in-flight`).
    pub max_in_flight: usize,
    /// The threads that drive them (`threads`); 0: three per core.
    pub threads: usize,
    pub max_queued: usize,
    pub max_body_bytes: usize,
    /// A request's body must arrive within this (`body-read-timeout-seconds`).
    pub body_read_timeout_secs: u64,
    /// A connection must send a request's headers within this of going
    /// quiet (`header-read-timeout-seconds`); also how long it may idle.
    pub header_read_timeout_secs: u64,
    /// Connections open at once (`max-connections`); more wait to be taken.
    pub max_connections: usize,
    pub shutdown_grace_secs: u64,
    /// Between reconciliation passes; 0 turns polling off.
    pub reconcile_secs: u64,
    /// Between log lines carrying the audit head as an anchor (for logs
    /// shipped elsewhere to keep); 0: only at start and stop.
    pub anchor_log_secs: u64,
    /// Between passes that send the follow-up notices whose time has come;
    /// 0 turns delivery off.
    pub deliver_secs: u64,
    /// Where people reach this service (`https://handoff.example.internal`):
    /// notices link to a packet there.
    pub public_url: Option<String>,
    pub nats: Option<NatsIntake>,
    /// Keyed by the CloudEvent `source` attribute.
    pub sources: BTreeMap<String, SourceConfig>,
}

/// The most runs one process drives at once.
pub const MAX_IN_FLIGHT: usize = 4096;

/// The largest `max-body-bytes`: an event is a decision, not its evidence,
/// and each connection may hold a body this large while it is read.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The most threads driving runs.
pub const MAX_THREADS: usize = 1024;

/// Threads driving runs per core, by default.
pub const THREADS_PER_CORE: usize = 3;

/// The most accepted runs that may wait for a turn (`max-queued`): each
/// holds its ticket in memory, and the store has them all anyway.
pub const MAX_QUEUED: usize = 1_000_000;

/// The most connections open at once (`max-connections`): each is a file
/// descriptor and its buffers.
pub const MAX_CONNECTIONS: usize = 65_536;

/// The longest a client may take to send a request's headers or its body.
pub const MAX_READ_TIMEOUT_SECONDS: u64 = 3600;

/// The longest any other period of `[serve]` may be (a grace, a pass's
/// interval, an acknowledgement's wait): a day.
pub const MAX_PERIOD_SECONDS: u64 = 86_400;

impl ServeConfig {
    /// The threads that drive runs: as set, or three per core this process
    /// may use. More than one per core, because a thread also waits: its
    /// runs' store work is synchronous (SQLite), and while it waits for
    /// its turn at the store the core can drive another thread's runs
    /// (`docs/benchmarks.md`: 64 in flight at 20 ms, 361-402 runs/s on one
    /// per core, 411-434 on two or three).
    pub fn run_threads(&self) -> usize {
        match self.threads {
            0 => (THREADS_PER_CORE * std::thread::available_parallelism().map_or(1, usize::from))
                .min(MAX_THREADS),
            n => n,
        }
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8480)),
            context: None,
            max_in_flight: 256,
            threads: 0,
            max_queued: 1000,
            max_body_bytes: 256 * 1024,
            body_read_timeout_secs: 30,
            header_read_timeout_secs: 10,
            max_connections: 512,
            shutdown_grace_secs: 30,
            reconcile_secs: 300,
            anchor_log_secs: 3600,
            deliver_secs: 15,
            public_url: None,
            nats: None,
            sources: BTreeMap::new(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawServe {
    listen: Option<SocketAddr>,
    context: Option<PathBuf>,
    max_in_flight: Option<usize>,
    /// The older name of `max-in-flight`.
    workers: Option<usize>,
    threads: Option<usize>,
    max_queued: Option<usize>,
    max_body_bytes: Option<usize>,
    body_read_timeout_seconds: Option<u64>,
    header_read_timeout_seconds: Option<u64>,
    max_connections: Option<usize>,
    shutdown_grace_seconds: Option<u64>,
    reconcile_seconds: Option<u64>,
    anchor_log_seconds: Option<u64>,
    deliver_seconds: Option<u64>,
    public_url: Option<String>,
    nats: Option<NatsIntake>,
    #[serde(default)]
    sources: BTreeMap<String, RawSource>,
}

impl RawServe {
    /// The file's own section, before any variable overrides it: one
    /// setting under both its names cannot tell which was meant.
    pub(super) fn named_once(&self) -> Result<(), String> {
        match (self.max_in_flight, self.workers) {
            (Some(_), Some(_)) => Err("serve.workers and serve.max-in-flight are one setting \
                                       (workers is its older name): keep max-in-flight alone"
                .into()),
            _ => Ok(()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSource {
    signature: Scheme,
    #[serde(default)]
    secrets: Vec<SecretSource>,
    tolerance_seconds: Option<i64>,
}

impl RawServe {
    /// Fill defaults and check; `resolve` makes paths relative to the
    /// configuration file.
    pub(super) fn finish(
        self,
        resolve: &dyn Fn(PathBuf) -> PathBuf,
    ) -> Result<ServeConfig, String> {
        let defaults = ServeConfig::default();
        let positive = |name: &str, value: Option<usize>, default: usize| match value {
            Some(0) => Err(format!("serve.{name} must be at least 1")),
            Some(v) => Ok(v),
            None => Ok(default),
        };
        // A period past its bound would be no bound at all (and a time so
        // far off cannot be reached: the clock's arithmetic overflows).
        let seconds = |name: &str, value: Option<u64>, default: u64, least: u64, most: u64| {
            let v = value.unwrap_or(default);
            if (least..=most).contains(&v) {
                Ok(v)
            } else {
                Err(format!("serve.{name} is {v}; use {least} to {most}"))
            }
        };
        // Each count's most, and why, when the reason is not plain.
        let threads_why = format!(" (0: {THREADS_PER_CORE} per core)");
        for (name, value, most, why) in [
            (
                "max-in-flight",
                self.max_in_flight.or(self.workers),
                MAX_IN_FLIGHT,
                " (each run in flight holds an instance of each adapter it calls)",
            ),
            ("threads", self.threads, MAX_THREADS, threads_why.as_str()),
            (
                "max-body-bytes",
                self.max_body_bytes,
                MAX_BODY_BYTES,
                " (16 MiB: an event names its evidence, it does not carry it, and each open \
                 connection may hold a body this large)",
            ),
            ("max-queued", self.max_queued, MAX_QUEUED, ""),
            ("max-connections", self.max_connections, MAX_CONNECTIONS, ""),
        ] {
            if let Some(n) = value
                && n > most
            {
                return Err(format!("serve.{name} is {n}; at most {most}{why}"));
            }
        }
        let mut sources = BTreeMap::new();
        for (name, raw) in self.sources {
            // A name no event's `source` can have would never match one.
            if let Some(why) = (name.is_empty())
                .then(|| "is empty".to_string())
                .or_else(|| crate::model::event::unfit_attribute(&name))
            {
                return Err(format!(
                    "serve.sources.{:?}: a source {why}, so no event could come from it; name \
                     the CloudEvent `source` its events carry",
                    crate::kept::shortened(&name, 128)
                ));
            }
            if raw.secrets.is_empty() {
                return Err(format!(
                    "serve.sources.{name:?} has no secrets: handoff does not accept unsigned \
                     events; add secrets = [{{ env = \"VAR\" }}] or [{{ file = \"path\" }}]"
                ));
            }
            let tolerance = raw.tolerance_seconds.unwrap_or(300);
            if !(1..=3600).contains(&tolerance) {
                return Err(format!(
                    "serve.sources.{name:?}.tolerance-seconds is {tolerance}; use 1 to 3600"
                ));
            }
            let secrets = raw
                .secrets
                .into_iter()
                .map(|s| match s {
                    SecretSource::File(p) => SecretSource::File(resolve(p)),
                    env => env,
                })
                .collect();
            sources.insert(
                name,
                SourceConfig {
                    scheme: raw.signature,
                    secrets,
                    tolerance_secs: tolerance,
                },
            );
        }
        Ok(ServeConfig {
            listen: self.listen.unwrap_or(defaults.listen),
            context: self.context.map(resolve),
            // `workers`, the older name, counts when `max-in-flight` is not
            // set (an environment variable sets `max-in-flight`, and wins).
            max_in_flight: match self.max_in_flight {
                Some(n) => positive("max-in-flight", Some(n), defaults.max_in_flight)?,
                None => positive("workers", self.workers, defaults.max_in_flight)?,
            },
            threads: self.threads.unwrap_or(defaults.threads),
            max_queued: positive("max-queued", self.max_queued, defaults.max_queued)?,
            max_body_bytes: positive(
                "max-body-bytes",
                self.max_body_bytes,
                defaults.max_body_bytes,
            )?,
            body_read_timeout_secs: seconds(
                "body-read-timeout-seconds",
                self.body_read_timeout_seconds,
                defaults.body_read_timeout_secs,
                1,
                MAX_READ_TIMEOUT_SECONDS,
            )?,
            header_read_timeout_secs: seconds(
                "header-read-timeout-seconds",
                self.header_read_timeout_seconds,
                defaults.header_read_timeout_secs,
                1,
                MAX_READ_TIMEOUT_SECONDS,
            )?,
            max_connections: positive(
                "max-connections",
                self.max_connections,
                defaults.max_connections,
            )?,
            shutdown_grace_secs: seconds(
                "shutdown-grace-seconds",
                self.shutdown_grace_seconds,
                defaults.shutdown_grace_secs,
                0,
                MAX_PERIOD_SECONDS,
            )?,
            reconcile_secs: seconds(
                "reconcile-seconds",
                self.reconcile_seconds,
                defaults.reconcile_secs,
                0,
                MAX_PERIOD_SECONDS,
            )?,
            anchor_log_secs: seconds(
                "anchor-log-seconds",
                self.anchor_log_seconds,
                defaults.anchor_log_secs,
                0,
                MAX_PERIOD_SECONDS,
            )?,
            deliver_secs: seconds(
                "deliver-seconds",
                self.deliver_seconds,
                defaults.deliver_secs,
                0,
                MAX_PERIOD_SECONDS,
            )?,
            public_url: match self.public_url {
                None => None,
                Some(url) => Some(public_url(&url)?),
            },
            nats: match self.nats {
                Some(n) if !(1..=MAX_PERIOD_SECONDS).contains(&n.ack_wait_seconds) => {
                    return Err(format!(
                        "serve.nats.ack-wait-seconds is {}; use 1 to {MAX_PERIOD_SECONDS}",
                        n.ack_wait_seconds
                    ));
                }
                other => other,
            },
            sources,
        })
    }
}

/// The longest `public-url`: a link to a packet is made of it in every
/// notice.
const MAX_PUBLIC_URL_BYTES: usize = 2048;

/// `serve.public-url`: where people reach the service, as the start of a
/// link (`{public-url}/ui/follow-ups/ID`): http or https, a host, an
/// optional port and path; no user name or password (every notice would
/// carry them), no query or fragment (a path after them would not be
/// one). Its trailing `/` is dropped.
fn public_url(given: &str) -> Result<String, String> {
    let shown = crate::kept::shortened(given, 128);
    let refused = |why: &str| {
        format!(
            "serve.public-url {shown:?}: {why}; give the http:// or https:// address people \
             reach the service at, such as https://handoff.example.internal"
        )
    };
    if given.len() > MAX_PUBLIC_URL_BYTES {
        return Err(refused(&format!(
            "it is {} bytes, at most {MAX_PUBLIC_URL_BYTES}",
            given.len()
        )));
    }
    if given.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refused("it holds white space or a control character"));
    }
    let url = url::Url::parse(given).map_err(|e| refused(&format!("not an address ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(refused("not an http or https address of a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refused(
            "it carries a user name or password, which every notice would repeat",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(refused(
            "it has a query or fragment, after which a packet's path could not follow",
        ));
    }
    Ok(given.trim_end_matches('/').to_string())
}
