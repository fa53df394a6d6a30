//! The module walls of `../shared/design.md`, read from the source: every `crate::…` path
//! a file under `src/` names (in `use` lines, grouped `use crate::{…}` forms, and paths
//! written inline) is checked against what its top-level module may use, and no two
//! top-level modules may use each other. A wall crossed, or a new cycle, fails here, so
//! the map cannot rot silently.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each top-level module may use, as path prefixes below `crate::`. The CLI and its
/// settings sit on top and may use everything.
const ALLOWED: &[(&str, &[&str])] = &[
    ("plan", &[]),
    ("mask", &["plan", "compile"]),
    ("compile", &["plan", "job_api"]),
    ("job_api", &[]),
    ("executor", &["compile", "job_api", "mask"]),
    ("report", &["executor::events", "job_api::types", "mask"]),
    ("state", &["executor::events", "job_api::types", "mask"]),
    ("emulator", &["job_api::types", "job_api::rules"]),
    ("notify", &["executor::events", "job_api::types", "mask"]),
];

/// Crossings the code still has, each a known debt with its reason. The test fails if
/// one disappears without being struck from this list, so the list only shrinks.
const KNOWN_CROSSINGS: &[(&str, &str)] = &[];

/// Pairs of top-level modules that still use each other, each a known debt.
const KNOWN_CYCLES: &[&str] = &[];

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && !is_test_code(&path) {
            out.push(path);
        }
    }
}

/// Unit tests kept in files of their own (`step/tests.rs`, `compile/encoding_tests/`):
/// tests may reach anywhere.
fn is_test_code(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "tests.rs")
        || path
            .components()
            .any(|c| c.as_os_str().to_string_lossy().ends_with("_tests"))
}

/// The code of a file without its `#[cfg(test)]` module (tests may reach anywhere) and
/// without comments.
fn code_of(text: &str) -> String {
    let cut = text.find("#[cfg(test)]").unwrap_or(text.len());
    text[..cut]
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::a::b` path named in `code`, as `a::b` (two segments at most), with
/// grouped imports expanded.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let consumed = expand("", after, &mut out);
        rest = &after[consumed.max(1)..];
    }
    out.retain(|p| !p.is_empty());
    out
}

/// Reads one path (`a::b`, `a::{b, c::{d}}`, `{a, b}`) at the start of `text` below
/// `prefix`, adding each leaf; returns how many bytes it read.
fn expand(prefix: &str, text: &str, out: &mut BTreeSet<String>) -> usize {
    let head: String = text
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    let joined = if prefix.is_empty() {
        head.trim_end_matches(':').to_owned()
    } else if head.is_empty() {
        prefix.to_owned()
    } else {
        format!("{prefix}::{}", head.trim_end_matches(':'))
    };
    let after = &text[head.len()..];
    if let Some(group) = after.strip_prefix('{') {
        let end = matching_brace(group);
        for item in split_top_level(&group[..end]) {
            let item = item.trim();
            expand(&joined, item, out);
        }
        head.len() + 1 + end
    } else {
        out.insert(two_segments(&joined));
        head.len()
    }
}

fn matching_brace(text: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    text.len()
}

fn split_top_level(text: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&text[start..]);
    items.into_iter().filter(|s| !s.trim().is_empty()).collect()
}

fn two_segments(path: &str) -> String {
    let clean: String = path
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    clean
        .split("::")
        .filter(|s| !s.is_empty() && *s != "self")
        .take(2)
        .collect::<Vec<_>>()
        .join("::")
}

/// `src/job_api/client/api.rs` → `job_api`; `src/graph.rs` → `graph`.
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    first.trim_end_matches(".rs").to_owned()
}

/// What crosses a wall (`(from module, named path)`), and which top-level modules each
/// module uses.
struct Survey {
    crossed: BTreeSet<(String, String)>,
    uses: BTreeMap<String, BTreeSet<String>>,
}

fn crossings() -> Survey {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut crossed = BTreeSet::new();
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let module = top_module(&src, &file);
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for path in crate_paths(&code_of(&text)) {
            let target = path.split("::").next().unwrap_or_default().to_owned();
            if target == module {
                continue;
            }
            uses.entry(module.clone()).or_default().insert(target);
            if let Some(may) = allowed.get(module.as_str()) {
                let ok = may
                    .iter()
                    .any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}::")));
                if !ok {
                    crossed.insert((module.clone(), path));
                }
            }
        }
    }
    Survey { crossed, uses }
}

#[test]
fn walls_hold() {
    let Survey { crossed, .. } = crossings();
    let known: BTreeSet<(String, String)> = KNOWN_CROSSINGS
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    let new: Vec<_> = crossed.difference(&known).collect();
    let gone: Vec<_> = known.difference(&crossed).collect();
    assert!(
        new.is_empty(),
        "walls crossed (module → what it uses):\n{}",
        new.iter()
            .map(|(a, b)| format!("  {a} → crate::{b}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        gone.is_empty(),
        "no longer crossed, strike from KNOWN_CROSSINGS: {gone:?}"
    );
}

#[test]
fn no_two_top_level_modules_use_each_other() {
    let Survey { uses, .. } = crossings();
    let mut pairs = Vec::new();
    for (a, targets) in &uses {
        for b in targets {
            if a < b && uses.get(b).is_some_and(|t| t.contains(a)) {
                pairs.push(format!("{a} ↔ {b}"));
            }
        }
    }
    let known: Vec<String> = KNOWN_CYCLES.iter().map(|p| (*p).to_owned()).collect();
    assert_eq!(
        pairs, known,
        "modules that use each other (left) differ from the known debts (right)"
    );
}

#[test]
fn the_reader_sees_every_form_of_import() {
    let code = "use crate::a::b;\nuse crate::{c::d, e::{f, g}};\nlet x = crate::h::i::j();\nuse crate::k::{l, m::n};";
    let found = crate_paths(code);
    for want in ["a::b", "c::d", "e::f", "e::g", "h::i", "k::l", "k::m"] {
        assert!(found.contains(want), "{want} not in {found:?}");
    }
}
