//! Push (issue 18, item 7): `appupdate serve` announces each new timestamp version as
//! server-sent events at `/_appstart/push`, `appupdate repo push` names that URL in signed
//! metadata, and an app's `Poller` listens to it. Everything here is real: the server is
//! the `appupdate serve` process, the app is `sample-app` started through the `appstart`
//! launcher with an hourly interval, so only a push can make it update within a test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{
    DEADLINE, Publisher, Server, appupdate_json, bin, install, temp_dir, wait_with_deadline,
};

/// What the tests allow for an update after a publish; an hourly poll could never make it.
const PUSH_DEADLINE: Duration = Duration::from_secs(60);
/// A poll interval no test waits for.
const HOURLY: &str = "3600000";

fn publish(publisher: &Publisher, version: &str) {
    let binary = std::fs::read(bin("sample-app")).unwrap();
    publisher.publish(
        "sample-app",
        version,
        &[
            ("bin/app", &binary, true),
            ("share/message.txt", version.as_bytes(), false),
        ],
        &[],
    );
}

fn name_push_url(publisher: &Publisher, url: &str) -> serde_json::Value {
    appupdate_json(&[
        "repo",
        "push",
        "--repo",
        publisher.repo().to_str().unwrap(),
        "--keys",
        publisher.keys().to_str().unwrap(),
        "--url",
        url,
    ])
}

/// The app started through its launcher, its standard output collected as it comes.
struct App {
    child: Child,
    stdout: Arc<Mutex<String>>,
}

impl App {
    fn start(dir: &Path, args: &[&str]) -> App {
        let mut child = Command::new(dir.join("appstart"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .env("RUST_LOG", "info")
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let stdout = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stdout);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = out.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        App { child, stdout }
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `done` every 50 ms; panics with `what` after `deadline`.
fn wait_until(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < deadline, "{what} within {deadline:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn subscribed(server: &Server) -> usize {
    server
        .requests()
        .iter()
        .filter(|line| line.starts_with("GET /_appstart/push 200"))
        .count()
}

fn timestamp_fetches(server: &Server) -> usize {
    server
        .requests()
        .iter()
        .filter(|line| line.starts_with("GET /metadata/timestamp.json "))
        .count()
}

fn current(dir: &Path) -> String {
    let status = appupdate_json(&["status", "--dir", dir.to_str().unwrap()]);
    status["current"].as_str().unwrap().to_string()
}

fn timestamp_version(publisher: &Publisher) -> u64 {
    let bytes = std::fs::read(publisher.repo().join("metadata/timestamp.json")).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    value["signed"]["version"].as_u64().unwrap()
}

#[test]
fn a_push_makes_a_running_app_with_an_hourly_poll_update_within_seconds() {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let server = Server::start(&publisher.repo());
    let report = name_push_url(&publisher, &format!("{}/_appstart/push", server.url));
    assert_eq!(report["changed"], true, "{report}");
    let home = temp_dir();
    let dir = home.path().join("app");
    install(&publisher, &server.url, "sample-app", &dir);

    let mut app = App::start(
        &dir,
        &[
            "--poll-ms",
            HOURLY,
            "--until-version",
            "2.0.0",
            "--max-secs",
            "100",
        ],
    );
    // The poller subscribes from the metadata the install stored, before any round.
    wait_until("the app subscribes", DEADLINE, || subscribed(&server) >= 1);
    let checks_before = timestamp_fetches(&server);
    assert_eq!(checks_before, 1, "only the install's check so far");

    publish(&publisher, "2.0.0");
    let published = Instant::now();
    let status = wait_with_deadline(&mut app.child, PUSH_DEADLINE);
    let stdout = app.stdout();
    assert!(status.success(), "{status:?}: {stdout}");
    assert!(
        published.elapsed() < PUSH_DEADLINE,
        "took {:?}",
        published.elapsed()
    );
    assert!(stdout.contains("sample-app 1.0.0: 1.0.0"), "{stdout}");
    assert!(
        stdout.contains("sample-app: switched to 2.0.0"),
        "updated by the push: {stdout}"
    );
    assert_eq!(current(&dir), "2.0.0");
}

#[test]
fn when_the_push_server_is_gone_the_poller_still_updates_by_its_interval() {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let server = Server::start(&publisher.repo());
    // The push comes from a second server, killed once the app listens to it.
    let mut push_server = Server::start(&publisher.repo());
    name_push_url(&publisher, &format!("{}/_appstart/push", push_server.url));
    let home = temp_dir();
    let dir = home.path().join("app");
    install(&publisher, &server.url, "sample-app", &dir);

    let mut app = App::start(
        &dir,
        &[
            "--poll-ms",
            "1500",
            "--until-version",
            "2.0.0",
            "--max-secs",
            "100",
        ],
    );
    wait_until("the app subscribes", DEADLINE, || {
        subscribed(&push_server) >= 1
    });
    push_server.kill();
    publish(&publisher, "2.0.0");
    let status = wait_with_deadline(&mut app.child, PUSH_DEADLINE);
    let stdout = app.stdout();
    assert!(status.success(), "{status:?}: {stdout}");
    assert!(stdout.contains("sample-app: switched to 2.0.0"), "{stdout}");
    assert_eq!(current(&dir), "2.0.0");
}

/// A push server that lies and sends garbage, one behaviour per connection in turn.
fn hostile_push_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/push", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let turn = counter.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                    Connection: close\r\n\r\n";
                // A version far above anything published: it can only cause a check.
                let lie = "data: {\"timestamp_version\": 999999}\n\n";
                let _ = match turn % 4 {
                    // A lie, then a line that never ends.
                    0 => stream.write_all(head.as_bytes()).and_then(|()| {
                        stream.write_all(lie.as_bytes())?;
                        let endless = vec![b'a'; 64 * 1024];
                        for _ in 0..64 {
                            stream.write_all(&endless)?;
                        }
                        Ok(())
                    }),
                    // A lie, then an announcement that is not JSON.
                    1 => stream.write_all(format!("{head}{lie}data: {{not json\n\n").as_bytes()),
                    // Not an event stream at all.
                    2 => stream.write_all(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"),
                    // A lie, then an event over the size cap.
                    _ => stream.write_all(
                        format!("{head}{lie}{}", "data: xxxxxxxxxxxxxxxx\n".repeat(2000))
                            .as_bytes(),
                    ),
                };
                std::thread::sleep(Duration::from_millis(200));
            });
        }
    });
    (url, accepted)
}

#[test]
fn a_lying_or_garbled_push_costs_at_most_one_check_and_changes_nothing() {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let server = Server::start(&publisher.repo());
    let (push_url, accepted) = hostile_push_server();
    name_push_url(&publisher, &push_url);
    let home = temp_dir();
    let dir = home.path().join("app");
    install(&publisher, &server.url, "sample-app", &dir);
    let config_before = std::fs::read(dir.join("appstart.toml")).unwrap();
    let checks_before = timestamp_fetches(&server);

    let mut app = App::start(&dir, &["--poll-ms", HOURLY, "--max-secs", "100"]);
    // Every behaviour at least once (the subscriber backs off 1, 2, 4 s between them).
    wait_until("four push connections", DEADLINE, || {
        accepted.load(Ordering::SeqCst) >= 4
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        app.child.try_wait().unwrap().is_none(),
        "the app is still running: {}",
        app.stdout()
    );
    // Three lies: the first caused one verified check (which found nothing), the others
    // fell within the 30 s between push-triggered checks.
    assert_eq!(
        timestamp_fetches(&server) - checks_before,
        1,
        "{:?}",
        server.requests()
    );
    assert_eq!(
        std::fs::read(dir.join("appstart.toml")).unwrap(),
        config_before
    );
    assert_eq!(current(&dir), "1.0.0");
    // The push changes nothing, and stopping is still prompt: the app exits on its own.
    drop(app);
}

/// Reads from `stream` until `seen` holds `wanted`.
fn read_until(stream: &mut TcpStream, seen: &mut String, wanted: &str) {
    let start = Instant::now();
    let mut buffer = [0u8; 1024];
    while !seen.contains(wanted) {
        assert!(start.elapsed() < DEADLINE, "events: {seen:?}");
        match stream.read(&mut buffer) {
            Ok(0) => panic!("the server closed the stream: {seen:?}"),
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buffer[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("{e}"),
        }
    }
}

/// A subscription as appstart's client makes it: with `Connection: close`, so tiny_http hands
/// the connection to the push hub and frees its pool thread (serve/src/push.rs).
fn subscribe_raw(url: &str) -> TcpStream {
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    write!(
        stream,
        "GET /_appstart/push HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n\
        Connection: close\r\n\r\n"
    )
    .unwrap();
    stream
}

#[test]
fn serve_frames_announcements_as_server_sent_events_and_subscribers_do_not_starve_downloads() {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let server = Server::start(&publisher.repo());
    let version = timestamp_version(&publisher);

    let mut stream = subscribe_raw(&server.url);
    let mut seen = String::new();
    // The head and the current version at once.
    let announced = |version: u64| format!("data: {{\"timestamp_version\": {version}}}\n\n");
    read_until(&mut stream, &mut seen, &announced(version));
    let (head, body) = seen.split_once("\r\n\r\n").expect("a response head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    assert_eq!(
        body,
        format!("data: {{\"timestamp_version\": {version}}}\n\n")
    );

    // More subscribers than serve has worker threads (8): a download is still answered.
    let others: Vec<TcpStream> = (0..20).map(|_| subscribe_raw(&server.url)).collect();
    wait_until("21 subscribers", DEADLINE, || subscribed(&server) >= 21);
    let address = server.url.trim_start_matches("http://");
    let mut download = TcpStream::connect(address).unwrap();
    download
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        download,
        "GET /metadata/timestamp.json HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    download
        .read_to_string(&mut answer)
        .expect("answered while 21 streams are open");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A publish is announced to the open stream.
    publish(&publisher, "2.0.0");
    let newer = timestamp_version(&publisher);
    assert!(newer > version);
    let mut more = String::new();
    read_until(&mut stream, &mut more, &announced(newer));
    // Only keep-alive comments (the test may be slow enough for one) besides the event.
    assert_eq!(more.replace(": keep-alive\n\n", ""), announced(newer));
    drop(others);
}

#[test]
fn a_poller_listening_to_a_silent_push_server_stops_at_once() {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let server = Server::start(&publisher.repo());
    // Accepts, and never answers: the subscriber waits on it for up to 45 s.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/push", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    name_push_url(&publisher, &url);
    let home = temp_dir();
    let dir = home.path().join("app");
    install(&publisher, &server.url, "sample-app", &dir);

    let updater = updater_core::Updater::open(&dir).unwrap();
    let mut options = updater_core::PollerOptions::default();
    options.initial_delay = Duration::from_secs(3600);
    let poller = updater_core::Poller::spawn(updater, options, |_| {});
    wait_until("the subscriber connects", DEADLINE, || {
        accepted.load(Ordering::SeqCst) >= 1
    });
    let start = Instant::now();
    drop(poller);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "stopping took {:?}",
        start.elapsed()
    );
}

#[test]
fn repo_push_refuses_a_bad_url_before_signing_and_turns_off() {
    let publisher = Publisher::new();
    let repo = publisher.repo();
    let keys = publisher.keys();
    let timestamp = || std::fs::read(repo.join("metadata/timestamp.json")).unwrap();
    let before = timestamp();
    for bad in [
        "ftp://example.com/push",
        "http://exa mple.com",
        "push.example.com",
    ] {
        let output = crate::harness::appupdate(&[
            "repo",
            "push",
            "--repo",
            repo.to_str().unwrap(),
            "--keys",
            keys.to_str().unwrap(),
            "--url",
            bad,
        ]);
        let stderr = crate::harness::text(&output.stderr);
        assert!(!output.status.success(), "{bad}");
        assert!(
            stderr.contains("push URL") && stderr.contains(bad),
            "{bad}: {stderr}"
        );
        assert_eq!(timestamp(), before, "nothing signed for {bad}");
    }
    let url = "https://updates.example.com/_appstart/push";
    assert_eq!(name_push_url(&publisher, url)["changed"], true);
    assert_eq!(name_push_url(&publisher, url)["changed"], false);
    let off = appupdate_json(&[
        "repo",
        "push",
        "--repo",
        repo.to_str().unwrap(),
        "--keys",
        keys.to_str().unwrap(),
        "--off",
    ]);
    assert_eq!(off["changed"], true, "{off}");
    assert!(off["url"].is_null(), "{off}");
}
