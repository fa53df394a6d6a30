//! Target-path macros: [`expand_target_path`] turns `[FILESRCIP]` into the source
//! host's folder name and `[DATE:…]` / `[DATEFMT:…]` into the push's time, with
//! [`java_to_strftime`] reading JOB's Java date patterns.

use std::fmt::Write as _;

use crate::emulator::exec::files::error::TransferError;
use crate::job_api::types::HostAddr;

/// Expands the target-path macros for one source host: `[FILESRCIP]` →
/// `<cloud>_<ip>`, `[DATE:<java pattern>]` and `[DATEFMT:<strftime>]` → `now_ms` in
/// local time. Other bracketed text is left as written.
pub fn expand_target_path(
    path: &str,
    source: &HostAddr,
    now_ms: i64,
) -> Result<String, TransferError> {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else {
            out.push_str(&rest[open..]);
            return Ok(out);
        };
        let inner = &after[..close];
        if inner == "FILESRCIP" {
            out.push_str(&source.folder_name());
        } else if let Some(pattern) = inner.strip_prefix("DATEFMT:") {
            out.push_str(&format_time(now_ms, pattern)?);
        } else if let Some(pattern) = inner.strip_prefix("DATE:") {
            out.push_str(&format_time(now_ms, &java_to_strftime(pattern))?);
        } else {
            out.push('[');
            out.push_str(inner);
            out.push(']');
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn format_time(now_ms: i64, strftime: &str) -> Result<String, TransferError> {
    use chrono::TimeZone;
    let time = chrono::Local
        .timestamp_millis_opt(now_ms)
        .single()
        .ok_or(TransferError::Time(now_ms))?;
    let mut out = String::new();
    // Formatting an invalid specifier reports an error here instead of panicking.
    write!(out, "{}", time.format(strftime))
        .map_err(|_| TransferError::DatePattern(strftime.to_owned()))?;
    Ok(out)
}

/// Translates a Java date pattern (`yyyy-MM-dd_HH:mm:ss.SSS`) to chrono's strftime.
/// Letters Java would interpret but chrono cannot are kept literally; `'…'` quotes
/// literal text as in Java.
pub fn java_to_strftime(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let literal = |out: &mut String, ch: char| {
        if ch == '%' {
            out.push_str("%%");
        } else {
            out.push(ch);
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        if ch == '\'' {
            // '' is a quote; 'text' is literal text.
            if chars.get(i + 1) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        out.push('\'');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                literal(&mut out, chars[i]);
                i += 1;
            }
            continue;
        }
        if !ch.is_ascii_alphabetic() {
            literal(&mut out, ch);
            i += 1;
            continue;
        }
        let mut run = 1;
        while chars.get(i + run) == Some(&ch) {
            run += 1;
        }
        let spec = match (ch, run) {
            ('y' | 'u', 2) => "%y",
            ('y' | 'u', _) => "%Y",
            ('M', 1) => "%-m",
            ('M', 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', 1) => "%-d",
            ('d', _) => "%d",
            ('H', 1) => "%-H",
            ('H', _) => "%H",
            ('h', 1) => "%-I",
            ('h', _) => "%I",
            ('m', 1) => "%-M",
            ('m', _) => "%M",
            ('s', 1) => "%-S",
            ('s', _) => "%S",
            ('S', _) => "%3f",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            ('a', _) => "%p",
            ('Z', _) => "%z",
            ('z', _) => "%Z",
            _ => "",
        };
        if spec.is_empty() {
            for _ in 0..run {
                literal(&mut out, ch);
            }
        } else {
            out.push_str(spec);
        }
        i += run;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(text: &str) -> HostAddr {
        HostAddr::parse(text).unwrap()
    }

    /// 2021-06-28 11:32:16.789 in local time, as epoch ms.
    fn local_ms() -> i64 {
        use chrono::TimeZone;
        chrono::Local
            .with_ymd_and_hms(2021, 6, 28, 11, 32, 16)
            .single()
            .unwrap()
            .timestamp_millis()
            + 789
    }

    #[test]
    fn java_patterns_translate() {
        assert_eq!(java_to_strftime("yyyy-MM-dd_HH:mm:ss"), "%Y-%m-%d_%H:%M:%S");
        assert_eq!(java_to_strftime("yyyyMMddHHmmssSSS"), "%Y%m%d%H%M%S%3f");
        assert_eq!(java_to_strftime("yy/M/d"), "%y/%-m/%-d");
        assert_eq!(java_to_strftime("'day' dd '' 100%"), "day %d ' 100%%");
    }

    #[test]
    fn macros_expand() {
        let src = host("3:10.0.0.9");
        let now = local_ms();
        assert_eq!(
            expand_target_path("/data/logs/[FILESRCIP]/", &src, now).unwrap(),
            "/data/logs/3_10.0.0.9/"
        );
        assert_eq!(
            expand_target_path("/bak/[DATE:yyyy-MM-dd_HH:mm:ss]/x", &src, now).unwrap(),
            "/bak/2021-06-28_11:32:16/x"
        );
        assert_eq!(
            expand_target_path("/bak/[DATE:yyyyMMddHHmmssSSS]", &src, now).unwrap(),
            "/bak/20210628113216789"
        );
        assert_eq!(
            expand_target_path("/bak/[DATEFMT:%Y.%m.%d]/[FILESRCIP]", &src, now).unwrap(),
            "/bak/2021.06.28/3_10.0.0.9"
        );
        assert_eq!(
            expand_target_path("/keep/[OTHER]/[unclosed", &src, now).unwrap(),
            "/keep/[OTHER]/[unclosed"
        );
        assert!(expand_target_path("/bad/[DATEFMT:%Q%]", &src, now).is_err());
    }
}
