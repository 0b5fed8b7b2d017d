//! Builds every guest component in the workspace (`adapters/*` and
//! `tests/guests/*`) for `wasm32-wasip2` and assembles each into a package
//! directory: `<target>/handoff-packages/<name>/{adapter.toml,<name>.wasm}`.
//!
//! The guests are built by a nested cargo with its own target directory
//! (`<target>/guests`): sharing the outer one would deadlock on its lock.
//! The `wasm32-wasip2` target is installed through rustup when missing, so a
//! fresh machine needs nothing but the README's commands.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const GUEST_TARGET: &str = "wasm32-wasip2";
const GUEST_PROFILE: &str = "guest";
const GUEST_DIRS: [&str; 2] = ["adapters", "tests/guests"];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    for watched in [
        "adapters",
        "tests/guests",
        "sdk/src",
        "sdk/build.rs",
        "wit",
        "Cargo.lock",
        // The guests' build profile.
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=HANDOFF_SKIP_GUESTS");

    let target_dir = cargo_target_dir();
    let packages_dir = target_dir.join("handoff-packages");
    println!(
        "cargo:rustc-env=HANDOFF_PACKAGES_DIR={}",
        packages_dir.display()
    );
    if env::var_os("HANDOFF_SKIP_GUESTS").is_some() {
        println!("cargo:warning=HANDOFF_SKIP_GUESTS is set: adapter packages were not rebuilt");
        return;
    }

    let guests = find_guests(&root);
    if guests.is_empty() {
        return;
    }
    ensure_target();

    let guest_target_dir = target_dir.join("guests");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--locked",
            "--target",
            GUEST_TARGET,
            "--profile",
            GUEST_PROFILE,
        ])
        .arg("--target-dir")
        .arg(&guest_target_dir);
    for (crate_name, _) in &guests {
        cmd.args(["-p", crate_name]);
    }
    scrub_env(&mut cmd);
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the adapter components: {e}"));
    if !status.success() {
        panic!("building the adapter components for {GUEST_TARGET} failed (see the errors above)");
    }

    let built = guest_target_dir.join(GUEST_TARGET).join(GUEST_PROFILE);
    for (crate_name, dir) in &guests {
        let manifest = fs::read_to_string(dir.join("adapter.toml")).unwrap();
        let name = adapter_name(&manifest)
            .unwrap_or_else(|| panic!("{}: adapter.toml has no adapter.name", dir.display()));
        let package = packages_dir.join(&name);
        fs::create_dir_all(&package).unwrap();
        fs::write(package.join("adapter.toml"), &manifest).unwrap();
        let wasm = built.join(format!("{}.wasm", crate_name.replace('-', "_")));
        copy_if_changed(&wasm, &package.join(format!("{name}.wasm")));
    }
}

/// Crates under the guest directories that carry an `adapter.toml`.
fn find_guests(root: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for parent in GUEST_DIRS {
        let Ok(entries) = fs::read_dir(root.join(parent)) else {
            continue;
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            if dir.join("Cargo.toml").is_file() && dir.join("adapter.toml").is_file() {
                let cargo_toml = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
                let name = toml_string(&cargo_toml, "name")
                    .unwrap_or_else(|| panic!("{}: Cargo.toml has no package name", dir.display()));
                out.push((name, dir));
            }
        }
    }
    out.sort();
    out
}

/// The first `key = "value"` in a TOML text (enough for package names).
fn toml_string(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

fn adapter_name(manifest: &str) -> Option<String> {
    toml_string(manifest, "name")
}

/// The outer build's target directory: the ancestor of OUT_DIR that holds
/// cargo's CACHEDIR.TAG.
fn cargo_target_dir() -> PathBuf {
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    out_dir
        .ancestors()
        .find(|p| p.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out_dir.join("../../../.."))
}

/// Install the guest target when the toolchain lacks it.
fn ensure_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if let Some(sysroot) = sysroot
        && Path::new(&sysroot)
            .join("lib/rustlib")
            .join(GUEST_TARGET)
            .is_dir()
    {
        return;
    }
    println!("cargo:warning=installing the {GUEST_TARGET} target with rustup (once)");
    let status = Command::new("rustup")
        .args(["target", "add", GUEST_TARGET])
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            panic!("`rustup target add {GUEST_TARGET}` failed ({s}); run it by hand and rebuild")
        }
        Err(e) => panic!(
            "the {GUEST_TARGET} target is missing and rustup could not be run ({e}); \
             install the target for your toolchain and rebuild"
        ),
    }
}

/// Keep the nested cargo from inheriting the outer build's settings.
fn scrub_env(cmd: &mut Command) {
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        let keep = key == "CARGO_HOME"
            || key.starts_with("CARGO_NET_")
            || key.starts_with("CARGO_HTTP_")
            || key.starts_with("CARGO_REGISTRIES_");
        if (key.starts_with("CARGO_") && !keep)
            || key == "RUSTC_WORKSPACE_WRAPPER"
            || key == "CLIPPY_ARGS"
            || key == "RUSTFLAGS"
        {
            cmd.env_remove(key.as_ref());
        }
    }
}

fn copy_if_changed(from: &Path, to: &Path) {
    let new = fs::read(from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    if fs::read(to).ok().as_deref() != Some(&new[..]) {
        fs::write(to, new).unwrap();
    }
}
