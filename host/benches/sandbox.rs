//! Sandbox costs, printed as numbers (not a pass/fail test).
//!
//! Run: `cargo bench -p handoff --bench sandbox` (release profile).
//!
//! How it measures: wall-clock time around each operation, many repetitions,
//! medians and 99th percentiles reported. The component is the `minimal` test
//! adapter (no capabilities) unless named otherwise; calls go through the
//! same guarded path the pipeline uses (epoch deadline + host-side timeout).
//! Goals on a 2-core machine: pooled instantiate <= 10 µs median, a call
//! <= 1 µs median.

use handoff::config::{AdapterInstance, HostCeiling};
use handoff::sandbox::package::Package;
use handoff::sandbox::{Action, RecordRef, Sandbox};
use handoff::store::Store;
use handoff::store::adapters::NewApproval;
use std::path::Path;
use std::time::{Duration, Instant};

fn stats(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let median = samples[samples.len() / 2];
    let p99 = samples[(samples.len() * 99 / 100).min(samples.len() - 1)];
    (median, p99)
}

fn show(label: &str, samples: Vec<Duration>) {
    let n = samples.len();
    let (median, p99) = stats(samples);
    println!("{label:<52} median {median:>11.2?}   p99 {p99:>11.2?}   (n={n})");
}

fn package(name: &str) -> Package {
    Package::read(&Path::new(handoff::BUILT_PACKAGES_DIR).join(name)).expect("built package")
}

fn main() {
    // As the `handoff` binary does: error values do not walk the stack
    // (`RUST_BACKTRACE=1` would otherwise slow every adapter call).
    // SAFETY: first thing in main, before any thread exists.
    #[allow(unsafe_code)]
    unsafe {
        handoff::backtraces::leave_off_unless_asked()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let minimal = package("minimal");
    let probe = package("probe");
    println!(
        "handoff sandbox benchmark: minimal adapter {} KiB, probe adapter {} KiB",
        minimal.component.len() / 1024,
        probe.component.len() / 1024
    );

    // Compile: a fresh cache each time, so every call compiles.
    for p in [&minimal, &probe] {
        let mut samples = Vec::new();
        for _ in 0..5 {
            let cache = tempfile::tempdir().unwrap();
            let sandbox = Sandbox::new(cache.path(), HostCeiling::default()).unwrap();
            let start = Instant::now();
            sandbox.component(p).unwrap();
            samples.push(start.elapsed());
        }
        show(&format!("compile component ({})", p.manifest.name), samples);
    }

    // Load from the artifact cache (memory-mapped deserialize).
    let cache = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::new(cache.path(), HostCeiling::default()).unwrap();
    for p in [&minimal, &probe] {
        sandbox.component(p).unwrap();
        let samples = (0..200)
            .map(|_| {
                let start = Instant::now();
                sandbox.component(p).unwrap();
                start.elapsed()
            })
            .collect();
        show(
            &format!("load cached artifact ({})", p.manifest.name),
            samples,
        );
    }

    let mut store = Store::in_memory().unwrap();
    store
        .approve_adapter(&NewApproval::of(&minimal, "bench"))
        .unwrap();
    let approval = store.latest_approval("minimal").unwrap();
    let loaded = sandbox
        .load(
            &minimal,
            approval.as_ref(),
            &AdapterInstance::new("minimal", Path::new(".")),
        )
        .unwrap();
    let record = RecordRef {
        system: "bench".into(),
        kind: "issue".into(),
        id: "42".into(),
    };
    let action = Action::SetState("closed".into());

    runtime.block_on(async {
        // Warm up the pool slots.
        for _ in 0..200 {
            drop(loaded.instantiate().await.unwrap());
        }
        let mut samples = Vec::with_capacity(5_000);
        for _ in 0..5_000 {
            let start = Instant::now();
            let instance = loaded.instantiate().await.unwrap();
            samples.push(start.elapsed());
            drop(instance);
        }
        show("instantiate (pooling allocator + InstancePre)", samples);

        let mut instance = loaded.instantiate().await.unwrap();
        let mut observe = Vec::with_capacity(50_000);
        for _ in 0..50_000 {
            let start = Instant::now();
            instance.observe(&record).await.unwrap().unwrap();
            observe.push(start.elapsed());
        }
        show("observe call (guarded, same instance)", observe);
        let mut apply = Vec::with_capacity(50_000);
        for _ in 0..50_000 {
            let start = Instant::now();
            instance
                .apply(&record, &action, "key")
                .await
                .unwrap()
                .unwrap();
            apply.push(start.elapsed());
        }
        show("apply call (guarded, same instance)", apply);

        let mut whole = Vec::with_capacity(5_000);
        for _ in 0..5_000 {
            let start = Instant::now();
            let mut fresh = loaded.instantiate().await.unwrap();
            fresh.observe(&record).await.unwrap().unwrap();
            fresh.apply(&record, &action, "key").await.unwrap().unwrap();
            fresh.observe(&record).await.unwrap().unwrap();
            whole.push(start.elapsed());
        }
        show("fresh instance + observe + apply + observe", whole);
    });

    // The filesystem record store, on a real directory: what one call of
    // the pipeline's local adapters costs.
    let records = package("fs-records");
    store
        .approve_adapter(&NewApproval::of(&records, "bench"))
        .unwrap();
    let approval = store.latest_approval("fs-records").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("issue")).unwrap();
    std::fs::write(
        dir.path().join("issue/42.json"),
        br#"{"state":"open","revision":1}"#,
    )
    .unwrap();
    let mut instance_config = AdapterInstance::new("records", Path::new("."));
    instance_config
        .surfaces
        .files
        .directories
        .insert("records".into(), dir.path().to_path_buf());
    let loaded = sandbox
        .load(&records, approval.as_ref(), &instance_config)
        .unwrap();
    runtime.block_on(async {
        let mut instance = loaded.instantiate().await.unwrap();
        let mut observe = Vec::with_capacity(5_000);
        for _ in 0..5_000 {
            let start = Instant::now();
            instance.observe(&record).await.unwrap().unwrap();
            observe.push(start.elapsed());
        }
        show("fs-records observe (same instance)", observe);
        let mut fresh = Vec::with_capacity(2_000);
        for _ in 0..2_000 {
            let start = Instant::now();
            let mut instance = loaded.instantiate().await.unwrap();
            instance.observe(&record).await.unwrap().unwrap();
            fresh.push(start.elapsed());
        }
        show("fs-records fresh instance + observe", fresh);
        let mut apply = Vec::with_capacity(2_000);
        for i in 0..2_000 {
            let start = Instant::now();
            instance
                .apply(
                    &record,
                    &Action::Annotate(format!("n{i}")),
                    &format!("k{i}"),
                )
                .await
                .unwrap()
                .unwrap();
            apply.push(start.elapsed());
        }
        show("fs-records apply (same instance, growing record)", apply);
    });
}
