//! A guard against YAML alias bombs, run before a text is deserialized for real.
//!
//! serde_yaml limits how often aliases are followed relative to the number of events,
//! but not how much data they copy: one anchor on a 16 MiB string referenced three
//! million times fits in a 32 MiB file and expands to terabytes, so the typed parse
//! (and the span index, which clones aliased nodes too) would run the machine out of
//! memory instead of refusing the plan. Here the same text is walked once with a
//! visitor that stores nothing and only adds up what the aliases would produce,
//! stopping as soon as the total passes a budget, so the walk itself stays cheap.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};

/// Expansion is allowed up to this many "bytes" (scalar bytes plus one per node)
/// whatever the file size: sharing a host list or a script between steps through an
/// anchor is legitimate and stays far below it.
pub const MIN_EXPANDED_BYTES: u64 = 16 * 1024 * 1024;

/// Larger files may expand to this multiple of their size; a text without aliases
/// weighs at most about twice its length (every byte a scalar byte or a node).
pub const EXPANSION_FACTOR: u64 = 4;

const OVER_BUDGET: &str = "baton: alias expansion budget exceeded";

/// The text's aliases expand it beyond the budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "YAML aliases (`*name`) expand this document to more than {} MiB; baton refuses alias bombs",
    budget / (1024 * 1024)
)]
pub struct ExpansionError {
    /// The budget that was exceeded, in bytes.
    pub budget: u64,
    /// Byte offset where the walk stopped, when serde_yaml reported one.
    pub offset: Option<usize>,
}

/// The budget for a text of `len` bytes.
pub fn budget_for(len: usize) -> u64 {
    MIN_EXPANDED_BYTES.max(EXPANSION_FACTOR.saturating_mul(len as u64))
}

/// Refuses `text` when following its aliases would produce more than the budget.
/// Syntax and type errors are not reported here: the real parse reports them with
/// better messages, so only the expansion itself can fail this check.
pub fn check(text: &str) -> Result<(), ExpansionError> {
    // Without an anchor there is nothing to expand; skipping the walk keeps large
    // generated plans (which never use anchors) at one parse.
    if !text.contains('&') || !text.contains('*') {
        return Ok(());
    }
    let budget = budget_for(text.len());
    let used = Cell::new(0u64);
    let weigher = Weigher {
        used: &used,
        budget,
    };
    for document in serde_yaml::Deserializer::from_str(text) {
        if let Err(error) = weigher.deserialize(document) {
            let message = error.to_string();
            // serde_yaml prefixes custom messages with the field path (`b[8]: ...`).
            if message.contains(OVER_BUDGET) || message.contains("repetition limit exceeded") {
                return Err(ExpansionError {
                    budget,
                    offset: error.location().map(|l| l.index()),
                });
            }
            return Ok(());
        }
    }
    Ok(())
}

/// Walks any YAML value, counting instead of storing.
#[derive(Clone, Copy)]
struct Weigher<'a> {
    used: &'a Cell<u64>,
    budget: u64,
}

impl Weigher<'_> {
    fn add<E: de::Error>(self, amount: usize) -> Result<(), E> {
        let total = self.used.get().saturating_add(amount as u64);
        self.used.set(total);
        if total > self.budget {
            return Err(E::custom(OVER_BUDGET));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Weigher<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Weigher<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.add(1)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.add(1)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.add(1)
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.add(1)
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.add(1)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.add(1)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.add(1 + v.len())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.add(1)
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.add(1)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        self.add(1)?;
        deserializer.deserialize_any(self)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        self.add(1)?;
        deserializer.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.add(1)?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.add(1)?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
    /// A tagged value (`!tag value`): weigh the tag and the value.
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        let ((), variant) = data.variant_seed(self)?;
        de::VariantAccess::newtype_variant_seed(variant, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_plans_and_modest_anchors_pass() {
        assert_eq!(check("a: 1\nb: [x, y]\n"), Ok(()));
        let shared = format!(
            "list: &hosts [{}]\n{}",
            vec!["\"0:10.0.0.1\""; 1000].join(", "),
            (0..50)
                .map(|i| format!("k{i}: *hosts\n"))
                .collect::<String>()
        );
        assert_eq!(check(&shared), Ok(()));
    }

    #[test]
    fn a_string_referenced_many_times_is_refused() {
        let bomb = format!(
            "a: &a \"{}\"\nb: [{}]\n",
            "x".repeat(100_000),
            vec!["*a"; 2_000].join(", ")
        );
        let error = check(&bomb).unwrap_err();
        assert_eq!(error.budget, MIN_EXPANDED_BYTES);
        assert!(error.to_string().contains("alias bombs"), "{error}");
    }

    #[test]
    fn nested_billion_laughs_is_refused() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10u8 {
            let (n, p) = ((b'a' + i) as char, (b'a' + i - 1) as char);
            bomb.push_str(&format!(
                "{n}: &{n} [{}]\n",
                vec![format!("*{p}"); 10].join(", ")
            ));
        }
        assert!(check(&bomb).is_err());
    }

    #[test]
    fn syntax_errors_are_left_to_the_real_parse() {
        assert_eq!(check("a: &a [x\nb: *a\n"), Ok(()));
        assert_eq!(check("a: *nope & *"), Ok(()));
    }
}
