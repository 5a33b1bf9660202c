//! Release control seen from the fleet (issue 15): real installs over the loopback server
//! take, or are held back from, releases according to signed controls (rollout, groups,
//! install ids, pause, pull, `from` and chains, `stop`, critical, expiry, custom data), the
//! channel they follow, and the enterprise policy.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use sha2::Digest;

use crate::harness::{Publisher, Server, bin, run, temp_dir, text, tree_snapshot};

const APP_SCRIPT: &[u8] = b"#!/bin/sh\necho \"app $APPSTART_VERSION\"\n";

/// A repository, its server and a folder for installs.
struct Fleet {
    publisher: Publisher,
    server: Server,
    home: tempfile::TempDir,
    /// Extra environment for every client command (time zone, machine policy).
    env: Vec<(String, String)>,
}

impl Fleet {
    /// A repository with `sample` 1.0.0 published.
    fn new() -> Self {
        let publisher = Publisher::new();
        publish(&publisher, "1.0.0", &[]);
        let server = Server::start(&publisher.repo());
        Fleet {
            publisher,
            server,
            home: temp_dir(),
            env: vec![("TZ".into(), "UTC".into())],
        }
    }

    fn publish(&self, version: &str, extra: &[&str]) {
        publish(&self.publisher, version, extra);
    }

    /// Runs `appupdate` with the fleet's environment.
    fn appupdate(&self, args: &[&str]) -> Output {
        let mut command = Command::new(bin("appupdate"));
        command.args(args);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        run(&mut command)
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.appupdate(args);
        crate::harness::assert_succeeded(args, &output);
        text(&output.stdout)
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let stdout = self.ok(&all);
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }

    /// Installs `sample` into a new folder `name` with `extra` flags.
    fn install(&self, name: &str, extra: &[&str]) -> Client<'_> {
        let dir = self.home.path().join(name);
        let root = self.publisher.root_json();
        let mut args = vec![
            "install",
            "--url",
            &self.server.url,
            "--trusted-root",
            root.to_str().unwrap(),
            "--app",
            "sample",
            "--dir",
            dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.json(&args);
        Client { fleet: self, dir }
    }

    /// `appupdate release ACTION` for `sample` `version`.
    fn release(&self, action: &str, version: &str, extra: &[&str]) {
        let repo = self.publisher.repo();
        let keys = self.publisher.keys();
        let mut args = vec![
            "release",
            action,
            "--repo",
            repo.to_str().unwrap(),
            "--keys",
            keys.to_str().unwrap(),
            "--app",
            "sample",
            "--version",
            version,
        ];
        args.extend_from_slice(extra);
        self.ok(&args);
    }
}

fn publish(publisher: &Publisher, version: &str, extra: &[&str]) {
    publisher.publish(
        "sample",
        version,
        &[
            ("bin/app", APP_SCRIPT, true),
            ("x", version.as_bytes(), false),
        ],
        extra,
    );
}

struct Client<'f> {
    fleet: &'f Fleet,
    dir: PathBuf,
}

impl Client<'_> {
    fn dir(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    fn check(&self) -> serde_json::Value {
        self.fleet.json(&["check", "--dir", self.dir()])
    }

    fn update(&self) -> serde_json::Value {
        self.fleet.json(&["update", "--dir", self.dir()])
    }

    fn status(&self) -> serde_json::Value {
        self.fleet.json(&["status", "--dir", self.dir()])
    }

    fn current(&self) -> String {
        self.status()["current"].as_str().unwrap().to_string()
    }

    fn install_id(&self) -> String {
        self.status()["install_id"].as_str().unwrap().to_string()
    }

    /// `(version, reason)` of each held-back release in `check --json`, sorted.
    fn held_back(&self) -> Vec<(String, String)> {
        held_back(&self.check())
    }

    fn write_policy(&self, text: &str) {
        std::fs::write(self.dir.join("policy.toml"), text).unwrap();
    }
}

fn held_back(json: &serde_json::Value) -> Vec<(String, String)> {
    let mut held: Vec<(String, String)> = json["held_back"]
        .as_array()
        .unwrap_or_else(|| panic!("no held_back in {json}"))
        .iter()
        .map(|h| {
            (
                h["version"].as_str().unwrap().to_string(),
                h["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    held.sort();
    held
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    out.sort();
    out
}

/// The documented bucket (docs/rollout.md), computed here independently of the client.
fn bucket(install_id: &str, app: &str, version: &str) -> f64 {
    let digest = sha2::Sha256::digest(format!("appstart-rollout:{install_id}:{app}:{version}"));
    (u64::from_be_bytes(digest[..8].try_into().unwrap()) % 10_000) as f64 / 100.0
}

/// A local-time (UTC) update window that does not contain the present hour.
fn window_excluding_now() -> String {
    let hour = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600
        % 24;
    format!("{:02}:00-{:02}:00", (hour + 2) % 24, (hour + 3) % 24)
}

fn rfc3339_in(from_now: Duration) -> String {
    let at = SystemTime::now() + from_now;
    let secs = at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let days = (secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[test]
fn a_rollout_reaches_its_percentage_of_twenty_installs_then_all() {
    let fleet = Fleet::new();
    let clients: Vec<Client<'_>> = (0..20)
        .map(|i| fleet.install(&format!("c{i}"), &[]))
        .collect();
    let ids: Vec<String> = clients.iter().map(Client::install_id).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 20, "every install has its own id");
    assert!(
        ids.iter()
            .all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
    );

    fleet.publish("2.0.0", &["--rollout", "25"]);
    let mut in_wave = Vec::new();
    for (client, id) in clients.iter().zip(&ids) {
        let report = client.update();
        let took = report["to"] == "2.0.0";
        assert_eq!(
            took,
            bucket(id, "sample", "2.0.0") < 25.0,
            "install {id} follows the documented bucket"
        );
        if !took {
            assert_eq!(
                held_back(&report),
                pairs(&[("2.0.0", "rollout")]),
                "{report}"
            );
        }
        in_wave.push(took);
    }
    // Each install followed its documented bucket (above); the ids are random, so how many
    // took it is a draw of 20 at 25 %. The bound fails once in millions of runs: the earlier
    // 1 to 11 failed about once in 250 (no install at all 0.3 %, twelve or more 0.1 %; seen
    // once, 12 of 20).
    let taken = in_wave.iter().filter(|t| **t).count();
    assert!(taken <= 15, "{taken} of 20 took a 25 % rollout");

    fleet.release("rollout", "2.0.0", &["--percent", "100"]);
    for client in &clients {
        client.update();
        assert_eq!(client.current(), "2.0.0");
    }
}

#[test]
fn groups_and_install_ids_target_releases() {
    let fleet = Fleet::new();
    let staff = fleet.install("staff", &["--group", "staff", "--group", "qa"]);
    let other = fleet.install("other", &[]);
    let status = staff.status();
    assert_eq!(status["groups"], serde_json::json!(["staff", "qa"]));
    assert_eq!(status["channel"], "stable");
    assert_eq!(other.status()["groups"], serde_json::json!([]));

    fleet.publish("2.0.0", &["--groups", "staff"]);
    assert_eq!(staff.update()["to"], "2.0.0");
    assert_eq!(other.held_back(), pairs(&[("2.0.0", "group")]));
    assert_eq!(other.update()["to"], serde_json::Value::Null);

    let id = other.install_id();
    fleet.publish("3.0.0", &["--installs", &id]);
    assert_eq!(other.update()["to"], "3.0.0", "named by its install id");
    assert_eq!(staff.held_back(), pairs(&[("3.0.0", "group")]));
}

#[test]
fn a_paused_release_is_not_taken_until_resumed_and_installs_on_it_stay() {
    let fleet = Fleet::new();
    let early = fleet.install("early", &[]);
    let late = fleet.install("late", &[]);
    fleet.publish("2.0.0", &[]);
    assert_eq!(early.update()["to"], "2.0.0");

    fleet.release("pause", "2.0.0", &[]);
    assert_eq!(late.held_back(), pairs(&[("2.0.0", "paused")]));
    assert_eq!(late.update()["to"], serde_json::Value::Null);
    assert_eq!(late.current(), "1.0.0");
    assert_eq!(early.update()["to"], serde_json::Value::Null);
    assert_eq!(
        early.current(),
        "2.0.0",
        "an install on a paused release stays"
    );

    fleet.release("resume", "2.0.0", &[]);
    assert_eq!(late.update()["to"], "2.0.0");
}

#[test]
fn a_pulled_release_moves_the_installs_on_it_back() {
    let fleet = Fleet::new();
    let clients: Vec<Client<'_>> = (0..3)
        .map(|i| fleet.install(&format!("c{i}"), &[]))
        .collect();
    fleet.publish("2.0.0", &[]);
    for client in &clients[..2] {
        assert_eq!(client.update()["to"], "2.0.0");
    }
    fleet.release("pull", "2.0.0", &[]);
    for client in &clients[..2] {
        let report = client.update();
        assert_eq!(report["from"], "2.0.0");
        assert_eq!(report["to"], "1.0.0", "moved back: {report}");
        assert_eq!(client.current(), "1.0.0");
        let out = run(&mut Command::new(client.dir.join("appstart")));
        assert_eq!(text(&out.stdout).trim(), "app 1.0.0");
        let history = std::fs::read_to_string(client.dir.join("state/history.log")).unwrap();
        assert!(
            history.lines().any(|l| l.contains("update")
                && l.contains("from=2.0.0")
                && l.contains("to=1.0.0")),
            "{history}"
        );
    }
    assert_eq!(clients[2].held_back(), pairs(&[("2.0.0", "pulled")]));
    assert_eq!(clients[2].update()["to"], serde_json::Value::Null);

    fleet.publish("2.0.1", &[]);
    for client in &clients {
        assert_eq!(client.update()["to"], "2.0.1");
    }
}

#[test]
fn from_requirements_chain_through_releases_and_stop_ends_a_run() {
    let fleet = Fleet::new();
    let client = fleet.install("c", &[]);
    fleet.publish("2.0.0", &[]);
    fleet.publish("3.0.0", &["--from", ">=2.0.0", "--stop"]);
    fleet.publish("4.0.0", &["--from", ">=3.0.0"]);

    let check = client.check();
    assert_eq!(check["available"], "2.0.0", "{check}");
    assert_eq!(
        held_back(&check),
        pairs(&[("3.0.0", "from-version"), ("4.0.0", "from-version")])
    );

    let report = client.update();
    assert_eq!(report["from"], "1.0.0");
    assert_eq!(report["to"], "3.0.0", "{report}");
    assert_eq!(report["steps"], serde_json::json!(["2.0.0", "3.0.0"]));
    assert_eq!(report["stopped_at"], "3.0.0");
    assert_eq!(client.current(), "3.0.0");
    assert!(
        client.dir.join("versions/1.0.0").exists(),
        "a chain keeps the version it started from: its process may still run it"
    );

    // 3.0.0 must run once (its migrations) before anything newer is applied.
    assert_eq!(client.held_back(), pairs(&[("4.0.0", "stop")]));
    assert_eq!(client.update()["to"], serde_json::Value::Null);
    let out = run(&mut Command::new(client.dir.join("appstart")));
    assert_eq!(text(&out.stdout).trim(), "app 3.0.0");

    let report = client.update();
    assert_eq!(report["to"], "4.0.0", "{report}");
    assert_eq!(report["steps"], serde_json::json!(["4.0.0"]));

    // A fresh install takes the newest release: it has no version to migrate from.
    let fresh = fleet.install("fresh", &[]);
    assert_eq!(fresh.current(), "4.0.0");
}

#[test]
fn switching_channel_takes_the_newest_of_the_new_channel_even_if_lower() {
    let fleet = Fleet::new();
    let client = fleet.install("c", &[]);
    fleet.publish("1.1.0", &[]);
    fleet.publish("2.0.0-beta.1", &["--channel", "beta"]);
    assert_eq!(client.update()["to"], "1.1.0");

    fleet.ok(&["channel", "--dir", client.dir(), "beta"]);
    assert_eq!(client.status()["channel"], "beta");
    assert_eq!(client.update()["to"], "2.0.0-beta.1");

    fleet.ok(&["channel", "--dir", client.dir(), "stable"]);
    let check = client.check();
    assert_eq!(check["available"], "1.1.0", "{check}");
    let report = client.update();
    assert_eq!(report["from"], "2.0.0-beta.1");
    assert_eq!(report["to"], "1.1.0");
    let out = run(&mut Command::new(client.dir.join("appstart")));
    assert_eq!(text(&out.stdout).trim(), "app 1.1.0");
    assert_eq!(client.update()["to"], serde_json::Value::Null, "arrived");
    let history = std::fs::read_to_string(client.dir.join("state/history.log")).unwrap();
    assert!(
        history.contains("from=beta") && history.contains("to=stable"),
        "{history}"
    );
}

#[test]
fn a_critical_release_bypasses_the_update_window_and_rollout() {
    let fleet = Fleet::new();
    let client = fleet.install("c", &[]);
    client.write_policy(&format!("window = \"{}\"\n", window_excluding_now()));
    fleet.publish("2.0.0", &[]);
    assert_eq!(client.held_back(), pairs(&[("2.0.0", "window")]));
    assert_eq!(client.update()["to"], serde_json::Value::Null);

    fleet.publish("3.0.0", &["--critical", "--rollout", "0"]);
    let check = client.check();
    assert_eq!(check["available"], "3.0.0", "{check}");
    assert_eq!(check["critical"], true);
    let report = client.update();
    assert_eq!(report["to"], "3.0.0");
    assert_eq!(report["critical"], true);

    // Not past `updates = false`.
    client.write_policy("updates = false\n");
    fleet.publish("4.0.0", &["--critical"]);
    assert_eq!(client.held_back(), pairs(&[("4.0.0", "policy")]));
    assert_eq!(client.update()["to"], serde_json::Value::Null);
}

#[test]
fn after_its_expiry_an_install_on_a_release_takes_its_update_as_critical() {
    let fleet = Fleet::new();
    let client = fleet.install("c", &[]);
    // Long enough for two publishes, an update and a check on a slow machine.
    let expires = rfc3339_in(Duration::from_secs(20));
    fleet.publish("2.0.0", &["--expires", &expires]);
    assert_eq!(client.update()["to"], "2.0.0");
    fleet.publish("3.0.0", &["--rollout", "0"]);
    let check = client.check();
    assert_eq!(check["available"], serde_json::Value::Null, "{check}");
    assert_eq!(held_back(&check), pairs(&[("3.0.0", "rollout")]));
    std::thread::sleep(Duration::from_secs(21));
    let check = client.check();
    assert_eq!(check["available"], "3.0.0", "{check}");
    assert_eq!(check["critical"], true);
    assert_eq!(client.update()["to"], "3.0.0");
}

#[test]
fn check_shows_the_custom_data_of_the_offered_release() {
    let fleet = Fleet::new();
    let client = fleet.install("c", &[]);
    let file = fleet.home.path().join("custom.json");
    std::fs::write(&file, r#"{"licence": "pro", "notes": {"en": "Faster"}}"#).unwrap();
    fleet.publish(
        "2.0.0",
        &[
            "--custom",
            "tier=gold",
            "--custom-file",
            file.to_str().unwrap(),
        ],
    );
    let check = client.check();
    assert_eq!(check["available"], "2.0.0");
    assert_eq!(
        check["custom"],
        serde_json::json!({"tier": "gold", "licence": "pro", "notes": {"en": "Faster"}})
    );
}

#[test]
fn check_lists_every_held_back_reason() {
    let fleet = Fleet::new();
    let client = fleet.install("c", &[]);
    client.write_policy(&format!(
        "pin = \"<7.0.0\"\nwindow = \"{}\"\n",
        window_excluding_now()
    ));
    fleet.publish("1.5.0", &[]);
    fleet.publish("2.0.0", &["--rollout", "0"]);
    fleet.publish("3.0.0", &[]);
    fleet.release("pause", "3.0.0", &[]);
    fleet.publish("4.0.0", &[]);
    fleet.release("pull", "4.0.0", &[]);
    fleet.publish("5.0.0", &["--groups", "elsewhere"]);
    fleet.publish("6.0.0", &["--from", ">=5.0.0"]);
    fleet.publish("7.0.0", &[]);
    let check = client.check();
    assert_eq!(check["available"], serde_json::Value::Null, "{check}");
    assert_eq!(
        held_back(&check),
        pairs(&[
            ("1.5.0", "window"),
            ("2.0.0", "rollout"),
            ("3.0.0", "paused"),
            ("4.0.0", "pulled"),
            ("5.0.0", "group"),
            ("6.0.0", "from-version"),
            ("7.0.0", "policy"),
        ])
    );
}

#[test]
fn every_policy_key_is_obeyed_and_a_bad_policy_changes_nothing() {
    let fleet = Fleet::new();
    let client = fleet.install("c", &[]);
    fleet.publish("1.4.1", &[]);
    fleet.publish("2.0.0", &[]);

    // updates = false
    client.write_policy("updates = false\nreceipts = false\n");
    assert_eq!(
        client.held_back(),
        pairs(&[("1.4.1", "policy"), ("2.0.0", "policy")])
    );
    assert_eq!(client.update()["to"], serde_json::Value::Null);
    let status = client.status();
    assert_eq!(status["policy"]["updates"], false);
    assert_eq!(status["policy"]["receipts"], false);
    assert!(
        status["policy"]["sources"][0]
            .as_str()
            .unwrap()
            .ends_with("policy.toml")
    );

    // pin
    client.write_policy("pin = \"1.4\"\n");
    assert_eq!(client.held_back(), pairs(&[("2.0.0", "policy")]));
    assert_eq!(client.update()["to"], "1.4.1");
    assert_eq!(client.status()["policy"]["pin"], "1.4");

    // channel
    client.write_policy("channel = \"stable\"\n");
    let out = fleet.appupdate(&["channel", "--dir", client.dir(), "beta"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("policy.toml"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(client.status()["channel"], "stable");

    // A malformed policy: an error naming it, nothing changed.
    client.write_policy("window = \"tonight\"\n");
    let before = tree_snapshot(&client.dir);
    let out = fleet.appupdate(&["update", "--dir", client.dir()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("policy.toml") && stderr.contains("window"),
        "{stderr}"
    );
    let after = tree_snapshot(&client.dir);
    let changed: Vec<&String> = after
        .iter()
        .filter(|(path, entry)| before.get(*path) != Some(entry))
        .map(|(path, _)| path)
        .filter(|path| *path != "state/history.log" && *path != "state/lock")
        .collect();
    assert!(changed.is_empty(), "changed: {changed:?}");
    // `status` also refuses to guess the policy in force.
    let out = fleet.appupdate(&["status", "--dir", client.dir()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("policy.toml"));

    // window: see a_critical_release_bypasses_the_update_window_and_rollout.
    client.write_policy(&format!("window = \"{}\"\n", window_excluding_now()));
    assert_eq!(client.held_back(), pairs(&[("2.0.0", "window")]));
    std::fs::remove_file(client.dir.join("policy.toml")).unwrap();
    assert_eq!(client.update()["to"], "2.0.0");
}

#[test]
fn a_machine_wide_policy_wins_over_the_install_folders() {
    let mut fleet = Fleet::new();
    let machine = fleet.home.path().join("machine-policy.toml");
    std::fs::write(&machine, "pin = \"1\"\n").unwrap();
    fleet.env.push((
        "APPSTART_MACHINE_POLICY".into(),
        machine.to_str().unwrap().into(),
    ));
    let client = fleet.install("c", &[]);
    client.write_policy("pin = \"2\"\n");
    fleet.publish("1.1.0", &[]);
    fleet.publish("2.0.0", &[]);
    assert_eq!(client.held_back(), pairs(&[("2.0.0", "policy")]));
    assert_eq!(client.update()["to"], "1.1.0");
    let status = client.status();
    assert_eq!(status["policy"]["pin"], "1");
    assert_eq!(
        status["policy"]["sources"][0].as_str().unwrap(),
        machine.to_str().unwrap()
    );
}

#[test]
fn rollout_rings_move_an_install_earlier_or_later() {
    let fleet = Fleet::new();
    let client = fleet.install("c", &[]);
    let id = client.install_id();
    let b = bucket(&id, "sample", "2.0.0");
    if b < 0.04 {
        eprintln!("skipping: bucket {b} leaves no room below it");
        return;
    }
    // Just above half the bucket: early (bucket / 2) is in, normal is not.
    let percent = format!("{:.2}", (b / 2.0 + 0.02).min(b - 0.01));
    fleet.publish("2.0.0", &["--rollout", &percent]);
    assert_eq!(client.held_back(), pairs(&[("2.0.0", "rollout")]));
    client.write_policy("rollout = \"early\"\n");
    assert_eq!(client.check()["available"], "2.0.0");
    // Late: 50 + bucket / 2, never in below 50 %.
    client.write_policy("rollout = \"late\"\n");
    fleet.release("rollout", "2.0.0", &["--percent", "49.99"]);
    assert_eq!(client.held_back(), pairs(&[("2.0.0", "rollout")]));
    assert_eq!(client.status()["policy"]["rollout"], "late");
}

#[test]
fn the_app_declines_releases_through_on_found_and_the_poller_relaunches_after_a_critical_one() {
    let fleet = Fleet::new();
    let dir = fleet.home.path().join("app");
    publish_sample_app(&fleet, "1.0.0", &[]);
    let root = fleet.publisher.root_json();
    fleet.ok(&[
        "install",
        "--url",
        &fleet.server.url,
        "--trusted-root",
        root.to_str().unwrap(),
        "--app",
        "sample-app",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    publish_sample_app(&fleet, "2.0.0", &["--custom", "tier=free", "--critical"]);
    publish_sample_app(&fleet, "1.5.0", &["--custom", "tier=pro", "--critical"]);
    // The app declines 2.0.0, takes 1.5.0 (critical: the poller asks for a restart although
    // the app itself does not, and the app's main thread restarts, never the poller's
    // thread), and then exits once it runs 1.5.0.
    let output = run(Command::new(dir.join("appstart")).args([
        "--poll-ms",
        "200",
        "--no-restart",
        "--decline-unless",
        "tier=pro",
        "--until-version",
        "1.5.0",
        "--max-secs",
        "30",
    ]));
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(stdout.contains("declined 2.0.0"), "{stdout}");
    assert!(stdout.contains("critical: true"), "{stdout}");
    assert!(
        stdout.contains("the poller asks for a restart (critical update)"),
        "the restart comes from the app's main thread: {stdout}"
    );
    assert!(stdout.contains("sample-app 1.5.0"), "{stdout}");
    assert!(!stdout.contains("sample-app 2.0.0"), "{stdout}");
}

fn publish_sample_app(fleet: &Fleet, version: &str, extra: &[&str]) {
    let source = fleet.home.path().join(format!("src-{version}"));
    std::fs::create_dir_all(source.join("bin")).unwrap();
    std::fs::copy(bin("sample-app"), source.join("bin/sample-app")).unwrap();
    std::fs::create_dir_all(source.join("share")).unwrap();
    std::fs::write(source.join("share/message.txt"), version).unwrap();
    let repo = fleet.publisher.repo();
    let keys = fleet.publisher.keys();
    let mut args = vec![
        "publish",
        "--repo",
        repo.to_str().unwrap(),
        "--keys",
        keys.to_str().unwrap(),
        "--app",
        "sample-app",
        "--version",
        version,
        "--exe",
        "bin/sample-app",
        "--platform",
        "any",
    ];
    args.extend_from_slice(extra);
    args.push(source.to_str().unwrap());
    fleet.ok(&args);
}

#[test]
fn a_rollout_schedule_is_read_against_the_clients_clock() {
    let fleet = Fleet::new();
    let client = fleet.install("c", &[]);
    // Nobody now; everybody 12 seconds after publishing.
    fleet.publish("2.0.0", &["--rollout-schedule", "0%@0h,100%@12s"]);
    let published = std::time::Instant::now();
    let listed: serde_json::Value = serde_json::from_str(
        fleet
            .ok(&[
                "release",
                "list",
                "--repo",
                fleet.publisher.repo().to_str().unwrap(),
                "--json",
            ])
            .trim(),
    )
    .unwrap();
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == "2.0.0")
        .unwrap();
    assert_eq!(entry["rollout"]["schedule"].as_array().unwrap().len(), 2);
    let check = client.check();
    if published.elapsed() < Duration::from_secs(10) {
        assert_eq!(held_back(&check), pairs(&[("2.0.0", "rollout")]), "{check}");
    }
    std::thread::sleep(Duration::from_secs(13).saturating_sub(published.elapsed()));
    assert_eq!(client.update()["to"], "2.0.0");
}
