//! Files: granted directories are there with their modes, and nothing
//! outside them can be read or written, by the SDK or plain `std::fs`.

use super::*;
use crate::support::*;
use handoff::config::AdapterInstance;
use handoff::sandbox::AdapterError;

#[tokio::test]
async fn granted_directories_are_readable_and_the_read_write_one_writable() {
    let evidence = tempfile::tempdir().unwrap();
    std::fs::write(evidence.path().join("bundle.txt"), "evidence v1").unwrap();
    let outbox = tempfile::tempdir().unwrap();
    let mut instance = probe_with_files("probe-files", evidence.path(), outbox.path()).await;

    let read = instance
        .observe(&rec("read", "/evidence/bundle.txt"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(field(&read, "content"), "evidence v1");
    let listed = instance
        .observe(&rec("list", "/evidence"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(field(&listed, "names"), "bundle.txt");
    instance
        .observe(&rec("write", "/outbox/note.txt"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(outbox.path().join("note.txt")).unwrap(),
        "written by probe"
    );
}

#[tokio::test]
async fn a_directory_the_operator_binds_read_only_is_read_only_whatever_the_grant() {
    let outbox = tempfile::tempdir().unwrap();
    std::fs::write(outbox.path().join("kept.txt"), "kept").unwrap();
    let dir = package(
        "probe",
        &probe_manifest(
            "probe-narrowed",
            "[[capabilities.files]]\nname = \"outbox\"\nmode = \"read-write\"\n",
        ),
    );
    let mut cfg = AdapterInstance::new("narrowed", dir.path());
    cfg.surfaces
        .files
        .directories
        .insert("outbox".into(), outbox.path().to_path_buf());
    cfg.surfaces.files.read_only.insert("outbox".into());
    let adapter = approved(&sandbox(), dir.path(), &cfg);
    let mut instance = adapter.instantiate().await.unwrap();
    let read = instance
        .observe(&rec("read", "/outbox/kept.txt"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(field(&read, "content"), "kept");
    let write = instance
        .observe(&rec("write", "/outbox/new.txt"))
        .await
        .unwrap();
    assert!(write.is_err(), "{write:?}");
    assert!(!outbox.path().join("new.txt").exists());
}

/// The SDK's file calls go to `wasi:filesystem` directly inside a
/// component (sized reads, one-`stat` lookups, its own directory walk):
/// each is checked here where it runs, against what the disk holds.
#[tokio::test]
async fn the_sdk_file_calls_answer_inside_a_component_as_the_disk_does() {
    let evidence = tempfile::tempdir().unwrap();
    let outbox = tempfile::tempdir().unwrap();
    // Sizes around the host's 64 KiB limit per read, and an empty file.
    let text = |len: usize| -> String {
        (0..len)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect()
    };
    let sizes = [0, 5, 65_536, 65_537, 3 * 65_536 + 100];
    for len in sizes {
        std::fs::write(evidence.path().join(format!("f{len}.txt")), text(len)).unwrap();
    }
    std::os::unix::fs::symlink("f5.txt", evidence.path().join("link")).unwrap();
    std::os::unix::fs::symlink("gone.txt", evidence.path().join("dangling")).unwrap();
    std::fs::write(outbox.path().join("taken"), b"a file").unwrap();
    let mut instance = probe_with_files("probe-sdk-files", evidence.path(), outbox.path()).await;
    let mut ask = async |op: &str, arg: &str| instance.observe(&rec(op, arg)).await.unwrap();

    for len in sizes {
        let read = ask("read", &format!("/evidence/f{len}.txt")).await.unwrap();
        assert!(field(&read, "content") == text(len), "f{len}.txt read back");
    }
    for (path, exists) in [
        ("/evidence/f5.txt", true),
        ("/evidence/link", true),
        ("/evidence", true),
        ("/evidence/missing.txt", false),
        ("/evidence/dangling", false),
        ("/outbox/none/deeper", false),
    ] {
        let seen = ask("exists", path).await.unwrap();
        assert_eq!(field(&seen, "exists"), exists.to_string(), "{path}");
    }

    ask("mkdir", "/outbox/a/b/c").await.unwrap();
    assert!(outbox.path().join("a/b/c").is_dir());
    // Already there: no error, nothing else made.
    ask("mkdir", "/outbox/a/b").await.unwrap();
    ask("mkdir", "/outbox").await.unwrap();
    let names: Vec<_> = std::fs::read_dir(outbox.path().join("a"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["b"]);
    // A file in the way, and a read-only mount, are errors that say so.
    match ask("mkdir", "/outbox/taken").await {
        Err(AdapterError::Transient(m)) => assert!(m.contains("/outbox/taken"), "{m}"),
        other => panic!("mkdir over a file: {other:?}"),
    }
    match ask("mkdir", "/evidence/new").await {
        Err(AdapterError::Denied(m)) => assert!(m.contains("/evidence/new"), "{m}"),
        other => panic!("mkdir in a read-only mount: {other:?}"),
    }
    assert!(!evidence.path().join("new").exists());
}

#[tokio::test]
async fn reading_outside_the_granted_directory_is_denied() {
    let server = TestServer::start().await;
    let mut f = fixture(&server).await;
    let outside = f.outside_file.display().to_string();
    let dotdot = format!("/data/../..{outside}");
    for path in [
        dotdot.as_str(),
        outside.as_str(),
        "/etc/passwd",
        "/data/escape",
    ] {
        let message = assert_denied(&mut f.instance, "read", path).await;
        assert!(!message.contains("outside secret"), "{message}");
        assert_unreadable_raw(&mut f.instance, path).await;
    }
    // Raw `..` and symlink escapes are refused by the sandbox itself.
    for path in [dotdot.as_str(), "/data/escape"] {
        assert_denied(&mut f.instance, "read-raw", path).await;
    }
    // The directory itself is readable: the refusals are about escaping it.
    let inside = f
        .instance
        .observe(&rec("read", "/data/inside.txt"))
        .await
        .unwrap();
    assert!(inside.is_ok(), "{inside:?}");
}

#[tokio::test]
async fn writing_to_a_read_only_directory_is_denied() {
    let server = TestServer::start().await;
    let mut f = fixture(&server).await;
    for op in ["write", "write-raw"] {
        assert_denied(&mut f.instance, op, "/evidence/bundle.txt").await;
        assert_denied(&mut f.instance, op, "/evidence/new.txt").await;
    }
    assert_eq!(
        std::fs::read_to_string(f.evidence.path().join("bundle.txt")).unwrap(),
        "evidence"
    );
    assert!(!f.evidence.path().join("new.txt").exists());
    // The read-write directory next to it takes the same write.
    f.instance
        .observe(&rec("write", "/data/new.txt"))
        .await
        .unwrap()
        .unwrap();
    assert!(f.data.path().join("new.txt").is_file());
}
