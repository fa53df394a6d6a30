//! What a plan holds that must never be shown: secret variables' defaults, the
//! parameters of `sensitive: true` scripts (whole, and the words a script sees of them)
//! and Windows host passwords. The masker learns these; a report of an invalid plan
//! hides them in the source it quotes.

use super::model::{Plan, Step};

/// Words of a sensitive parameter string shorter than this are not masked on their
/// own (flags such as `-f` or `--all`); the whole string always is.
const MIN_PARAM_WORD_CHARS: usize = 6;

/// Every secret a plan holds as written: secret variables' defaults, sensitive
/// parameters and host passwords. What a report of an invalid plan must not quote.
pub fn plan_literals(plan: &Plan) -> Vec<String> {
    let mut out: Vec<String> = plan
        .vars
        .values()
        .filter(|var| var.secret)
        .filter_map(|var| var.default.as_ref().map(|d| d.0.clone()))
        .collect();
    for step in &plan.steps {
        out.extend(plan_step_secrets(step));
    }
    out
}

/// What a plan step holds as written that must never be shown. Template expressions
/// are not values yet: they split the literal text around them into pieces.
pub fn plan_step_secrets(step: &Step) -> Vec<String> {
    step_secrets(step, true)
}

pub fn step_secrets(step: &Step, templated: bool) -> Vec<String> {
    let Some(script) = &step.script else {
        return Vec::new();
    };
    let mut out: Vec<String> = script
        .host_passwords
        .iter()
        .map(|p| p.encrypted_password.clone())
        .collect();
    if script.sensitive == Some(true)
        && let Some(params) = &script.params
    {
        out.push(params.trim().to_owned());
        let literal = if templated {
            without_templates(params)
        } else {
            params.clone()
        };
        out.extend(param_words(&literal));
    }
    out
}

/// `text` with every `{{…}}` expression replaced by a space.
fn without_templates(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        out.push(' ');
        match rest[start..].find("}}") {
            Some(end) => rest = &rest[start + end + 2..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The words a script sees of a parameter string (`$1`, `$2`, …), and the value part
/// of each `--flag=value` word, when long enough to be worth masking on their own.
fn param_words(params: &str) -> Vec<String> {
    let words = shell_words::split(params)
        .unwrap_or_else(|_| params.split_whitespace().map(str::to_owned).collect());
    let mut out = Vec::new();
    for word in words {
        if let Some((_, value)) = word.split_once('=')
            && value.chars().count() >= MIN_PARAM_WORD_CHARS
        {
            out.push(value.to_owned());
        }
        if word.chars().count() >= MIN_PARAM_WORD_CHARS {
            out.push(word);
        }
    }
    out
}
