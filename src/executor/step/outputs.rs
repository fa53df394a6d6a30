//! Step outputs: the `key:value` pairs hosts print in their logs between
//! `<BATON_VAR>` (or bk-sops' `<SOPS_VAR>`) tags, plain or HTML-escaped.

use regex::Regex;

use crate::job_api::decode::html_decode;

/// Outputs printed as `<BATON_VAR>key:value</BATON_VAR>` or bk-sops'
/// `<SOPS_VAR>key:value</SOPS_VAR>`, also HTML-escaped.
pub fn extract_outputs(log: &str) -> Vec<(String, String)> {
    static PATTERN: std::sync::OnceLock<Option<Regex>> = std::sync::OnceLock::new();
    let Some(pattern) = PATTERN
        .get_or_init(|| Regex::new(r"(?:<|&lt;)(BATON_VAR|SOPS_VAR)(?:>|&gt;)(.*?)(?:<|&lt;)/(?:BATON_VAR|SOPS_VAR)(?:>|&gt;)").ok())
        .as_ref()
    else {
        return Vec::new();
    };
    pattern
        .captures_iter(log)
        .filter_map(|c| {
            let inner = html_decode(c.get(2)?.as_str());
            let (key, value) = inner.split_once(':')?;
            let key = key.trim();
            (!key.is_empty()).then(|| (key.to_owned(), value.trim_end_matches('\r').to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_in_all_three_forms() {
        let found = extract_outputs(
            "<BATON_VAR>a:1</BATON_VAR> <SOPS_VAR>b:x:y</SOPS_VAR> &lt;SOPS_VAR&gt;c:&amp;&lt;/SOPS_VAR&gt;",
        );
        assert_eq!(
            found,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x:y".into()),
                ("c".into(), "&".into())
            ]
        );
    }
}
