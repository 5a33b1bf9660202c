//! The documentation (issue 17, item 10): `docs/` is an mdBook. Every relative link in the
//! book's pages and in the README must lead to a file of the repository, and every `#anchor`
//! to a heading of the page it names (mdBook's and GitHub's heading ids); every page must be
//! in `docs/SUMMARY.md`, or the book would not show it. `.ci/run` builds the book itself.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

/// The pages checked: every Markdown file in docs/, and the README.
fn pages() -> Vec<PathBuf> {
    let root = workspace();
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    pages.push(root.join("README.md"));
    pages
}

/// The text outside fenced code blocks and inline code spans.
fn prose(markdown: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Drop inline code: text between pairs of backticks.
        let mut in_code = false;
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
            } else if !in_code {
                out.push(c);
            }
        }
        out.push('\n');
    }
    out
}

/// The targets of inline links `[text](target)` in `markdown`.
fn links(markdown: &str) -> Vec<String> {
    let text = prose(markdown);
    let mut found = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        match after.find(')') {
            Some(end) => {
                let target = after[..end].split_whitespace().next().unwrap_or("");
                found.push(target.to_string());
                rest = &after[end..];
            }
            None => break,
        }
    }
    found
}

/// The ids mdBook (and GitHub) give the headings of `markdown`: lower case, letters, digits,
/// `-` and `_` kept, spaces made `-`, anything else dropped.
fn heading_ids(markdown: &str) -> BTreeSet<String> {
    let mut fenced = false;
    let mut ids = BTreeSet::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#').trim();
        let id: String = title
            .chars()
            .filter_map(|c| match c {
                c if c.is_alphanumeric() => Some(c.to_ascii_lowercase()),
                '-' | '_' => Some(c),
                c if c.is_whitespace() => Some('-'),
                _ => None,
            })
            .collect();
        ids.insert(id);
    }
    ids
}

fn broken_links() -> Vec<String> {
    let mut broken = Vec::new();
    for page in pages() {
        let markdown = std::fs::read_to_string(&page).unwrap();
        let folder = page.parent().unwrap();
        for target in links(&markdown) {
            if target.is_empty()
                || target.starts_with("http://")
                || target.starts_with("https://")
                || target.starts_with("mailto:")
            {
                continue;
            }
            let (file, anchor) = match target.split_once('#') {
                Some((file, anchor)) => (file, Some(anchor)),
                None => (target.as_str(), None),
            };
            let path = if file.is_empty() {
                page.clone()
            } else {
                folder.join(file)
            };
            if !path.exists() {
                broken.push(format!("{}: {target}: no such file", page.display()));
                continue;
            }
            if let Some(anchor) = anchor {
                let ids = heading_ids(&std::fs::read_to_string(&path).unwrap_or_default());
                if !ids.contains(anchor) {
                    broken.push(format!("{}: {target}: no such heading", page.display()));
                }
            }
        }
    }
    broken
}

#[test]
fn every_link_in_the_docs_and_readme_leads_somewhere() {
    let broken = broken_links();
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_check_finds_a_broken_file_and_a_broken_anchor() {
    // The checker itself: a page with one good and two bad links.
    let markdown = "# A title\n\n[ok](#a-title) [file](nope.md) [anchor](#missing)\n\
                    ```\n[in code](ignored.md)\n```\n";
    assert_eq!(links(markdown), ["#a-title", "nope.md", "#missing"]);
    assert!(heading_ids(markdown).contains("a-title"));
    assert!(!heading_ids(markdown).contains("missing"));
}

#[test]
fn every_page_of_the_docs_is_in_the_book() {
    let docs = workspace().join("docs");
    let summary = std::fs::read_to_string(docs.join("SUMMARY.md")).unwrap();
    let listed: BTreeSet<String> = links(&summary).into_iter().collect();
    let missing: Vec<String> = pages()
        .iter()
        .filter(|page| page.parent() == Some(docs.as_path()))
        .map(|page| page.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|name| name != "SUMMARY.md" && !listed.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "pages not in docs/SUMMARY.md: {missing:?}"
    );
}
