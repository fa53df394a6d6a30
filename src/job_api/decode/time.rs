//! JOB's v2 times: strings in the user's timezone without saying which
//! ([`parse_v2_time`], read in [`local_offset`] unless they carry an offset).

use chrono::{DateTime, FixedOffset, NaiveDateTime, Offset, TimeZone};

/// The offset of this machine's local time now: v2 writes times in the user's
/// timezone without saying which, and JOB users and servers share one in practice.
pub fn local_offset() -> FixedOffset {
    chrono::Local::now().offset().fix()
}

/// A v2 time (`yyyy-MM-dd HH:mm:ss`, optionally with a `+0800` suffix as old docs
/// show) as epoch ms, reading a bare time in `offset`.
pub fn parse_v2_time(text: &str, offset: FixedOffset) -> Option<i64> {
    let text = text.trim();
    for format in ["%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S%z"] {
        if let Ok(time) = DateTime::parse_from_str(text, format) {
            return Some(time.timestamp_millis());
        }
    }
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").ok()?;
    offset
        .from_local_datetime(&naive)
        .single()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    #[test]
    fn v2_times_in_the_given_zone_and_with_suffix() {
        let china = FixedOffset::east_opt(8 * 3600).unwrap();
        // 2018-03-15 12:56:35 +08:00 = 2018-03-15 04:56:35 UTC.
        assert_eq!(
            parse_v2_time("2018-03-15 12:56:35", china),
            Some(1_521_089_795_000)
        );
        let utc = FixedOffset::east_opt(0).unwrap();
        assert_eq!(
            parse_v2_time("2018-03-15 12:56:35 +0800", utc),
            Some(1_521_089_795_000)
        );
        assert_eq!(parse_v2_time("15/03/2018", utc), None);
    }
}
