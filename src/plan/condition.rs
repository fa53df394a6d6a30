//! The `if:` condition language, parsed: GitHub Actions-style status functions
//! (`success()`, `failure()`, `always()`, `cancelled()`, optionally naming one upstream
//! step: `failure(deploy)`), references to upstream results (`steps.<id>.status`,
//! `steps.<id>.outputs.<key>`, `steps.<id>.hosts.succeeded|failed`) and plan variables
//! (`vars.<name>`), string and number literals, `==`, `!=`, `!`, `&&`, `||` and
//! parentheses. Only the syntax lives here; what a name means (is the step upstream,
//! is the output declared) is checked when the plan is compiled.

use std::fmt;

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A status function, with the step it names if any.
    Status(StatusFn, Option<String>),
    /// `steps.<id>.<field…>`.
    Step(String, StepField),
    /// `vars.<name>`.
    Var(String),
    /// A quoted string or a number.
    Literal(String),
    /// `true` / `false`.
    Bool(bool),
    /// `!e`.
    Not(Box<Expr>),
    /// `a && b`.
    And(Box<Expr>, Box<Expr>),
    /// `a || b`.
    Or(Box<Expr>, Box<Expr>),
    /// `a == b` (`true`) or `a != b` (`false`).
    Compare(Box<Expr>, Box<Expr>, bool),
}

/// The status functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFn {
    /// Every need succeeded or was skipped (the default); `success(x)`: `x` succeeded.
    Success,
    /// An upstream step failed; `failure(x)`: `x` failed.
    Failure,
    /// Whatever happened.
    Always,
    /// The run was interrupted, or an upstream step was; `cancelled(x)`: `x` was.
    Cancelled,
}

impl StatusFn {
    /// The function's name as written.
    pub fn name(self) -> &'static str {
        match self {
            StatusFn::Success => "success",
            StatusFn::Failure => "failure",
            StatusFn::Always => "always",
            StatusFn::Cancelled => "cancelled",
        }
    }
}

/// What a `steps.<id>.…` reference reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepField {
    /// `status`: `succeeded`, `failed`, `skipped`, `not_run`, `interrupted`, `unknown`.
    Status,
    /// `outputs.<key>`.
    Output(String),
    /// `hosts.succeeded`.
    HostsSucceeded,
    /// `hosts.failed`.
    HostsFailed,
    /// `job_instance_id`.
    JobInstanceId,
}

/// A condition that does not parse, with the byte offset it went wrong at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at character {})", .offset + 1)]
pub struct ParseError {
    /// Byte offset in the condition text.
    pub offset: usize,
    /// What was wrong.
    pub message: String,
}

impl Expr {
    /// Every status function used, with the step each names.
    pub fn status_calls(&self) -> Vec<(StatusFn, Option<&str>)> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let Expr::Status(f, step) = e {
                out.push((*f, step.as_deref()));
            }
        });
        out
    }

    /// Every step the condition names (in references and status functions).
    pub fn steps(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.walk(&mut |e| match e {
            Expr::Status(_, Some(step)) | Expr::Step(step, _) => out.push(step.as_str()),
            _ => {}
        });
        out
    }

    /// Calls `visit` on this node and every node below it.
    pub fn walk<'a>(&'a self, visit: &mut dyn FnMut(&'a Expr)) {
        visit(self);
        match self {
            Expr::Not(e) => e.walk(visit),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Compare(a, b, _) => {
                a.walk(visit);
                b.walk(visit);
            }
            _ => {}
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Status(func, None) => write!(f, "{}()", func.name()),
            Expr::Status(func, Some(step)) => write!(f, "{}({step})", func.name()),
            Expr::Step(id, field) => match field {
                StepField::Status => write!(f, "steps.{id}.status"),
                StepField::Output(key) => write!(f, "steps.{id}.outputs.{key}"),
                StepField::HostsSucceeded => write!(f, "steps.{id}.hosts.succeeded"),
                StepField::HostsFailed => write!(f, "steps.{id}.hosts.failed"),
                StepField::JobInstanceId => write!(f, "steps.{id}.job_instance_id"),
            },
            Expr::Var(name) => write!(f, "vars.{name}"),
            Expr::Literal(text) => write!(f, "'{}'", text.replace('\'', "''")),
            Expr::Bool(b) => write!(f, "{b}"),
            Expr::Not(e) => write!(f, "!{e}"),
            Expr::And(a, b) => write!(f, "({a} && {b})"),
            Expr::Or(a, b) => write!(f, "({a} || {b})"),
            Expr::Compare(a, b, eq) => write!(f, "{a} {} {b}", if *eq { "==" } else { "!=" }),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Num(String),
    LParen,
    RParen,
    Dot,
    Not,
    And,
    Or,
    Eq,
    Ne,
}

fn lex(text: &str) -> Result<Vec<(usize, Token)>, ParseError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |offset: usize, message: String| ParseError { offset, message };
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let two = text.get(i..i + 2);
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => out.push((start, Token::LParen)),
            b')' => out.push((start, Token::RParen)),
            b'.' => out.push((start, Token::Dot)),
            _ if two == Some("&&") => {
                out.push((start, Token::And));
                i += 1;
            }
            _ if two == Some("||") => {
                out.push((start, Token::Or));
                i += 1;
            }
            _ if two == Some("==") => {
                out.push((start, Token::Eq));
                i += 1;
            }
            _ if two == Some("!=") => {
                out.push((start, Token::Ne));
                i += 1;
            }
            b'!' => out.push((start, Token::Not)),
            b'\'' | b'"' => {
                let quote = c;
                let mut value = String::new();
                i += 1;
                loop {
                    let Some(&b) = bytes.get(i) else {
                        return Err(err(start, "unterminated string".into()));
                    };
                    if b == quote {
                        // GitHub's escape for a quote inside a string: write it twice.
                        if bytes.get(i + 1) == Some(&quote) {
                            value.push(char::from(quote));
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    let ch = text[i..].chars().next().unwrap_or('\u{fffd}');
                    value.push(ch);
                    i += ch.len_utf8();
                }
                out.push((start, Token::Str(value)));
            }
            b'0'..=b'9' => {
                while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                    i += 1;
                }
                out.push((start, Token::Num(text[start..i].to_owned())));
                continue;
            }
            _ if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'-')
                {
                    i += 1;
                }
                out.push((start, Token::Ident(text[start..i].to_owned())));
                continue;
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(err(start, format!("unexpected `{ch}`")));
            }
        }
        i += 1;
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    pos: usize,
    end: usize,
}

/// Parses a condition.
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    let tokens = lex(text)?;
    if tokens.is_empty() {
        return Err(ParseError {
            offset: 0,
            message: "the condition is empty".into(),
        });
    }
    let mut parser = Parser {
        tokens,
        pos: 0,
        end: text.len(),
    };
    let expr = parser.or()?;
    if let Some((offset, token)) = parser.tokens.get(parser.pos) {
        return Err(ParseError {
            offset: *offset,
            message: format!("unexpected {} after a complete condition", describe(token)),
        });
    }
    Ok(expr)
}

fn describe(token: &Token) -> String {
    match token {
        Token::Ident(name) => format!("`{name}`"),
        Token::Str(s) => format!("string '{s}'"),
        Token::Num(n) => format!("number {n}"),
        Token::LParen => "`(`".into(),
        Token::RParen => "`)`".into(),
        Token::Dot => "`.`".into(),
        Token::Not => "`!`".into(),
        Token::And => "`&&`".into(),
        Token::Or => "`||`".into(),
        Token::Eq => "`==`".into(),
        Token::Ne => "`!=`".into(),
    }
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }

    fn offset(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |(o, _)| *o)
    }

    /// Where the name after the next `.` starts.
    fn name_offset(&self) -> usize {
        self.tokens.get(self.pos + 1).map_or(self.end, |(o, _)| *o)
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            offset: self.offset(),
            message: message.into(),
        })
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).map(|(_, t)| t.clone());
        self.pos += 1;
        token
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.peek() == Some(&Token::Not) {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        let left = self.primary()?;
        let eq = match self.peek() {
            Some(Token::Eq) => true,
            Some(Token::Ne) => false,
            _ => return Ok(left),
        };
        self.pos += 1;
        let right = self.primary()?;
        Ok(Expr::Compare(Box::new(left), Box::new(right), eq))
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let at = self.offset();
        match self.next() {
            None => self.error("the condition ends too early"),
            Some(Token::LParen) => {
                let inner = self.or()?;
                if self.next() != Some(Token::RParen) {
                    self.pos -= 1;
                    return self.error("expected `)`");
                }
                Ok(inner)
            }
            Some(Token::Str(s)) => Ok(Expr::Literal(s)),
            Some(Token::Num(n)) => Ok(Expr::Literal(n)),
            Some(Token::Ident(name)) => match name.as_str() {
                "true" => Ok(Expr::Bool(true)),
                "false" => Ok(Expr::Bool(false)),
                "steps" => self.step_reference(),
                "vars" => {
                    let name = self.dotted_name("a variable name after `vars.`")?;
                    Ok(Expr::Var(name))
                }
                _ if self.peek() == Some(&Token::LParen) => self.call(&name, at),
                _ => Err(ParseError {
                    offset: at,
                    message: format!(
                        "`{name}` is not known here; use `success()`, `failure()`, `always()`, `cancelled()`, `steps.<id>.…` or `vars.<name>`"
                    ),
                }),
            },
            Some(other) => {
                self.pos -= 1;
                self.error(format!("unexpected {}", describe(&other)))
            }
        }
    }

    fn call(&mut self, name: &str, at: usize) -> Result<Expr, ParseError> {
        let function = match name {
            "success" => StatusFn::Success,
            "failure" => StatusFn::Failure,
            "always" => StatusFn::Always,
            "cancelled" | "canceled" => StatusFn::Cancelled,
            _ => {
                return Err(ParseError {
                    offset: at,
                    message: format!(
                        "unknown function `{name}()`; the functions are `success()`, `failure()`, `always()` and `cancelled()`"
                    ),
                });
            }
        };
        self.pos += 1; // `(`
        let step = match self.next() {
            Some(Token::RParen) => None,
            Some(Token::Ident(id) | Token::Str(id)) => {
                if self.next() != Some(Token::RParen) {
                    self.pos -= 1;
                    return self.error(format!("expected `)` after the step id in `{name}(…)`"));
                }
                Some(id)
            }
            _ => {
                self.pos -= 1;
                return self.error(format!("`{name}(…)` takes nothing or one step id"));
            }
        };
        if function == StatusFn::Always && step.is_some() {
            return Err(ParseError {
                offset: at,
                message: "`always()` takes no step id".into(),
            });
        }
        Ok(Expr::Status(function, step))
    }

    fn dotted_name(&mut self, what: &str) -> Result<String, ParseError> {
        if self.next() != Some(Token::Dot) {
            self.pos -= 1;
            return self.error(format!("expected {what}"));
        }
        match self.next() {
            Some(Token::Ident(name)) => Ok(name),
            _ => {
                self.pos -= 1;
                self.error(format!("expected {what}"))
            }
        }
    }

    fn step_reference(&mut self) -> Result<Expr, ParseError> {
        let id = self.dotted_name("a step id after `steps.`")?;
        let at = self.name_offset();
        let field = self.dotted_name(&format!(
            "`.status`, `.outputs.<key>` or `.hosts.succeeded|failed` after `steps.{id}`"
        ))?;
        let field = match field.as_str() {
            "status" => StepField::Status,
            "job_instance_id" => StepField::JobInstanceId,
            "outputs" => StepField::Output(self.dotted_name("an output key after `outputs`")?),
            "hosts" => {
                let at = self.name_offset();
                match self
                    .dotted_name("`succeeded` or `failed` after `hosts`")?
                    .as_str()
                {
                    "succeeded" => StepField::HostsSucceeded,
                    "failed" => StepField::HostsFailed,
                    other => {
                        return Err(ParseError {
                            offset: at,
                            message: format!(
                                "`steps.{id}.hosts.{other}`: a step's hosts are `succeeded` or `failed`"
                            ),
                        });
                    }
                }
            }
            other => {
                return Err(ParseError {
                    offset: at,
                    message: format!(
                        "`steps.{id}.{other}` is not a step result; use `status`, `outputs.<key>`, `hosts.succeeded`, `hosts.failed` or `job_instance_id`"
                    ),
                });
            }
        };
        Ok(Expr::Step(id, field))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_functions_and_operators_parse() {
        let e = parse("failure('deploy') || (always() && !cancelled())").unwrap();
        assert_eq!(
            e.to_string(),
            "(failure(deploy) || (always() && !cancelled()))"
        );
        let e = parse("failure(deploy) && steps.deploy.hosts.failed != ''").unwrap();
        assert_eq!(e.steps(), vec!["deploy", "deploy"]);
        assert_eq!(e.status_calls(), vec![(StatusFn::Failure, Some("deploy"))]);
        let e = parse("steps.push-package.outputs.tag == \"v1\" && vars.region == 'sh'").unwrap();
        assert!(matches!(e, Expr::And(..)));
        assert_eq!(parse("'it''s'").unwrap(), Expr::Literal("it's".into()));
    }

    #[test]
    fn mistakes_say_where_and_what() {
        for (text, offset, needle) in [
            ("failed()", 0, "unknown function `failed()`"),
            ("success() &&", 12, "ends too early"),
            ("steps.deploy.state", 13, "not a step result"),
            ("steps.deploy.hosts.all", 19, "`succeeded` or `failed`"),
            ("always(deploy)", 0, "takes no step id"),
            ("deploy", 0, "`deploy` is not known"),
            ("success() success()", 10, "after a complete condition"),
            ("'open", 0, "unterminated"),
            ("(success()", 10, "expected `)`"),
            ("", 0, "empty"),
            ("a # b", 2, "unexpected `#`"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.offset, offset, "{text}: {e}");
            assert!(e.message.contains(needle), "{text}: {e}");
        }
    }
}
