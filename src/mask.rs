//! The values baton must never show, and the one place that hides them: secret
//! variables, the parameters of `sensitive: true` scripts (as written and as rendered),
//! Windows host passwords, the app secret and tokens, and the callback token.
//!
//! A run shares one [`Masker`]. It starts with what the plan and the configuration say
//! and learns a sensitive step's rendered parameters when the step is rendered, before
//! any event can carry them. Every writer masks through it: the event sink (so the
//! journal, the terminal, the log file and the reports all receive masked events), the
//! tracing writers, the stored plan copy and `baton plan`. JOB still receives the real
//! values, since requests are built from the rendered step, never from masked text.
//!
//! A value is masked in every form a writer may give it: as itself, HTML/XML-escaped
//! (JOB encodes v2 logs), JSON- or Debug-escaped, and URL-encoded.

use std::io::Write;
use std::sync::{Arc, PoisonError, RwLock};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::compile::CompiledPlan;
use crate::plan::model::Step;

use crate::plan::secrets;
pub use crate::plan::vars::MASK;

/// Shorter values are not masked: hiding every `a` in a log would destroy it without
/// protecting anything.
const MIN_SECRET_CHARS: usize = 3;

/// Replaces secret values with [`MASK`]. Clones share one list, so a value learned by
/// the step runner is masked by every writer from then on.
#[derive(Clone, Default)]
pub struct Masker {
    /// Every form of every value, longest first so a value containing another is
    /// masked whole.
    forms: Arc<RwLock<Vec<String>>>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.read(|forms| forms.len());
        f.debug_struct("Masker").field("forms", &count).finish()
    }
}

impl Masker {
    /// A masker for these values.
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let masker = Masker::default();
        masker.learn(secrets);
        masker
    }

    /// A masker for what a plan holds before it runs: its secret variables' values,
    /// the literal parts of its sensitive parameters, and its host passwords.
    pub fn for_plan(validated: &CompiledPlan) -> Self {
        let masker = Masker::default();
        masker.learn_plan(validated);
        masker
    }

    /// Masks what [`Masker::for_plan`] masks too, from now on.
    pub fn learn_plan(&self, validated: &CompiledPlan) {
        self.learn(
            validated
                .vars
                .secret_values()
                .into_iter()
                .map(str::to_owned),
        );
        for step in &validated.plan.steps {
            self.learn(secrets::plan_step_secrets(step));
        }
    }

    /// Masks `secrets` too, from now on.
    pub fn learn(&self, secrets: impl IntoIterator<Item = String>) {
        let mut new: Vec<String> = secrets
            .into_iter()
            .filter(|s| s.chars().count() >= MIN_SECRET_CHARS)
            .flat_map(|s| shown_forms(&s))
            .collect();
        if new.is_empty() {
            return;
        }
        let mut forms = self.forms.write().unwrap_or_else(PoisonError::into_inner);
        forms.append(&mut new);
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
    }

    /// Masks what a rendered step must hide: a sensitive script's parameters (whole,
    /// and word by word, since a script echoes `$1`) and its host passwords.
    pub fn learn_step(&self, rendered: &Step) {
        self.learn(secrets::step_secrets(rendered, false));
    }

    /// `text` with every secret masked.
    pub fn mask(&self, text: &str) -> String {
        self.read(|forms| {
            let mut out = text.to_owned();
            for form in forms {
                if out.contains(form.as_str()) {
                    out = out.replace(form.as_str(), MASK);
                }
            }
            out
        })
    }

    /// `value` with every string in it (keys included) masked, by a round trip through
    /// its serialized form; `None` when the type does not read back what it writes.
    /// A value that holds no secret is returned as it was.
    pub fn mask_serialized<T: Serialize + DeserializeOwned>(&self, value: T) -> Option<T> {
        if self.read(Vec::is_empty) {
            return Some(value);
        }
        let mut tree = serde_json::to_value(&value).ok()?;
        if !self.mask_tree(&mut tree) {
            return Some(value);
        }
        serde_json::from_value(tree).ok()
    }

    /// Masks the strings of a JSON tree in place; whether anything changed.
    fn mask_tree(&self, tree: &mut Value) -> bool {
        match tree {
            Value::String(text) => {
                let masked = self.mask(text);
                let changed = masked != *text;
                *text = masked;
                changed
            }
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, item| self.mask_tree(item) | changed),
            Value::Object(map) => {
                let mut changed = false;
                let entries = std::mem::take(map);
                for (key, mut item) in entries {
                    changed |= self.mask_tree(&mut item);
                    let shown = self.mask(&key);
                    changed |= shown != key;
                    map.insert(shown, item);
                }
                changed
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => false,
        }
    }

    /// A tracing writer factory whose output is masked.
    pub fn make_writer<M>(&self, inner: M) -> MaskingMakeWriter<M> {
        MaskingMakeWriter {
            masker: self.clone(),
            inner,
        }
    }

    fn read<R>(&self, f: impl FnOnce(&Vec<String>) -> R) -> R {
        f(&self.forms.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The forms a writer may give `secret`: itself and its escaped encodings.
fn shown_forms(secret: &str) -> Vec<String> {
    let quoted = |s: String| {
        s.strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .map(str::to_owned)
    };
    let mut forms = vec![secret.to_owned()];
    forms.extend(html_forms(secret));
    forms.extend(serde_json::to_string(secret).ok().and_then(quoted));
    forms.extend(quoted(format!("{secret:?}")));
    forms.push(url_encode(secret, false));
    forms.push(url_encode(secret, true));
    forms.sort();
    forms.dedup();
    forms
}

/// HTML/XML escapings in the styles JOB and XML writers use.
fn html_forms(secret: &str) -> Vec<String> {
    let styles: [&[(char, &str)]; 3] = [
        &[('\'', "&#39;")],
        &[('\'', "&apos;")],
        &[('\'', "&#x27;"), ('/', "&#x2F;")],
    ];
    styles
        .iter()
        .map(|extra| {
            let mut out = String::with_capacity(secret.len());
            for c in secret.chars() {
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    '"' => out.push_str("&quot;"),
                    _ => match extra.iter().find(|(from, _)| *from == c) {
                        Some((_, to)) => out.push_str(to),
                        None => out.push(c),
                    },
                }
            }
            out
        })
        .collect()
}

/// Percent-encoding of everything but RFC 3986's unreserved characters, with upper-
/// or lower-case hex digits.
fn url_encode(secret: &str, lower: bool) -> String {
    let mut out = String::with_capacity(secret.len());
    for byte in secret.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else if lower {
            out.push_str(&format!("%{byte:02x}"));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A tracing writer factory whose writers mask what passes through them.
#[derive(Debug, Clone)]
pub struct MaskingMakeWriter<M> {
    masker: Masker,
    inner: M,
}

impl<'a, M: tracing_subscriber::fmt::MakeWriter<'a>> tracing_subscriber::fmt::MakeWriter<'a>
    for MaskingMakeWriter<M>
{
    type Writer = MaskingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        MaskingWriter {
            masker: self.masker.clone(),
            inner: self.inner.make_writer(),
        }
    }
}

/// Masks each write: the tracing formatter hands over one whole event per write, so a
/// value is never split between two writes.
#[derive(Debug)]
pub struct MaskingWriter<W> {
    masker: Masker,
    inner: W,
}

impl<W: Write> Write for MaskingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let masked = self.masker.mask(&String::from_utf8_lossy(buf));
        self.inner.write_all(masked.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_encoded_form_is_masked() {
        let masker = Masker::new(["Pp&w<\"x'/+".to_owned()]);
        for shown in [
            "Pp&w<\"x'/+",
            "Pp&amp;w&lt;&quot;x&#39;/+",
            "Pp&amp;w&lt;&quot;x&apos;/+",
            "Pp&amp;w&lt;&quot;x&#x27;&#x2F;+",
            "Pp&w<\\\"x'/+",
            "Pp%26w%3C%22x%27%2F%2B",
            "Pp%26w%3c%22x%27%2f%2b",
        ] {
            assert_eq!(masker.mask(&format!("[{shown}]")), "[******]", "{shown}");
        }
    }

    #[test]
    fn short_values_are_ignored_and_longer_ones_win() {
        let masker = Masker::new(["ab".to_owned(), "hunter".to_owned(), "hunter22".to_owned()]);
        assert_eq!(masker.mask("ab hunter22 hunter"), "ab ****** ******");
    }

    #[test]
    fn clones_share_what_is_learned() {
        let masker = Masker::default();
        let writer_side = masker.clone();
        masker.learn(["s3cr3t-value".to_owned()]);
        assert_eq!(writer_side.mask("x s3cr3t-value"), "x ******");
    }

    fn sensitive_step(params: &str) -> Step {
        Step {
            script: Some(crate::plan::model::ScriptStep {
                params: Some(params.into()),
                sensitive: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn sensitive_params_are_masked_whole_and_word_by_word() {
        let step = sensitive_step("--token=abcdef123 'two words' -v");
        let masker = Masker::default();
        masker.learn_step(&step);
        assert_eq!(
            masker.mask("--token=abcdef123 'two words' -v"),
            "******",
            "the whole string"
        );
        assert_eq!(masker.mask("got --token=abcdef123"), "got ******");
        assert_eq!(masker.mask("value abcdef123"), "value ******");
        assert_eq!(masker.mask("two words -v"), "****** -v");
    }

    #[test]
    fn templates_split_literal_pieces_of_a_plan_step() {
        let step = sensitive_step("--pw=literal-part{{x}} {{y}}");
        let pieces = secrets::plan_step_secrets(&step);
        assert!(pieces.contains(&"literal-part".to_owned()), "{pieces:?}");
        assert!(
            pieces
                .iter()
                .all(|p| !p.contains("{{") || p.starts_with("--pw"))
        );
    }

    #[test]
    fn serialized_values_are_masked_in_strings_and_keys() {
        let masker = Masker::new(["s3cr3t-value".to_owned()]);
        let value = std::collections::BTreeMap::from([(
            "k s3cr3t-value".to_owned(),
            vec!["a s3cr3t-value".to_owned()],
        )]);
        let masked = masker.mask_serialized(value).expect("round trip");
        assert_eq!(
            masked,
            std::collections::BTreeMap::from([(
                "k ******".to_owned(),
                vec!["a ******".to_owned()]
            )])
        );
    }

    #[test]
    fn masked_writes_reach_the_inner_writer() {
        let masker = Masker::new(["s3cr3t-value".to_owned()]);
        let mut out = MaskingWriter {
            masker,
            inner: Vec::new(),
        };
        out.write_all(b"task=s3cr3t-value\n").expect("write");
        assert_eq!(out.inner, b"task=******\n");
    }

    #[test]
    fn the_event_sink_hands_masked_events_to_the_recorder_and_the_watchers() {
        use crate::executor::events::{
            EventRecorder, EventSink, HostOutcome, RecordError, RunEvent, StepFinished, StepRef,
            StepStatus,
        };
        use std::time::Duration;

        #[derive(Default)]
        struct Recorded(std::sync::Mutex<Vec<String>>);
        impl EventRecorder for Recorded {
            fn record(&self, event: &RunEvent) -> Result<(), RecordError> {
                let line = serde_json::to_string(event).map_err(|e| e.to_string())?;
                self.0.lock().map_err(|e| e.to_string())?.push(line);
                Ok(())
            }
        }

        let masker = Masker::default();
        let recorded = Arc::new(Recorded::default());
        let (sink, mut rx) = EventSink::channel();
        let sink = sink
            .with_recorder(Arc::clone(&recorded) as Arc<dyn EventRecorder>)
            .with_masker(masker.clone());
        // Learned after the sink was built, as the step runner learns rendered params.
        masker.learn(["s3cr3t-value".to_owned()]);
        let step = StepRef {
            index: 0,
            id: "s".into(),
        };
        sink.emit_durable(RunEvent::StepSubmitting {
            step: step.clone(),
            attempt: 1,
            task_name: "deploy s3cr3t-value [baton r s#1]".into(),
        })
        .expect("recorded");
        sink.emit(RunEvent::StepFinished {
            step,
            outcome: Box::new(StepFinished {
                status: StepStatus::Failed,
                job_status: None,
                job_instance_id: None,
                attempts: 1,
                hosts: vec![HostOutcome {
                    host: "0:10.0.0.1".into(),
                    status: 4,
                    status_label: "failed".into(),
                    exit_code: Some(3),
                    ok: false,
                    log_tail: Some("echo s3cr3t-value".into()),
                }],
                outputs: [("k".to_owned(), "s3cr3t-value".to_owned())].into(),
                host_outputs: Default::default(),
                error: Some("failed with s3cr3t-value".into()),
                duration: Duration::from_millis(1500),
                job_ms: None,
                observed: None,
            }),
            at: crate::executor::events::now(),
        });
        drop(sink);
        let mut seen = Vec::new();
        while let Ok(event) = rx.try_recv() {
            seen.push(serde_json::to_string(&event).expect("serializes"));
        }
        let journal = recorded.0.lock().expect("lock").clone();
        assert_eq!(seen.len(), 2);
        assert_eq!(journal, seen, "recorder and watchers see the same events");
        for line in &seen {
            assert!(!line.contains("s3cr3t"), "{line}");
        }
        assert!(
            seen[0].contains("deploy ****** [baton r s#1]"),
            "{}",
            seen[0]
        );
        assert!(
            seen[1].contains("\"duration\":{\"secs\":1,\"nanos\":500000000}"),
            "{}",
            seen[1]
        );
    }
}
