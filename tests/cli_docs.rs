//! Shell completions and man pages (issue 17): generated from the CLI definition, so every
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
    assert!(!refused.status.success());
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
