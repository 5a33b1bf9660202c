//! Repositories in object storage (issue 18, item 5): `repo init`, `publish`, `repo
//! refresh`, `repo rotate` and `repo prune-packs` with `--repo s3://BUCKET/PREFIX`, against a
//! real S3-compatible server (moto, `pip install "moto[server]"`) started here on a free
//! loopback port. Clients read the bucket over plain HTTP from the server's own URL, as they
//! would through a CDN: install, run through the launcher, update. A publish killed half-way
//! through its uploads (the fault hook, just before `timestamp.json`) leaves clients on the
//! previous complete release; running it again completes it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{FAULT_HOOK_VARIABLE, bin, run, temp_dir, text};

const BUCKET: &str = "releases";
const PREFIX: &str = "apps/sample";

/// A moto S3 server on 127.0.0.1 with one bucket that anyone may read (a bucket policy, as
/// a public bucket or a CDN origin has), stopped on drop.
struct Moto {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl Moto {
    /// Starts moto. `None` (with the reason printed) when it is not installed, outside CI; in
    /// CI (`CI` set) a missing moto fails the test: `.ci/run` installs it.
    fn start() -> Option<Moto> {
        let installed = Command::new("moto_server")
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                std::env::var_os("CI").is_none(),
                "moto_server is not installed; .ci/run installs it with pip install \"moto[server]\""
            );
            eprintln!(
                "SKIPPED: moto_server is not installed (pip install \"moto[server]\") - s3:// repositories not checked"
            );
            return None;
        }
        let dir = temp_dir();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = std::fs::File::create(dir.path().join("moto.log")).expect("moto.log");
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start moto_server");
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "moto_server never listened on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // moto takes unsigned requests: make the bucket, and let anyone read its objects.
        let bucket = format!("{}/{BUCKET}", moto.endpoint);
        ureq::put(&bucket).send_empty().expect("create the bucket");
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{BUCKET}/*"}}]}}"#
        );
        ureq::put(&format!("{bucket}?policy"))
            .header("Content-Type", "application/json")
            .send(policy)
            .expect("set the bucket policy");
        Some(moto)
    }

    /// The URL clients install from: the bucket's prefix, read anonymously over HTTP.
    fn public_url(&self) -> String {
        format!("{}/{BUCKET}/{PREFIX}", self.endpoint)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A publisher working on `s3://BUCKET/PREFIX` with its keys and working copy.
struct S3Publisher {
    dir: tempfile::TempDir,
    endpoint: String,
}

impl S3Publisher {
    fn new(moto: &Moto) -> S3Publisher {
        let publisher = S3Publisher {
            dir: temp_dir(),
            endpoint: moto.endpoint.clone(),
        };
        let keys = publisher.keys();
        publisher.ok(&["keys", "generate", "--out", &keys]);
        publisher.ok(&["repo", "init", "--repo", &url(), "--keys", &keys]);
        publisher
    }

    fn keys(&self) -> String {
        self.dir.path().join("keys").display().to_string()
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// `appupdate ARGS` with the S3 environment, the working copy in the user cache folder
    /// (`XDG_CACHE_HOME`, the default place) and `env` added.
    fn appupdate(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = Command::new(bin("appupdate"));
        command.args(args);
        // Nothing from the machine's own AWS setup may reach the test's server.
        for name in [
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT",
            "AWS_ENDPOINT_URL_S3",
            "AWS_PROFILE",
            "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
        ] {
            command.env_remove(name);
        }
        command
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("XDG_CACHE_HOME", self.cache())
            .envs(env.iter().copied());
        run(&mut command)
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.appupdate(args, &[]);
        assert!(
            output.status.success(),
            "appupdate {args:?}: {}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
        text(&output.stdout)
    }

    /// `appupdate publish` of `sample` VERSION (one script printing its version).
    fn publish_args(&self, version: &str) -> Vec<String> {
        self.publish_args_with(version, &[])
    }

    /// [`S3Publisher::publish_args`] with `files` (path, content) added to the release.
    fn publish_args_with(&self, version: &str, files: &[(&str, &[u8])]) -> Vec<String> {
        let source = self.dir.path().join(format!("src-{version}"));
        std::fs::create_dir_all(source.join("bin")).unwrap();
        for (path, content) in files {
            std::fs::write(source.join(path), content).unwrap();
        }
        crate::harness::write_executable(
            &source.join("bin/app"),
            &format!("#!/bin/sh\necho \"app {version}\"\n"),
        );
        [
            "publish",
            "--repo",
            &url(),
            "--keys",
            &self.keys(),
            "--app",
            "sample",
            "--version",
            version,
            "--exe",
            "bin/app",
            "--platform",
            "any",
        ]
        .iter()
        .map(ToString::to_string)
        .chain([source.display().to_string()])
        .collect()
    }

    fn publish(&self, version: &str) -> String {
        let args = self.publish_args(version);
        self.ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// The working copy's first root, which clients are given to trust.
    fn root_json(&self) -> PathBuf {
        self.cache()
            .join("appstart/s3")
            .join(BUCKET)
            .join(PREFIX)
            .join("metadata/1.root.json")
    }
}

fn url() -> String {
    format!("s3://{BUCKET}/{PREFIX}")
}

fn install(publisher: &S3Publisher, moto: &Moto, dir: &Path) {
    let root = publisher.root_json();
    let output = run(Command::new(bin("appupdate")).args([
        "install",
        "--url",
        &moto.public_url(),
        "--trusted-root",
        root.to_str().unwrap(),
        "--app",
        "sample",
        "--dir",
        dir.to_str().unwrap(),
    ]));
    assert!(output.status.success(), "install: {}", text(&output.stderr));
}

fn run_app(dir: &Path) -> String {
    let output = run(&mut Command::new(dir.join("appstart")));
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout)
}

fn update(dir: &Path) -> Output {
    run(Command::new(bin("appupdate")).args(["update", "--dir", dir.to_str().unwrap()]))
}

/// The `Cache-Control` of a GET of `url`.
fn cache_control(url: &str) -> String {
    let response = ureq::get(url).call().expect("GET");
    response
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Keys under the prefix, read from the bucket's anonymous-free listing (signed requests are
/// not needed by moto).
fn keys_in_bucket(moto: &Moto) -> Vec<String> {
    let listing = ureq::get(&format!(
        "{}/{BUCKET}?list-type=2&prefix={PREFIX}/",
        moto.endpoint
    ))
    .call()
    .expect("list")
    .into_body()
    .read_to_string()
    .expect("listing");
    listing
        .split("<Key>")
        .skip(1)
        .filter_map(|part| part.split_once("</Key>"))
        .map(|(key, _)| key.trim_start_matches(&format!("{PREFIX}/")).to_string())
        .collect()
}

#[test]
fn publish_to_s3_install_over_http_update_and_upkeep() {
    let Some(moto) = Moto::start() else {
        return;
    };
    let publisher = S3Publisher::new(&moto);
    publisher.publish("1.0.0");

    let home = temp_dir();
    let dir = home.path().join("app");
    install(&publisher, &moto, &dir);
    assert_eq!(run_app(&dir).trim(), "app 1.0.0");

    // Cache headers, as a CDN in front of the bucket would see them.
    let keys = keys_in_bucket(&moto);
    let blob = keys
        .iter()
        .find(|k| k.starts_with("blobs/"))
        .expect("a blob");
    let base = moto.public_url();
    assert_eq!(
        cache_control(&format!("{base}/{blob}")),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(
        cache_control(&format!("{base}/metadata/timestamp.json")),
        "public, max-age=60"
    );
    assert_eq!(
        cache_control(&format!("{base}/metadata/1.root.json")),
        "public, max-age=31536000, immutable"
    );
    assert!(
        !keys
            .iter()
            .any(|k| k.contains(".publish.lock") || k.contains(".s3"))
    );

    // Another machine (a fresh working copy) publishes the next release.
    let second = S3Publisher {
        dir: temp_dir(),
        endpoint: moto.endpoint.clone(),
    };
    std::fs::create_dir_all(second.dir.path().join("keys")).unwrap();
    for entry in std::fs::read_dir(publisher.dir.path().join("keys")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            second.dir.path().join("keys").join(entry.file_name()),
        )
        .unwrap();
    }
    // With a file larger than an upload part: its blob and the pack go up in parts.
    let big = crate::harness::noise(7, 20 << 20);
    let args = second.publish_args_with("2.0.0", &[("big.bin", &big)]);
    second.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let out = update(&dir);
    assert!(out.status.success(), "update: {}", text(&out.stderr));
    assert_eq!(run_app(&dir).trim(), "app 2.0.0");
    let installed = std::fs::read_dir(dir.join("versions"))
        .unwrap()
        .map(|entry| entry.unwrap().path().join("big.bin"))
        .find(|path| path.exists())
        .expect("big.bin installed");
    assert!(
        std::fs::read(installed).unwrap() == big,
        "big.bin arrived whole"
    );

    // Upkeep through the first working copy, which is now behind the bucket.
    publisher.publish("3.0.0");
    let packs = |moto: &Moto| {
        keys_in_bucket(moto)
            .into_iter()
            .filter(|k| k.starts_with("packs/"))
            .count()
    };
    assert_eq!(packs(&moto), 2, "publish keeps two packs by default");
    let pruned = publisher.ok(&["repo", "prune-packs", "--repo", &url(), "--keep", "1"]);
    assert!(pruned.contains("1 packs removed"), "{pruned}");
    assert_eq!(packs(&moto), 1, "the pruned pack is gone from the bucket");
    publisher.ok(&[
        "repo",
        "refresh",
        "--repo",
        &url(),
        "--keys",
        &publisher.keys(),
    ]);
    let new_keys = publisher.dir.path().join("new-keys").display().to_string();
    publisher.ok(&["keys", "generate", "--out", &new_keys]);
    publisher.ok(&[
        "repo",
        "rotate",
        "--repo",
        &url(),
        "--keys",
        &publisher.keys(),
        "--new-keys",
        &new_keys,
    ]);
    assert!(keys_in_bucket(&moto).contains(&"metadata/2.root.json".to_string()));
    let out = update(&dir);
    assert!(
        out.status.success(),
        "update after rotation: {}",
        text(&out.stderr)
    );
    assert_eq!(run_app(&dir).trim(), "app 3.0.0");

    // A command that cannot work on a bucket yet says so (usage, exit 2).
    let out = publisher.appupdate(
        &[
            "repo",
            "export",
            "--repo",
            &url(),
            "--app",
            "sample",
            "--version",
            "1.0.0",
            "--out",
            "x",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not supported"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_publish_killed_before_its_timestamp_leaves_the_previous_release_and_reruns() {
    let Some(moto) = Moto::start() else {
        return;
    };
    let publisher = S3Publisher::new(&moto);
    publisher.publish("1.0.0");
    let home = temp_dir();
    let dir = home.path().join("app");
    install(&publisher, &moto, &dir);

    // Killed (SIGKILL, no cleanup) after the blobs, manifests, targets and snapshot are up,
    // just before timestamp.json: the widest window a crash can leave.
    let args = publisher.publish_args("2.0.0");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = publisher.appupdate(&args, &[(FAULT_HOOK_VARIABLE, "s3-uploaded-snapshot")]);
    assert!(!out.status.success(), "the fault hook kills the publish");
    let keys = keys_in_bucket(&moto);
    assert!(
        keys.contains(&"metadata/3.snapshot.json".to_string()),
        "{keys:?}"
    );

    // Clients still see 1.0.0, complete and verified.
    let out = update(&dir);
    assert_eq!(
        out.status.code(),
        Some(6),
        "nothing to update: {}",
        text(&out.stderr)
    );
    assert_eq!(run_app(&dir).trim(), "app 1.0.0");
    let fresh = home.path().join("fresh");
    install(&publisher, &moto, &fresh);
    assert_eq!(run_app(&fresh).trim(), "app 1.0.0");

    // Running the publish again completes it (the orphaned N.targets/N.snapshot are redone).
    publisher.ok(&args);
    let out = update(&dir);
    assert!(out.status.success(), "update: {}", text(&out.stderr));
    assert_eq!(run_app(&dir).trim(), "app 2.0.0");
}

#[test]
fn of_two_publishers_that_started_from_the_same_release_the_second_fails_as_locked() {
    use appstart_publish::{Expiry, PublishRequest, S3Repository};
    use updater_core::advanced::tuf::keys::KeyDir;

    let Some(moto) = Moto::start() else {
        return;
    };
    let first = S3Publisher::new(&moto);
    first.publish("1.0.0");
    // The second publisher: the library in this process, its settings given in code. Its
    // working copy is pulled at 1.0.0; while its own publish runs on it, the first
    // publisher publishes 2.0.0 completely.
    let second = temp_dir();
    let source = second.path().join("src");
    std::fs::create_dir_all(source.join("bin")).unwrap();
    crate::harness::write_executable(&source.join("bin/app"), "#!/bin/sh\necho \"app 2.1.0\"\n");
    let config = [
        ("aws_endpoint", moto.endpoint.as_str()),
        ("aws_access_key_id", "test"),
        ("aws_secret_access_key", "test"),
        ("aws_region", "us-east-1"),
        ("aws_allow_http", "true"),
    ];
    let bucket =
        S3Repository::open_with_config(&url(), second.path().join("cache"), &config).unwrap();
    let request = PublishRequest {
        app: "sample".into(),
        version: updater_core::VersionName::parse("2.1.0").unwrap(),
        executable: updater_core::RelativePath::parse("bin/app").unwrap(),
        channel: "stable".into(),
        platform: "any".into(),
        launcher: None,
        source,
        level: 3,
        delta_depth: 0,
        role: None,
        keep_packs: None,
        delta_time_limit: None,
        control: Default::default(),
        data: Default::default(),
        allow_prerelease: false,
        events: None,
        hooks: Default::default(),
    };
    let keys = KeyDir::new(first.keys());
    let err = bucket
        .change(false, |repository| {
            first.publish("2.0.0");
            repository.publish(&keys, &Expiry::default(), &request)
        })
        .unwrap_err();
    assert_eq!(err.code(), "locked", "{err}");
    assert!(
        err.to_string()
            .contains("s3://releases/apps/sample/metadata/3.targets.json"),
        "{err}"
    );

    // The first publisher's release is intact: installs get 2.0.0, verified.
    let home = temp_dir();
    let dir = home.path().join("app");
    install(&first, &moto, &dir);
    assert_eq!(run_app(&dir).trim(), "app 2.0.0");
    // Run again, the second publish starts from 2.0.0 and goes through.
    bucket
        .change(false, |repository| {
            repository.publish(&keys, &Expiry::default(), &request)
        })
        .unwrap();
    let out = update(&dir);
    assert!(out.status.success(), "update: {}", text(&out.stderr));
    assert_eq!(run_app(&dir).trim(), "app 2.1.0");
}
