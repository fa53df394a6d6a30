//! The HTML entities JOB's v2 log API adds to log text, undone ([`html_decode`]).

/// Decodes the HTML entities JOB's v2 log API adds (`&lt;`, `&amp;`, `&#39;`, `&#x27;`,
/// ...). `&nbsp;` becomes a plain space, since that is what was encoded. Anything
/// that is not a known entity is kept as written.
pub fn html_decode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        // '&' and ';' are single bytes, so these slices stay on char boundaries.
        let decoded = tail[1..]
            .find(';')
            .filter(|end| *end <= 10)
            .and_then(|end| entity(&tail[1..1 + end]).map(|c| (c, end)));
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &tail[end + 2..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some(' '),
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_entities_are_decoded() {
        assert_eq!(
            html_decode("a &lt;b&gt; &amp;&amp; &quot;c&quot; &#39;d&#x27; e&nbsp;f"),
            "a <b> && \"c\" 'd' e f"
        );
        assert_eq!(
            html_decode("<BATON_VAR>sha256:ab&amp;cd</BATON_VAR>"),
            "<BATON_VAR>sha256:ab&cd</BATON_VAR>"
        );
        assert_eq!(
            html_decode("50% & rising; &unknown; &"),
            "50% & rising; &unknown; &"
        );
        assert_eq!(html_decode("中文&lt;日志&gt;"), "中文<日志>");
    }
}
