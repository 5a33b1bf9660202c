//! Releases for another platform than the publisher's: cross-publishing is the normal CI case.

/// Regression: publishing for Windows from Linux was refused, because the source files carry
/// no `x` bit (Windows has none) and the executable had to be marked executable. For a
/// `windows-*` release the executable files are exactly those named by `--exe` and
/// `--launcher`; the source modes are ignored.
#[cfg(unix)]
#[test]
fn unix_publishes_a_windows_release_without_execute_bits() {
    use crate::harness::{Publisher, appupdate, set_mode, text};

    let publisher = Publisher::new();
    let files: &[(&str, &[u8], bool)] = &[
        ("bin/app", b"MZ app", false),
        ("bin/appstart.exe", b"MZ launcher", false),
        ("lib/helper.sh", b"#!/bin/sh\n", true),
        ("data.txt", b"data", false),
    ];
    publisher.publish(
        "sample",
        "1.0.0",
        files,
        &[
            "--platform",
            "windows-x86_64",
            "--launcher",
            "bin/appstart.exe",
        ],
    );
    let manifest = publisher.manifest("sample/stable/windows-x86_64/1.0.0/manifest.json");
    let executable: Vec<&str> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["executable"] == true)
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(executable, ["bin/app", "bin/appstart.exe"]);

    // A Linux release still goes by the execute bit: a non-executable --exe is refused.
    let source = publisher.dir.path().join("src-linux");
    std::fs::create_dir_all(source.join("bin")).unwrap();
    std::fs::write(source.join("bin/app"), b"#!/bin/sh\n").unwrap();
    set_mode(&source.join("bin/app"), 0o644);
    let (repo, keys) = (publisher.repo(), publisher.keys());
    let output = appupdate(&[
        "publish",
        "--repo",
        repo.to_str().unwrap(),
        "--keys",
        keys.to_str().unwrap(),
        "--app",
        "sample",
        "--version",
        "1.0.1",
        "--exe",
        "bin/app",
        "--platform",
        "linux-x86_64",
        source.to_str().unwrap(),
    ]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not marked executable"), "{stderr}");
}
