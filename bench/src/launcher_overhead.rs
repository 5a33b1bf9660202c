//! Launcher overhead: starting a trivial app through `appstart` versus starting it directly.
//!
//! Usage: `cargo build --release --workspace && target/release/launcher-overhead [RUNS]`
//!
//! Both variants run alternately in one process (so machine noise hits both alike) and the
//! median of each is reported with the difference. The trivial app is `/bin/true`, copied into
//! a version folder. Also prints the size of the launcher binary it measured.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let bin_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
        .unwrap_or_default();
    let launcher = bin_dir.join("appstart");
    if !launcher.exists() {
        eprintln!(
            "{} is missing: run `cargo build --release --workspace` first",
            launcher.display()
        );
        std::process::exit(2);
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| fail(&format!("temp dir: {e}")));
    let root = dir.path();
    let app = root.join("versions/1.0.0/true");
    std::fs::create_dir_all(root.join("versions/1.0.0")).unwrap_or_else(|e| fail(&e.to_string()));
    std::fs::copy("/bin/true", &app).unwrap_or_else(|e| fail(&format!("copy /bin/true: {e}")));
    std::fs::copy(&launcher, root.join("appstart")).unwrap_or_else(|e| fail(&e.to_string()));
    std::fs::write(
        root.join("appstart.toml"),
        "current = \"1.0.0\"\nexecutable = \"true\"\n",
    )
    .unwrap_or_else(|e| fail(&e.to_string()));

    let mut direct = Vec::with_capacity(runs);
    let mut through = Vec::with_capacity(runs);
    for _ in 0..runs {
        direct.push(time(&mut Command::new(&app)));
        through.push(time(&mut Command::new(root.join("appstart"))));
    }
    let direct = median(&mut direct);
    let through = median(&mut through);
    let size = std::fs::metadata(&launcher).map(|m| m.len()).unwrap_or(0);
    println!("runs: {runs} of each, alternating");
    println!("direct /bin/true median:        {:8.3} ms", ms(direct));
    println!("through appstart median:        {:8.3} ms", ms(through));
    println!(
        "median overhead:                {:8.3} ms",
        ms(through.saturating_sub(direct))
    );
    println!(
        "launcher binary size:           {size} bytes ({:.2} MiB)",
        size as f64 / 1048576.0
    );
}

fn time(command: &mut Command) -> Duration {
    let start = Instant::now();
    let status = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| fail(&format!("running {command:?}: {e}")));
    let elapsed = start.elapsed();
    if !status.success() {
        fail(&format!("{command:?} failed: {status}"));
    }
    elapsed
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn fail(message: &str) -> ! {
    eprintln!("launcher-overhead: {message}");
    std::process::exit(1)
}
