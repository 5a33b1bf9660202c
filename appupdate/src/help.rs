//! What `--help` adds to the clap definitions in [`crate::cli`]: one example per command, and
//! the exit-code table at the foot of `appupdate --help`.
//!
//! Kept here, as a table keyed by command path, rather than as attributes in `cli.rs`, so the
//! definitions stay readable; a unit test below checks that every command has exactly one
//! example and that every option with a default shows it. The man pages and completions are
//! generated from the same [`command`].

use clap::{CommandFactory, FromArgMatches};

use crate::cli::Cli;

/// One example per command, by its path below `appupdate` ("" for `appupdate` itself).
const EXAMPLES: &[(&str, &str)] = &[
    ("", "appupdate update --dir ~/hello"),
    ("keys", "appupdate keys generate --out keys"),
    ("keys generate", "appupdate keys generate --out keys"),
    ("repo", "appupdate repo init --repo repo --keys keys"),
    (
        "repo init",
        "appupdate repo init --repo repo --keys keys --threshold root=2",
    ),
    (
        "repo rotate",
        "appupdate repo rotate --repo repo --keys keys --new-keys keys-2027",
    ),
    (
        "repo prune-packs",
        "appupdate repo prune-packs --repo repo --keep 3",
    ),
    (
        "repo export",
        "appupdate repo export --repo repo --app hello --version 1.4.0 --out /media/usb/hello-repo",
    ),
    (
        "repo delegate",
        "appupdate repo delegate --repo repo --keys keys --role team-a --paths 'hello/*' --key-file keys/team-a.pub",
    ),
    (
        "repo revoke-delegation",
        "appupdate repo revoke-delegation --repo repo --keys keys --role team-a",
    ),
    (
        "repo receipts",
        "appupdate repo receipts --repo repo --keys keys --url https://fleet.example.com",
    ),
    (
        "repo mirrors",
        "appupdate repo mirrors --repo repo --keys keys --url https://mirror-a.example.com/hello --url https://mirror-b.example.com/hello",
    ),
    (
        "repo push",
        "appupdate repo push --repo repo --keys keys --url https://updates.example.com/_appstart/push",
    ),
    (
        "repo refresh",
        "appupdate repo refresh --repo repo --keys keys",
    ),
    (
        "publish",
        "appupdate publish --repo repo --keys keys --app hello --version 1.1.0 --exe bin/hello build",
    ),
    ("release", "appupdate release list --repo repo --app hello"),
    (
        "release rollout",
        "appupdate release rollout --repo repo --keys keys --app hello --version 2.0.0 --percent 100",
    ),
    (
        "release pause",
        "appupdate release pause --repo repo --keys keys --app hello --version 2.0.0",
    ),
    (
        "release resume",
        "appupdate release resume --repo repo --keys keys --app hello --version 2.0.0",
    ),
    (
        "release pull",
        "appupdate release pull --repo repo --keys keys --app hello --version 2.0.0",
    ),
    (
        "release guard",
        "appupdate release guard --repo repo --keys keys --db fleet.db --app hello --version 2.0.0 --max-fallback-rate 2%",
    ),
    (
        "release list",
        "appupdate release list --repo repo --app hello",
    ),
    (
        "serve",
        "appupdate serve --repo repo --listen 127.0.0.1:8080",
    ),
    (
        "install",
        "appupdate install --url http://127.0.0.1:8080 --trusted-root repo/metadata/1.root.json --app hello --dir ~/hello",
    ),
    (
        "installer",
        "appupdate installer --repo repo --app hello --url https://example.com/repo --out hello-setup",
    ),
    ("check", "appupdate check --dir ~/hello --json"),
    ("update", "appupdate update --dir ~/hello --download-only"),
    ("status", "appupdate status --dir ~/hello"),
    ("channel", "appupdate channel --dir ~/hello beta"),
    (
        "settings",
        "appupdate settings --dir ~/hello --max-bandwidth 512K --metered pause",
    ),
    ("uninstall", "appupdate uninstall --dir ~/hello"),
    ("unskip", "appupdate unskip --dir ~/hello 2.0.0"),
    ("rollback", "appupdate rollback --dir ~/hello --to 1.0.0"),
    ("verify", "appupdate verify --dir ~/hello --repair"),
    ("fleet", "appupdate fleet --db fleet.db --app hello"),
    (
        "completions",
        "appupdate completions bash > /etc/bash_completion.d/appupdate",
    ),
    ("man", "appupdate man --out /usr/local/share/man/man1"),
    ("demo", "appupdate demo"),
];

/// The full command definition: [`Cli`] with the examples and the exit-code table.
pub fn command() -> clap::Command {
    with_examples(Cli::command(), "")
}

/// Parses the command line against [`command`]; exits 2 (usage) on a bad one, 0 after
/// printing `--help` or `--version`.
pub fn parse() -> Cli {
    command()
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches))
        .unwrap_or_else(|err| exit_for(&err))
}

/// Prints clap's message for `err` and exits with the code of the table.
fn exit_for(err: &clap::Error) -> ! {
    let _ = err.print();
    std::process::exit(exit_code_of(err).into())
}

fn exit_code_of(err: &clap::Error) -> u8 {
    if err.use_stderr() {
        crate::exit::USAGE
    } else {
        crate::exit::SUCCESS
    }
}

fn with_examples(command: clap::Command, path: &str) -> clap::Command {
    let mut footer = match example(path) {
        Some(example) => format!("Example:\n  {example}"),
        None => String::new(),
    };
    if path.is_empty() {
        footer = format!("{footer}\n\n{}", crate::exit::TABLE);
    }
    let command = command.after_help(footer);
    let names: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_string())
        .collect();
    names.into_iter().fold(command, |command, name| {
        let sub_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path} {name}")
        };
        command.mut_subcommand(&name, |sub| with_examples(sub, &sub_path))
    })
}

fn example(path: &str) -> Option<&'static str> {
    EXAMPLES
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(_, example)| *example)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command below `command` (clap's generated `help` commands aside), with its
    /// path, depth first.
    fn walk(command: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
        out.push((path.to_string(), command.clone()));
        for sub in command.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            let sub_path = if path.is_empty() {
                sub.get_name().to_string()
            } else {
                format!("{path} {}", sub.get_name())
            };
            walk(sub, &sub_path, out);
        }
    }

    fn all_commands() -> Vec<(String, clap::Command)> {
        let mut command = command();
        command.build();
        let mut out = Vec::new();
        walk(&command, "", &mut out);
        out
    }

    #[test]
    fn every_help_shows_an_example_and_every_default() {
        let commands = all_commands();
        assert!(commands.len() > 30, "walked only {}", commands.len());
        for (path, mut command) in commands {
            let help = command.render_long_help().to_string();
            assert!(
                help.contains("Example:\n  appupdate"),
                "`{path} --help`:\n{help}"
            );
            for arg in command.get_arguments() {
                let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values());
                if !takes_value || arg.is_hide_default_value_set() {
                    continue;
                }
                for default in arg.get_default_values() {
                    let shown = format!("[default: {}]", default.to_string_lossy());
                    assert!(
                        help.contains(&shown),
                        "`{path} --help` lacks {shown} for --{}:\n{help}",
                        arg.get_id()
                    );
                }
            }
        }
    }

    #[test]
    fn every_example_belongs_to_a_command_and_runs_it() {
        let commands = all_commands();
        for (path, example) in EXAMPLES {
            assert!(
                commands.iter().any(|(p, _)| p == path),
                "example for `{path}`, which is no command"
            );
            // The example parses: its flags exist and nothing required is missing.
            let words: Vec<&str> = example
                .split(" > ")
                .next()
                .unwrap_or(example)
                .split_whitespace()
                .map(|w| w.trim_matches('\''))
                .collect();
            assert!(
                example.starts_with(&format!("appupdate {path}")),
                "the example for `{path}` runs another command: {example}"
            );
            if let Err(err) = command().try_get_matches_from(&words) {
                panic!("the example for `{path}` does not parse: {example}\n{err}");
            }
        }
    }

    #[test]
    fn a_bad_command_line_is_a_usage_error_and_help_is_success() {
        let bad = command()
            .try_get_matches_from(["appupdate", "update", "--no-such-flag"])
            .unwrap_err();
        assert_eq!(exit_code_of(&bad), crate::exit::USAGE);
        assert_eq!(
            bad.exit_code(),
            i32::from(crate::exit::USAGE),
            "clap agrees"
        );
        let help = command()
            .try_get_matches_from(["appupdate", "update", "--help"])
            .unwrap_err();
        assert_eq!(exit_code_of(&help), crate::exit::SUCCESS);
    }

    #[test]
    fn an_installer_help_shows_an_example_too() {
        let help = crate::installer::InstallerCli::command()
            .render_long_help()
            .to_string();
        assert!(help.contains("Example:\n  hello-setup"), "{help}");
    }

    #[test]
    fn the_top_level_help_ends_with_the_exit_codes() {
        let help = command().render_long_help().to_string();
        assert!(help.contains(crate::exit::TABLE), "{help}");
    }
}
