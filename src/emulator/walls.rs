//! The emulator's walls, read from its own source: every `crate::…` and `super::…`
//! path in every file under `src/emulator/` (in `use` trees, grouped or not, and
//! inline), checked against what the emulator may use of baton (`job_api::types` and
//! `job_api::rules` only), the direction of its wings (http → exec → model), and the
//! absence of import cycles between its files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One source file: its module path below `emulator` (`["http", "v2"]`; a `mod.rs`
/// is its folder's path) and its text.
struct Source {
    module: Vec<String>,
    is_mod_rs: bool,
    text: String,
}

fn read_sources(dir: &Path, prefix: &[String], out: &mut Vec<Source>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("emulator folder is readable")
        .map(|e| e.expect("folder entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("file name")
            .to_owned();
        if path.is_dir() {
            let mut module = prefix.to_vec();
            module.push(name);
            read_sources(&path, &module, out);
        } else if let Some(stem) = name.strip_suffix(".rs") {
            // This file names forbidden paths in its own checks.
            if prefix.is_empty() && stem == "walls" {
                continue;
            }
            let is_mod_rs = stem == "mod";
            let mut module = prefix.to_vec();
            if !is_mod_rs {
                module.push(stem.to_owned());
            }
            let text = std::fs::read_to_string(&path).expect("source file is readable");
            out.push(Source {
                module,
                is_mod_rs,
                text,
            });
        }
    }
}

/// The text without `//` comments, split into the part before the first
/// `#[cfg(test)]` and the rest (where `super::` names the file itself).
fn code_parts(text: &str) -> (String, String) {
    let mut main = String::new();
    let mut tests = String::new();
    let mut in_tests = false;
    for line in text.lines() {
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        if code.trim_start().starts_with("#[cfg(test)]") {
            in_tests = true;
        }
        let target = if in_tests { &mut tests } else { &mut main };
        target.push_str(code);
        target.push('\n');
    }
    (main, tests)
}

/// Expands a `use` tree (`a::{b, c::{d, self}}`) into full paths.
fn expand_tree(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or(&tree);
        let path = path.split("as").next().unwrap_or(path);
        return vec![path.trim_end_matches("::self").to_owned()];
    };
    let prefix = tree[..open].trim_end_matches("::");
    let inner = &tree[open + 1..tree.len().saturating_sub(1)];
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|part| {
            expand_tree(part).into_iter().map(|rest| {
                if rest == "self" {
                    prefix.to_owned()
                } else {
                    format!("{prefix}::{rest}")
                }
            })
        })
        .collect()
}

/// Every `crate::…` / `super::…` path in `code`: `use` trees expanded, then inline
/// paths in what is left.
fn paths_in(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = String::new();
    let mut remaining = code;
    while let Some(at) = find_use(remaining) {
        rest.push_str(&remaining[..at]);
        let after = &remaining[at..];
        let body_start = after.find("use ").map_or(0, |i| i + 4);
        let end = after.find(';').unwrap_or(after.len());
        let tree = &after[body_start..end];
        if tree.trim_start().starts_with("crate::") || tree.trim_start().starts_with("super::") {
            paths.extend(expand_tree(tree));
        }
        remaining = &after[(end + 1).min(after.len())..];
    }
    rest.push_str(remaining);
    for root in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = rest[from..].find(root) {
            let start = from + i;
            let before = rest[..start].chars().last();
            from = start + root.len();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let tail: String = rest[start..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            paths.push(tail.trim_end_matches(':').to_owned());
        }
    }
    paths
}

/// The start of the next `use` statement (`use`, `pub use`, `pub(crate) use`).
fn find_use(code: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = code[from..].find("use ") {
        let at = from + i;
        let before = code[..at].chars().last();
        if before.is_none_or(|c| c.is_whitespace() || c == ';' || c == '{' || c == ')') {
            return Some(at);
        }
        from = at + 4;
    }
    None
}

/// The emulator file a path lands in (its module path), or why it may not be used.
fn resolve(
    path: &str,
    from: &[String],
    modules: &BTreeSet<Vec<String>>,
    folders: &BTreeSet<Vec<String>>,
) -> Result<Option<Vec<String>>, String> {
    let segments: Vec<&str> = path.split("::").collect();
    let inside: Vec<String> = match segments.first() {
        Some(&"crate") => {
            if segments.get(1) != Some(&"emulator") {
                let allowed = segments.len() >= 3
                    && segments[1] == "job_api"
                    && matches!(segments[2], "types" | "rules");
                return if allowed {
                    Ok(None)
                } else {
                    Err(format!(
                        "uses `{path}`: only job_api::types and job_api::rules"
                    ))
                };
            }
            segments[2..].iter().map(|s| (*s).to_owned()).collect()
        }
        Some(&"super") => {
            let mut base = from[..from.len().saturating_sub(1)].to_vec();
            let mut rest = &segments[1..];
            while rest.first() == Some(&"super") {
                base.pop();
                rest = &rest[1..];
            }
            base.extend(rest.iter().map(|s| (*s).to_owned()));
            base
        }
        _ => return Ok(None),
    };
    let mut depth = inside.len();
    while depth > 0 {
        let prefix = inside[..depth].to_vec();
        if modules.contains(&prefix) {
            return Ok(Some(prefix));
        }
        if folders.contains(&prefix) {
            break;
        }
        depth -= 1;
    }
    Err(format!(
        "uses `{path}` through a `mod.rs` re-export: name the file that defines it"
    ))
}

/// Which wing a module belongs to: `http`, `exec`, `model`, or `top` for the files
/// beside `mod.rs`.
fn wing(module: &[String]) -> &str {
    match module.first().map(String::as_str) {
        Some(w @ ("http" | "exec" | "model")) if module.len() > 1 => w,
        _ => "top",
    }
}

/// Whether `from` may use `to`: http anything, exec its own wing, the model and the
/// shared state (`app`, which holds no HTTP state), the model only itself, and `app`
/// exec and the model; all may use the error type.
fn may_use(from: &[String], to: &[String]) -> bool {
    let to_wing = wing(to);
    let is_error = to == ["error"];
    if from == ["app"] {
        return matches!(to_wing, "exec" | "model") || is_error;
    }
    match wing(from) {
        "model" => to_wing == "model" || is_error,
        "exec" => matches!(to_wing, "exec" | "model") || is_error || to == ["app"],
        _ => true,
    }
}

/// Every wall crossed by `sources`, one message each.
fn violations(sources: &[Source]) -> Vec<String> {
    let modules: BTreeSet<Vec<String>> = sources
        .iter()
        .filter(|s| !s.is_mod_rs)
        .map(|s| s.module.clone())
        .collect();
    let folders: BTreeSet<Vec<String>> = sources
        .iter()
        .filter(|s| s.is_mod_rs)
        .map(|s| s.module.clone())
        .collect();
    let mut problems = Vec::new();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for source in sources {
        let name = if source.is_mod_rs {
            format!("{}/mod.rs", source.module.join("/"))
        } else {
            format!("{}.rs", source.module.join("/"))
        };
        let (main, tests) = code_parts(&source.text);
        if source.is_mod_rs {
            let stray = main.lines().map(str::trim).find(|l| {
                !(l.is_empty()
                    || l.starts_with("pub mod ")
                    || l.starts_with("mod ")
                    || l.starts_with("pub use ")
                    || l.starts_with("#["))
            });
            if let Some(line) = stray {
                problems.push(format!(
                    "{name}: a mod.rs only declares and re-exports: `{line}`"
                ));
            }
            for path in paths_in(&main).iter().chain(paths_in(&tests).iter()) {
                if let Err(why) = resolve(path, &source.module, &modules, &folders)
                    && path.starts_with("crate::")
                    && !path.starts_with("crate::emulator")
                {
                    problems.push(format!("{name}: {why}"));
                }
            }
            continue;
        }
        let mut found: Vec<String> = paths_in(&main);
        found.extend(
            paths_in(&tests)
                .into_iter()
                .filter(|p| p.starts_with("crate::")),
        );
        for path in found {
            match resolve(&path, &source.module, &modules, &folders) {
                Err(why) => problems.push(format!("{name}: {why}")),
                Ok(None) => {}
                Ok(Some(target)) if target == source.module => {}
                Ok(Some(target)) => {
                    if !may_use(&source.module, &target) {
                        let from = if source.module == ["app"] {
                            "app"
                        } else {
                            wing(&source.module)
                        };
                        problems.push(format!(
                            "{name}: the {from} wing may not use `{path}` ({})",
                            wing(&target)
                        ));
                    }
                    edges
                        .entry(source.module.clone())
                        .or_default()
                        .insert(target);
                }
            }
        }
    }
    if let Some(cycle) = find_cycle(&edges) {
        let names: Vec<String> = cycle.iter().map(|m| m.join("/")).collect();
        problems.push(format!("import cycle between files: {}", names.join(" → ")));
    }
    problems
}

/// A cycle in the file graph, as the files along it (first repeated at the end).
fn find_cycle(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<Vec<String>>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        marks: &mut BTreeMap<Vec<String>, Mark>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = stack.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = stack[start..].to_vec();
                cycle.push(node.clone());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.clone(), Mark::Open);
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, marks, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        marks.insert(node.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in edges.keys() {
        let mut stack = Vec::new();
        if let Some(cycle) = visit(node, edges, &mut marks, &mut stack) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn the_emulator_keeps_its_walls() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/emulator");
    let mut sources = Vec::new();
    read_sources(&root, &[], &mut sources);
    assert!(sources.len() > 20, "the emulator's files were not found");
    let problems = violations(&sources);
    assert!(
        problems.is_empty(),
        "walls crossed:\n{}",
        problems.join("\n")
    );
}

#[cfg(test)]
fn fake(module: &str, text: &str) -> Source {
    let is_mod_rs = module.ends_with("/mod") || module == "mod";
    let module: Vec<String> = module
        .split('/')
        .filter(|s| *s != "mod")
        .map(str::to_owned)
        .collect();
    Source {
        module,
        is_mod_rs,
        text: text.to_owned(),
    }
}

#[cfg(test)]
fn wings(extra: &[(&str, &str)]) -> Vec<Source> {
    let mut sources = vec![
        fake(
            "mod",
            "pub mod http;\npub mod model;\npub mod exec;\npub mod app;\n",
        ),
        fake("http/mod", "pub mod v2;\n"),
        fake("model/mod", "pub mod jobs;\npub mod scope;\n"),
        fake("exec/mod", "pub mod engine;\n"),
        fake("app", ""),
    ];
    for (module, text) in extra {
        sources.push(fake(module, text));
    }
    sources
}

#[test]
fn each_wall_is_seen() {
    let clean = wings(&[
        (
            "http/v2",
            "use crate::emulator::{exec::engine, model::{jobs, scope::Scope}};\n",
        ),
        (
            "exec/engine",
            "use crate::emulator::model::jobs::Job;\nuse crate::job_api::types::HostAddr;\n",
        ),
        (
            "model/jobs",
            "use super::scope::Scope;\nfn f() { crate::job_api::rules::check(); }\n",
        ),
        (
            "model/scope",
            "#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
        ),
    ]);
    assert_eq!(violations(&clean), Vec::<String>::new());

    let outside = wings(&[(
        "model/jobs",
        "use crate::{error::Error, job_api::types::HostAddr};\n",
    )]);
    assert!(violations(&outside)[0].contains("crate::error::Error"));
    let inline = wings(&[("exec/engine", "fn f() -> crate::plan::Plan { todo!() }\n")]);
    assert!(violations(&inline)[0].contains("crate::plan::Plan"));

    let upward = wings(&[
        ("model/jobs", "use crate::emulator::http::v2::Ctx;\n"),
        ("http/v2", ""),
    ]);
    assert!(violations(&upward)[0].contains("model wing may not use"));
    let sideways = wings(&[
        (
            "exec/engine",
            "fn f() { crate::emulator::http::v2::x(); }\n",
        ),
        ("http/v2", ""),
    ]);
    assert!(violations(&sideways)[0].contains("exec wing may not use"));

    let pair = wings(&[
        ("model/jobs", "use super::scope::Scope;\n"),
        ("model/scope", "use crate::emulator::model::jobs::Job;\n"),
    ]);
    assert!(violations(&pair).iter().any(|p| p.contains("import cycle")));
    let ring = wings(&[
        ("http/v2", "use crate::emulator::exec::engine;\n"),
        ("exec/engine", "use crate::emulator::app::App;\n"),
        ("app", "use crate::emulator::http::v2::Ctx;\n"),
    ]);
    let found = violations(&ring);
    assert!(found.iter().any(|p| p.contains("import cycle")));
    assert!(
        found
            .iter()
            .any(|p| p.contains("app.rs") && p.contains("may not use"))
    );

    let reexport = wings(&[("http/v2", "use crate::emulator::model::Jobs;\n")]);
    assert!(violations(&reexport)[0].contains("mod.rs"));
    let busy_mod = wings(&[("exec/mod", "pub mod engine;\nfn helper() {}\n")]);
    assert!(violations(&busy_mod)[0].contains("only declares"));
}
