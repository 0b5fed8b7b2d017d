//! The files surface's grant, comparison and narrowing.

use super::*;

#[derive(Deserialize)]
struct Entries {
    files: Vec<RawFiles>,
}

fn grant(text: &str) -> Result<FileGrants, String> {
    Files::parse(toml::from_str::<Entries>(text).unwrap().files)
}

#[test]
fn names_are_logical_not_paths() {
    let err = grant("[[files]]\nname = \"../etc\"\nmode = \"read-only\"\n").unwrap_err();
    assert!(err.contains("logical directory name"), "{err}");
    let err = grant("[[files]]\nname = \"a\"\nmode = \"rw\"\n").unwrap_err();
    assert!(err.contains("read-write"), "{err}");
    let named = |n: usize| {
        format!(
            "[[files]]\nname = \"{}\"\nmode = \"read-only\"\n",
            "d".repeat(n)
        )
    };
    grant(&named(64)).unwrap();
    let err = grant(&named(65)).unwrap_err();
    assert!(err.contains("at most 64"), "{err}");
}

#[test]
fn read_only_to_read_write_widens() {
    let ro = grant("[[files]]\nname = \"evidence\"\nmode = \"read-only\"\n").unwrap();
    let rw = grant("[[files]]\nname = \"evidence\"\nmode = \"read-write\"\n").unwrap();
    let mut changes = Vec::new();
    Files::compare(&ro, &rw, &mut changes);
    assert!(matches!(changes[..], [Change::Widened(_)]));
    let mut changes = Vec::new();
    Files::compare(&rw, &ro, &mut changes);
    assert!(matches!(changes[..], [Change::Narrowed(_)]));
    assert_eq!(
        Files::intersect(&rw, &ro, &HostCeiling::default())["evidence"],
        FileMode::ReadOnly
    );
}

#[test]
fn an_instance_mounts_read_only_only_what_its_grant_holds() {
    let mut g = grant("[[files]]\nname = \"records\"\nmode = \"read-write\"\n").unwrap();
    let binding = FilesBinding {
        read_only: ["records".to_string()].into(),
        ..Default::default()
    };
    Files::narrow(&mut g, &binding).unwrap();
    assert_eq!(g["records"], FileMode::ReadOnly);
    let wrong = FilesBinding {
        read_only: ["evidence".to_string()].into(),
        ..Default::default()
    };
    let err = Files::narrow(&mut g, &wrong).unwrap_err();
    assert_eq!(
        err,
        "read-only: \"evidence\" is not a directory its grant holds (records)"
    );
}
