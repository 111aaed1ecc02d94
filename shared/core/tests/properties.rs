//! Properties: the parser never panics, `at` accepts exactly HH:MM, identifier limits hold.

mod common;

use common::*;
use proptest::prelude::*;
use serde_json::json;
use tidemark_core::{TimeOfDay, parse_task_spec};

proptest! {
    #[test]
    fn parser_never_panics_on_any_text(s in "\\PC{0,200}") {
        let _ = parse_task_spec(&s);
    }

    #[test]
    fn parser_never_panics_on_a_damaged_example(cut in 0usize..2000, insert in "\\PC{0,5}") {
        let mut s = DESIGN_EXAMPLE.to_string();
        let mut at = cut.min(s.len());
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.insert_str(at, &insert);
        if let Err(e) = parse_task_spec(&s) {
            prop_assert!(!e.0.is_empty());
        }
    }

    #[test]
    fn at_accepts_every_valid_time(h in 0u8..24, m in 0u8..60) {
        let s = format!("{h:02}:{m:02}");
        prop_assert_eq!(TimeOfDay::parse(&s), Ok(TimeOfDay { hour: h, minute: m }));
        prop_assert_eq!(TimeOfDay::parse(&s).map(|t| t.to_string()), Ok(s));
    }

    #[test]
    fn at_rejects_everything_else(s in "\\PC{0,8}") {
        let valid = s.len() == 5
            && s.as_bytes()[2] == b':'
            && s[..2].parse::<u8>().is_ok_and(|h| h < 24)
            && s[3..].parse::<u8>().is_ok_and(|m| m < 60)
            && s.bytes().enumerate().all(|(i, b)| i == 2 || b.is_ascii_digit());
        prop_assert_eq!(TimeOfDay::parse(&s).is_ok(), valid);
    }

    #[test]
    fn any_column_name_the_server_takes_is_accepted(
        name in "[\\x01-\\x7f\\u{80}-\\u{d7ff}\\u{e000}-\\u{fffd}]{0,63}[^ \\x00\\u{10000}-\\u{10ffff}]"
    ) {
        let mut v = resync();
        v["objects"][0]["tables"][1]["columns"] = json!([{ "name": name }]);
        let spec = parse(&v);
        prop_assert!(spec.is_ok(), "{:?} rejected: {:?}", name, spec.err());
        let spec = spec.map_err(|e| TestCaseError::fail(e.to_string()))?;
        let tables = spec.objects[0].tables.clone().unwrap_or_default();
        let cols = tables[1].columns.clone().unwrap_or_default();
        prop_assert_eq!(&cols[0].name, &name);
    }
}
