//! Shared pieces of the property tests: case counts and mutations of valid files.

use proptest::prelude::*;
use proptest::test_runner::Config;

/// Cases per property: 64 by default so CI stays quick; `PROPTEST_CASES=N` runs more.
pub fn cases() -> Config {
    if std::env::var_os("PROPTEST_CASES").is_some() {
        // proptest's default configuration reads PROPTEST_CASES.
        Config::default()
    } else {
        Config::with_cases(64)
    }
}

/// One edit of a text, at a character index taken modulo its length.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Insert(usize, char),
    Replace(usize, char),
    /// Cuts the text there, like a torn write.
    Truncate(usize),
    /// Repeats a slice, like a doubled line.
    Duplicate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    // Characters that matter to TOML are likelier than arbitrary ones.
    let character = prop_oneof![
        3 => prop::sample::select(vec![
            '"', '\'', '=', '[', ']', '{', '}', '.', ',', '#', '\n', '\\', '-', '9', ' ', '\t',
            '\r', '\0',
        ]),
        1 => any::<char>(),
    ];
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), character.clone()).prop_map(|(i, c)| Edit::Insert(i, c)),
        (any::<usize>(), character).prop_map(|(i, c)| Edit::Replace(i, c)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), any::<usize>()).prop_map(|(i, n)| Edit::Duplicate(i, n)),
    ]
}

/// `valid` with 1 to 8 random edits.
pub fn mutated(valid: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(edit(), 1..8).prop_map(move |edits| {
        let mut chars: Vec<char> = valid.chars().collect();
        for edit in edits {
            let len = chars.len().max(1);
            match edit {
                Edit::Delete(i) if !chars.is_empty() => {
                    chars.remove(i % len);
                }
                Edit::Insert(i, c) => chars.insert(i % (chars.len() + 1), c),
                Edit::Replace(i, c) if !chars.is_empty() => chars[i % len] = c,
                Edit::Truncate(i) => chars.truncate(i % (chars.len() + 1)),
                Edit::Duplicate(i, n) if !chars.is_empty() => {
                    let start = i % len;
                    let end = (start + n % 40).min(chars.len());
                    let copy: Vec<char> = chars[start..end].to_vec();
                    chars.splice(end..end, copy);
                }
                _ => {}
            }
        }
        chars.into_iter().collect()
    })
}
