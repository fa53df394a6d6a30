//! The side index that gives every semantic error a place in the plan file.
//!
//! serde_yaml has no spanned values, so after a successful typed parse the same text is
//! parsed once more with saphyr, whose nodes carry markers. A field path such as
//! `steps[2].needs[1]` is resolved by walking that tree. saphyr reports columns as
//! 0-based and offsets in *characters*; miette needs byte offsets, so positions are
//! converted through a table of line starts (plans often carry Chinese comments, where
//! the two differ). When a path does not exist (a missing field), the deepest existing
//! ancestor is returned, so "step has no targets" still points at the step.

use std::sync::{Arc, OnceLock};

use saphyr::{LoadableYamlNode, MarkedYamlOwned, YamlDataOwned};

/// A place in the plan file: 1-based line and column (in characters), and the byte
/// range miette underlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// Byte offset of the start.
    pub offset: usize,
    /// Length in bytes (at least 1 where the text allows, clamped to the first line).
    pub len: usize,
}

/// One step of a field path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    /// `.name`
    Key(String),
    /// `[3]`
    Index(usize),
}

/// Splits `steps[2].script.params` into segments. Keys may contain anything but `.`
/// and `[`; a malformed index ends the path there.
pub fn parse_field_path(path: &str) -> Vec<PathSegment> {
    let mut segments = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(at) => (&part[..at], &part[at..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            segments.push(PathSegment::Key(key.to_owned()));
        }
        while let Some(inner) = rest.strip_prefix('[') {
            let Some(close) = inner.find(']') else {
                return segments;
            };
            let Ok(index) = inner[..close].parse() else {
                return segments;
            };
            segments.push(PathSegment::Index(index));
            rest = &inner[close + 1..];
        }
    }
    segments
}

/// Field path → location, for one plan text.
#[derive(Debug)]
pub struct SpanIndex {
    text: Arc<str>,
    /// Parsed on first use: a valid plan never needs it, and it must not be built
    /// before serde_yaml has refused pathological input (saphyr recurses on depth).
    root: OnceLock<Option<MarkedYamlOwned>>,
    /// Byte offset where each line starts; `line_starts[0] == 0`.
    line_starts: Vec<usize>,
    text_len: usize,
}

impl SpanIndex {
    /// Indexes `text` (only after serde_yaml accepted it). A text saphyr cannot parse (it is stricter than serde_yaml in a
    /// few YAML 1.1 corners) yields an index that places everything at the top of the
    /// file rather than failing the load.
    pub fn new(text: Arc<str>) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(at, _)| at + 1));
        SpanIndex {
            text_len: text.len(),
            text,
            root: OnceLock::new(),
            line_starts,
        }
    }

    /// The value at `path`, or the deepest ancestor that exists.
    pub fn locate(&self, path: &str) -> Location {
        self.find(path, false)
    }

    /// The mapping key that introduces `path` (e.g. the `verison:` of
    /// `vars.verison`), falling back like [`SpanIndex::locate`].
    pub fn locate_key(&self, path: &str) -> Location {
        self.find(path, true)
    }

    fn find(&self, path: &str, want_key: bool) -> Location {
        let root = self.root.get_or_init(|| {
            MarkedYamlOwned::load_from_str(&self.text)
                .ok()
                .and_then(|docs| docs.into_iter().next())
        });
        let Some(root) = root else {
            return self.location_of_byte(0);
        };
        let mut node = root;
        let mut key_node: Option<&MarkedYamlOwned> = None;
        for segment in parse_field_path(path) {
            let next = match (&segment, &node.data) {
                (PathSegment::Key(name), YamlDataOwned::Mapping(mapping)) => mapping
                    .iter()
                    .find(|(key, _)| scalar_text(key).is_some_and(|k| k == *name))
                    .map(|(key, value)| (Some(key), value)),
                (PathSegment::Index(i), YamlDataOwned::Sequence(items)) => {
                    items.get(*i).map(|item| (None, item))
                }
                _ => None,
            };
            match next {
                Some((key, value)) => {
                    key_node = key;
                    node = value;
                }
                None => {
                    key_node = None;
                    break;
                }
            }
        }
        let target = match (want_key, key_node) {
            (true, Some(key)) => key,
            _ => node,
        };
        self.location_of_node(target)
    }

    fn location_of_node(&self, node: &MarkedYamlOwned) -> Location {
        let text = &*self.text;
        let start = self.byte_of_marker(node.span.start.line(), node.span.start.col());
        let end = self.byte_of_marker(node.span.end.line(), node.span.end.col());
        let mut location = self.location_of_byte(start);
        // A block mapping's span reaches to its last line; underlining only the first
        // line keeps the snippet readable.
        let line_end = text[start..].find('\n').map_or(text.len(), |at| start + at);
        let end = if end > start {
            end.min(line_end)
        } else {
            line_end
        };
        location.len = end.saturating_sub(start);
        location
    }

    /// Converts saphyr's (1-based line, 0-based character column) to a byte offset.
    fn byte_of_marker(&self, line: usize, col: usize) -> usize {
        let text = &*self.text;
        let Some(&line_start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.text_len;
        };
        let line_text = &text[line_start..];
        let within = line_text
            .char_indices()
            .nth(col)
            .map_or(line_text.len(), |(at, _)| at);
        line_start + within
    }

    /// Line and column for a byte offset (clamped to the text and to a char boundary).
    pub fn location_of_byte(&self, offset: usize) -> Location {
        let text = &*self.text;
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line_index = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let line_start = self.line_starts[line_index];
        let column = text[line_start..offset].chars().count() + 1;
        Location {
            line: line_index + 1,
            column,
            offset,
            len: 0,
        }
    }
}

/// One problem found in a plan (or in the inputs given with it): which field, what is
/// wrong, and where. Inputs from the command line have no location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Field path, e.g. `steps[2].needs[1]`, or the input, e.g. `--var verison`.
    pub field: String,
    /// What is wrong, as a sentence fragment without a trailing period.
    pub message: String,
    /// Where in the plan file, when the issue is about the plan file.
    pub location: Option<Location>,
    /// Short text shown under the underlined source.
    pub label: Option<String>,
    /// What to do about it.
    pub help: Option<String>,
}

impl Issue {
    /// An issue about something outside the plan file.
    pub fn unlocated(field: impl Into<String>, message: impl Into<String>) -> Self {
        Issue {
            field: field.into(),
            message: message.into(),
            location: None,
            label: None,
            help: None,
        }
    }

    /// Adds a hint.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds a label for the underlined source.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
}

/// A plan file's text, its display name and its span index: everything needed to
/// place an issue.
#[derive(Debug, Clone)]
pub struct PlanSource {
    /// The path as the user wrote it.
    pub name: String,
    /// The whole file.
    pub text: Arc<str>,
    index: Arc<SpanIndex>,
    /// After fan-out, the written step each step of the expanded plan comes from, so
    /// `steps[k]` of an instance is found where its declaration is.
    step_origins: Option<Arc<[usize]>>,
}

impl PlanSource {
    /// Indexes `text` for locating issues.
    pub fn new(name: impl Into<String>, text: Arc<str>) -> Self {
        let index = Arc::new(SpanIndex::new(text.clone()));
        PlanSource {
            name: name.into(),
            text,
            index,
            step_origins: None,
        }
    }

    /// Locates `steps[k]` of an expanded plan at the step `origins[k]` declares.
    pub fn set_step_origins(&mut self, origins: Vec<usize>) {
        self.step_origins = Some(origins.into());
    }

    /// `field` with an expanded step index turned into its declaration's.
    fn written_field(&self, field: &str) -> String {
        let Some(origins) = &self.step_origins else {
            return field.to_owned();
        };
        let Some(rest) = field.strip_prefix("steps[") else {
            return field.to_owned();
        };
        let Some((index, tail)) = rest.split_once(']') else {
            return field.to_owned();
        };
        match index.parse::<usize>().ok().and_then(|k| origins.get(k)) {
            Some(origin) => format!("steps[{origin}]{tail}"),
            None => field.to_owned(),
        }
    }

    /// The span index.
    pub fn spans(&self) -> &SpanIndex {
        &self.index
    }

    /// An issue located at the value of `field`.
    pub fn issue(&self, field: impl Into<String>, message: impl Into<String>) -> Issue {
        let field = self.written_field(&field.into());
        let location = self.index.locate(&field);
        Issue {
            field,
            message: message.into(),
            location: Some(location),
            label: None,
            help: None,
        }
    }

    /// An issue located at the key that introduces `field`.
    pub fn key_issue(&self, field: impl Into<String>, message: impl Into<String>) -> Issue {
        let field = self.written_field(&field.into());
        let location = self.index.locate_key(&field);
        Issue {
            location: Some(location),
            ..Issue::unlocated(field, message)
        }
    }

    /// Wraps `issues` into the error a command reports.
    pub fn errors(&self, issues: Vec<Issue>) -> PlanErrors {
        PlanErrors {
            file: self.name.clone(),
            text: self.text.clone(),
            issues,
        }
    }
}

/// Everything wrong with a plan and its inputs, reported together.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}: {} problem(s); nothing was sent", issues.len())]
pub struct PlanErrors {
    /// The plan path as the user wrote it.
    pub file: String,
    /// The plan text, for source snippets (empty when it could not be read).
    pub text: Arc<str>,
    /// The problems, in plan order.
    pub issues: Vec<Issue>,
}

impl PlanErrors {
    /// Hides `secrets` wherever the report would show them: in the plan text its
    /// snippets quote (each character replaced by as many `*` as it has bytes, so every
    /// location still points where it did) and in the issues' words.
    pub fn hide(&mut self, secrets: &[String]) {
        let secrets: Vec<&String> = secrets.iter().filter(|s| s.chars().count() >= 3).collect();
        if secrets.is_empty() {
            return;
        }
        let starred = |text: &str| {
            let mut out = text.to_owned();
            for secret in &secrets {
                if out.contains(secret.as_str()) {
                    out = out.replace(secret.as_str(), &"*".repeat(secret.len()));
                }
            }
            out
        };
        self.text = Arc::from(starred(&self.text));
        for issue in &mut self.issues {
            issue.message = starred(&issue.message);
            issue.label = issue.label.as_deref().map(starred);
            issue.help = issue.help.as_deref().map(starred);
        }
    }
}

fn scalar_text(node: &MarkedYamlOwned) -> Option<String> {
    match &node.data {
        YamlDataOwned::Value(scalar) => Some(match scalar {
            saphyr::ScalarOwned::String(s) => s.clone(),
            saphyr::ScalarOwned::Integer(i) => i.to_string(),
            saphyr::ScalarOwned::Boolean(b) => b.to_string(),
            saphyr::ScalarOwned::FloatingPoint(f) => f.to_string(),
            saphyr::ScalarOwned::Null => "null".to_owned(),
        }),
        YamlDataOwned::Representation(raw, _, _) => Some(raw.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = "# 发布计划 中文注释\nversion: 1\nsteps:\n  - id: a\n    needs: [b, zz]\n  - id: 构建\n    needs:\n      - a\n";

    #[test]
    fn paths_parse() {
        assert_eq!(
            parse_field_path("steps[2].needs[1]"),
            vec![
                PathSegment::Key("steps".into()),
                PathSegment::Index(2),
                PathSegment::Key("needs".into()),
                PathSegment::Index(1)
            ]
        );
    }

    #[test]
    fn locations_are_one_based_and_in_bytes_after_cjk_text() {
        let index = SpanIndex::new(PLAN.into());
        let loc = index.locate("steps[0].needs[1]");
        assert_eq!((loc.line, loc.column), (5, 16));
        assert_eq!(&PLAN[loc.offset..loc.offset + loc.len], "zz");
        let loc = index.locate("steps[1].id");
        assert_eq!((loc.line, loc.column), (6, 9));
        assert_eq!(&PLAN[loc.offset..loc.offset + loc.len], "构建");
    }

    #[test]
    fn missing_fields_fall_back_to_the_nearest_ancestor() {
        let index = SpanIndex::new(PLAN.into());
        let loc = index.locate("steps[1].targets");
        assert_eq!(loc.line, 6);
        let loc = index.locate_key("version");
        assert_eq!((loc.line, loc.column), (2, 1));
        assert_eq!(&PLAN[loc.offset..loc.offset + loc.len], "version");
    }
}
