//! Asking a person whether JOB may go on (a manual-confirm step, the next rolling
//! batch). The question logic ([`ask`]) reads any `BufRead` and writes any `Write`, so
//! it is tested with scripted answers; [`TerminalPrompter`] binds it to stdin/stderr
//! and keeps the progress display out of the way while the question is open.

use std::io::{BufRead, Write};
use std::sync::Arc;

/// Asks a yes/no question. Blocking: the step runner calls it on a blocking thread.
pub trait Prompter: Send + Sync + 'static {
    /// `true` when the person said yes.
    fn confirm(&self, question: &str) -> bool;
}

/// Something drawing on the terminal that must stand aside while a question is open
/// (the progress bars).
pub trait DrawControl: Send + Sync + 'static {
    /// Clears it and stops drawing.
    fn pause(&self);
    /// Draws again.
    fn resume(&self);
}

/// Writes `question`, reads one line: `y` or `yes` (any case) confirms; anything else,
/// an empty line, end of input or a read error refuses — the default is no, because
/// going on is what cannot be taken back.
pub fn ask(input: &mut dyn BufRead, output: &mut dyn Write, question: &str) -> bool {
    let _ = write!(output, "{question}");
    let _ = output.flush();
    let mut line = String::new();
    match input.read_line(&mut line) {
        Ok(0) | Err(_) => {
            // Leave the cursor on a fresh line for whatever is printed next.
            let _ = writeln!(output);
            false
        }
        Ok(_) => matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes"),
    }
}

/// Asks on the terminal: the question on stderr, the answer from stdin.
#[derive(Clone, Default)]
pub struct TerminalPrompter {
    display: Option<Arc<dyn DrawControl>>,
}

impl TerminalPrompter {
    /// A prompter that pauses `display` (if any) while asking.
    pub fn new(display: Option<Arc<dyn DrawControl>>) -> Self {
        TerminalPrompter { display }
    }
}

impl TerminalPrompter {
    /// [`ask`] with the display paused around it.
    fn ask_on(&self, input: &mut dyn BufRead, output: &mut dyn Write, question: &str) -> bool {
        if let Some(display) = &self.display {
            display.pause();
        }
        let answer = ask(input, output, question);
        if let Some(display) = &self.display {
            display.resume();
        }
        answer
    }
}

impl Prompter for TerminalPrompter {
    fn confirm(&self, question: &str) -> bool {
        self.ask_on(
            &mut std::io::stdin().lock(),
            &mut std::io::stderr(),
            question,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn answer(input: &str) -> (bool, String) {
        let mut output = Vec::new();
        let yes = ask(&mut input.as_bytes(), &mut output, "go on? [y/N] ");
        (yes, String::from_utf8_lossy(&output).into_owned())
    }

    #[test]
    fn only_yes_confirms() {
        for yes in ["y\n", "Y\n", "yes\n", " YES \r\n"] {
            assert!(answer(yes).0, "{yes:?}");
        }
        for no in ["\n", "n\n", "no\n", "yep\n", "", "maybe"] {
            assert!(!answer(no).0, "{no:?}");
        }
        let (_, shown) = answer("y\n");
        assert_eq!(shown, "go on? [y/N] ");
        let (_, at_eof) = answer("");
        assert_eq!(at_eof, "go on? [y/N] \n", "end of input ends the line");
    }

    /// Records pauses and resumes around the question.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<&'static str>>);

    impl DrawControl for Recorder {
        fn pause(&self) {
            if let Ok(mut calls) = self.0.lock() {
                calls.push("pause");
            }
        }
        fn resume(&self) {
            if let Ok(mut calls) = self.0.lock() {
                calls.push("resume");
            }
        }
    }

    #[test]
    fn the_display_stands_aside_while_asking() {
        let recorder = Arc::new(Recorder::default());
        let prompter = TerminalPrompter::new(Some(recorder.clone() as Arc<dyn DrawControl>));
        let mut output = Vec::new();
        assert!(prompter.ask_on(&mut "y\n".as_bytes(), &mut output, "go on? "));
        let calls = recorder.0.lock().map(|c| c.clone()).unwrap_or_default();
        assert_eq!(calls, vec!["pause", "resume"]);
    }
}
