//! The command line as a user meets it (issue 17): shell completions and man pages generated from
//! the CLI definition, and first mistakes answered with what to do.
//! command and flag is in them.

use std::process::Command;

use crate::harness::{appupdate_ok, bin, run, temp_dir, text};

#[test]
fn completions_name_every_command_and_bash_loads_them() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = appupdate_ok(&["completions", shell]);
        for word in [
            "publish",
            "release",
            "fleet",
            "download-only",
            "receipts-db",
        ] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    // bash itself loads the script and registers the completion function.
    let home = temp_dir();
    let script = home.path().join("appupdate.bash");
    std::fs::write(&script, appupdate_ok(&["completions", "bash"])).unwrap();
    let out = run(Command::new("bash").arg("-c").arg(format!(
        "source '{}' && complete -p appupdate",
        script.display()
    )));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("appupdate"),
        "{}",
        text(&out.stdout)
    );
    let refused = run(Command::new(bin("appupdate")).args(["completions", "tcsh"]));
    assert_eq!(refused.status.code(), Some(2), "a usage error");
}

#[test]
fn man_pages_cover_every_command() {
    let page = appupdate_ok(&["man"]);
    assert!(page.contains(".TH appupdate 1"), "{page}");
    let home = temp_dir();
    let out = home.path().join("man");
    appupdate_ok(&["man", "--out", out.to_str().unwrap()]);
    for name in [
        "appupdate.1",
        "appupdate-publish.1",
        "appupdate-update.1",
        "appupdate-release-rollout.1",
        "appupdate-fleet.1",
    ] {
        let text =
            std::fs::read_to_string(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(text.contains(".TH"), "{name} is not a man page");
    }
    let publish = std::fs::read_to_string(out.join("appupdate-publish.1")).unwrap();
    assert!(
        publish.contains("rollout"),
        "publish's page lacks --rollout"
    );
}

/// Mistakes a new user makes get an answer that says what to do (issue 17, item 8).
#[test]
fn first_mistakes_are_answered_with_what_to_do() {
    use crate::harness::{Publisher, appupdate};
    let home = temp_dir();
    let source = home.path().join("build");
    crate::harness::write_executable(&source.join("bin/hello"), "#!/bin/sh\necho hi\n");
    let empty = home.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let publisher = Publisher::new();
    let keys = publisher.keys();
    let keys = keys.to_str().unwrap();
    let publish = |repo: &str, version: &str, exe: &str, folder: &std::path::Path| {
        appupdate(&[
            "publish",
            "--repo",
            repo,
            "--keys",
            keys,
            "--app",
            "hello",
            "--version",
            version,
            "--exe",
            exe,
            "--platform",
            "any",
            folder.to_str().unwrap(),
        ])
    };
    // No repository yet.
    let missing = home.path().join("nowhere");
    let out = publish(missing.to_str().unwrap(), "1.0.0", "bin/hello", &source);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("appupdate repo init"),
        "{}",
        text(&out.stderr)
    );
    assert!(!missing.join(".publish.lock").exists(), "nothing written");
    // `./bin/hello` as a shell user types it.
    let repo = publisher.repo();
    let repo = repo.to_str().unwrap();
    let out = publish(repo, "1.0.0", "./bin/hello", &source);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // An empty folder.
    let out = publish(repo, "1.0.1", "bin/hello", &empty);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("nothing to publish"),
        "{}",
        text(&out.stderr)
    );
    // Another repository's root.
    let other = Publisher::new();
    let dir = home.path().join("app");
    let out = appupdate(&[
        "install",
        "--url",
        &format!("file://{repo}"),
        "--trusted-root",
        other.root_json().to_str().unwrap(),
        "--app",
        "hello",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(4), "verification refused");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("does not match the keys of the repository"),
        "{stderr}"
    );
    assert!(!dir.exists(), "the failed install left nothing");
}

/// The README's first command: the whole product end to end, and the folder it names is
/// still there afterwards to look at.
#[test]
fn the_demo_runs_end_to_end_and_keeps_the_folder_it_names() {
    let out = appupdate_ok(&["demo"]);
    assert!(out.contains("now runs 2.0.0"), "{out}");
    let kept = out
        .lines()
        .find_map(|line| line.strip_prefix("everything is kept in "))
        .and_then(|rest| rest.split(" (remove").next())
        .unwrap_or_else(|| panic!("no kept folder in {out}"));
    let kept = std::path::Path::new(kept);
    let history = std::fs::read_to_string(kept.join("installed/state/history.log")).unwrap();
    assert!(history.contains("update from=1.0.0 to=2.0.0"), "{history}");
    std::fs::remove_dir_all(kept).unwrap();
}

/// Regression: `repo mirrors` and `repo push` came from branches that did not know `s3://`
/// repositories and took `s3://b/p` for a folder name. Every command that works on folders
/// only refuses a bucket as a usage error (exit 2) before it touches anything.
#[test]
fn folder_only_commands_refuse_an_s3_repository_as_a_usage_error() {
    let dir = temp_dir();
    let keys = dir.path().join("keys");
    let keys = keys.to_str().unwrap();
    let url = "http://127.0.0.1:9/x";
    for args in [
        vec![
            "repo",
            "push",
            "--repo",
            "s3://bucket/p",
            "--keys",
            keys,
            "--url",
            url,
        ],
        vec![
            "repo",
            "mirrors",
            "--repo",
            "s3://bucket/p",
            "--keys",
            keys,
            "--url",
            url,
        ],
        vec![
            "repo",
            "receipts",
            "--repo",
            "s3://bucket/p",
            "--keys",
            keys,
            "--url",
            url,
        ],
    ] {
        let out = crate::harness::appupdate(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("not supported by this command"),
            "{args:?}: {stderr}"
        );
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing made"
    );
}
