//! [`Mirrors`] over real folders (`file://` bases): failover on 404, the freshest
//! timestamp, rejection, the health file, and `mirrors` in `state/install.toml`. The HTTP
//! cases (down, truncating, stalled, stale, tampering mirrors) are in the e2e suite
//! (`tests/mirrors.rs`).

use super::*;
use crate::transport::FileTransport;
use std::io::Read;

struct Fixture {
    _dirs: Vec<tempfile::TempDir>,
    urls: Vec<String>,
    state: tempfile::TempDir,
}

/// Three repository folders, `files` written into each as given (`None`: absent).
fn fixture(files: &[(&str, [Option<&str>; 3])]) -> Fixture {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    for (path, contents) in files {
        for (dir, content) in dirs.iter().zip(contents) {
            if let Some(content) = content {
                let file = dir.path().join(path);
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(file, content).unwrap();
            }
        }
    }
    let urls = dirs
        .iter()
        .map(|d| format!("file://{}", d.path().display()))
        .collect();
    Fixture {
        _dirs: dirs,
        urls,
        state: tempfile::tempdir().unwrap(),
    }
}

fn mirrors(fixture: &Fixture) -> Mirrors {
    let bases = fixture
        .urls
        .iter()
        .map(|url| (url.clone(), Box::new(FileTransport) as Box<dyn Transport>))
        .collect();
    Mirrors::new(
        &fixture.urls[0],
        bases,
        Some(fixture.state.path().join(HEALTH_FILE)),
    )
}

fn read(mirrors: &Mirrors, path: &str) -> Result<String> {
    let url = join_url(&mirrors.primary, path);
    let mut response = mirrors.get(&url, &Request::default())?;
    let mut text = String::new();
    response.body.read_to_string(&mut text).unwrap();
    Ok(text)
}

#[test]
fn a_missing_file_is_taken_from_the_next_base_and_health_remembers_it() {
    let fixture = fixture(&[("blobs/x", [None, Some("one"), Some("two")])]);
    let m = mirrors(&fixture);
    assert_eq!(read(&m, "blobs/x").unwrap(), "one");
    // The primary is now last, the base that worked first: even in a new process.
    let again = mirrors(&fixture);
    assert_eq!(again.order("blobs/x"), [1, 2, 0]);
    let text = std::fs::read_to_string(fixture.state.path().join(HEALTH_FILE)).unwrap();
    assert!(text.contains(&fixture.urls[0]), "{text}");
}

#[test]
fn a_file_missing_everywhere_is_not_found_and_a_root_probe_is_no_failure() {
    let fixture = fixture(&[]);
    let m = mirrors(&fixture);
    assert!(matches!(
        read(&m, "metadata/2.root.json"),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(m.order("x"), [0, 1, 2], "a root probe's 404 is normal");
    assert!(matches!(read(&m, "blobs/y"), Err(Error::NotFound { .. })));
    assert!(is_root_probe("metadata/12.root.json"));
    assert!(!is_root_probe("metadata/root.json"));
    assert!(!is_root_probe("metadata/x.root.json"));
}

#[test]
fn the_highest_timestamp_wins_and_a_rejected_base_is_skipped_for_the_folder() {
    let ts = |v: u64| format!("{{\"signed\":{{\"version\":{v}}}}}");
    let (a, b, c) = (ts(3), ts(5), ts(4));
    let fixture = fixture(&[("metadata/timestamp.json", [Some(&a), Some(&b), Some(&c)])]);
    let m = mirrors(&fixture);
    assert_eq!(read(&m, "metadata/timestamp.json").unwrap(), b);
    // Base 1's timestamp failed verification: the refresh starts again without it.
    let metadata = join_url(&m.primary, "metadata");
    assert!(m.reject(&metadata));
    assert_eq!(read(&m, "metadata/timestamp.json").unwrap(), c);
    assert!(m.reject(&metadata));
    assert_eq!(read(&m, "metadata/timestamp.json").unwrap(), a);
    assert!(!m.reject(&metadata), "no base left");
    assert!(read(&m, "metadata/timestamp.json").is_err());
}

#[test]
fn one_base_is_a_plain_pass_through() {
    let fixture = fixture(&[("blobs/x", [Some("zero"), None, None])]);
    let m = Mirrors::new(
        &fixture.urls[0],
        vec![(fixture.urls[0].clone(), Box::new(FileTransport))],
        None,
    );
    assert_eq!(read(&m, "blobs/x").unwrap(), "zero");
    assert!(!m.reject(&join_url(&fixture.urls[0], "blobs/x")));
}

#[test]
fn mirrors_are_optional_kept_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("install.toml");
    // A file from before mirrors still reads.
    std::fs::write(
        &path,
        "url = \"http://a\"\napp = \"x\"\nchannel = \"stable\"\nplatform = \"any\"\n",
    )
    .unwrap();
    let mut settings = crate::settings::InstallSettings::load(&path).unwrap();
    assert!(settings.mirrors.is_empty());
    settings.mirrors = vec!["http://b".into(), "file:///srv/repo".into()];
    settings.save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("mirrors = ["), "{text}");
    assert_eq!(
        crate::settings::InstallSettings::load(&path).unwrap(),
        settings
    );
    std::fs::write(&path, text.replace("http://b", "ftp://b")).unwrap();
    let err = crate::settings::InstallSettings::load(&path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ftp://b") && err.contains("install.toml"),
        "{err}"
    );
}
