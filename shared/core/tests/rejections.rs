//! Every rejection of a well-formed JSON document names the field at fault: the spec is damaged
//! structurally (a key removed, a value replaced by another type or by hostile text, an unknown
//! key added) at a random place, and whatever the parser and validator say about it must carry a
//! field path that exists in the document (or, for a removed key, in its parent).

mod common;

use common::DESIGN_EXAMPLE;
use proptest::prelude::*;
use serde_json::Value;
use tidemark_core::parse_task_spec;

/// Every path in a document, in the error's notation: `a.b[2].c`.
fn paths(value: &Value, prefix: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.push(p.clone());
                paths(v, p, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let p = format!("{prefix}[{i}]");
                out.push(p.clone());
                paths(v, p, out);
            }
        }
        _ => {}
    }
}

fn at_path<'a>(root: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    let mut cur = root;
    for part in path.split('.') {
        let (key, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            cur = cur.get_mut(key)?;
        }
        for idx in indexes.split(['[', ']']).filter(|s| !s.is_empty()) {
            cur = cur.get_mut(idx.parse::<usize>().ok()?)?;
        }
    }
    Some(cur)
}

#[derive(Debug, Clone)]
enum Damage {
    Remove,
    Replace(Value),
    AddUnknownKey,
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        Just(Damage::Remove),
        Just(Damage::AddUnknownKey),
        any::<i64>().prop_map(|n| Damage::Replace(Value::from(n))),
        any::<bool>().prop_map(|b| Damage::Replace(Value::from(b))),
        Just(Damage::Replace(Value::Null)),
        Just(Damage::Replace(serde_json::json!([]))),
        Just(Damage::Replace(serde_json::json!({}))),
        "\\PC{0,80}".prop_map(|s| Damage::Replace(Value::from(s))),
        Just(Damage::Replace(Value::from("x`; DROP DATABASE mysql; --"))),
        Just(Damage::Replace(Value::from("a".repeat(300)))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn every_rejection_names_a_field_of_the_document(pick in any::<prop::sample::Index>(), how in damage()) {
        let original: Value = serde_json::from_str(DESIGN_EXAMPLE).expect("the example is JSON");
        let mut all = Vec::new();
        paths(&original, String::new(), &mut all);
        let target = pick.get(&all).clone();
        let mut doc = original.clone();
        let (parent, leaf) = match target.rfind(['.', '[']) {
            Some(i) => (target[..i].to_owned(), target[i..].trim_start_matches('.').to_owned()),
            None => (String::new(), target.clone()),
        };
        match &how {
            Damage::Remove => {
                let holder = if parent.is_empty() { Some(&mut doc) } else { at_path(&mut doc, &parent) };
                match holder {
                    Some(Value::Object(map)) => { map.remove(&leaf); }
                    Some(Value::Array(items)) => {
                        let i: usize = leaf.trim_matches(['[', ']']).parse().unwrap_or(0);
                        if i < items.len() { items.remove(i); }
                    }
                    _ => {}
                }
            }
            Damage::Replace(v) => {
                if let Some(slot) = at_path(&mut doc, &target) { *slot = v.clone(); }
            }
            Damage::AddUnknownKey => {
                if let Some(Value::Object(map)) = at_path(&mut doc, &target) {
                    map.insert("surely_unknown".into(), Value::from(1));
                } else if let Value::Object(map) = &mut doc {
                    map.insert("surely_unknown".into(), Value::from(1));
                }
            }
        }
        let text = doc.to_string();
        if let Err(errors) = parse_task_spec(&text) {
            prop_assert!(!errors.0.is_empty());
            let mut known = Vec::new();
            paths(&doc, String::new(), &mut known);
            paths(&original, String::new(), &mut known);
            for e in &errors.0 {
                prop_assert!(!e.field.is_empty(), "a rejection without a field: {e:?} for {how:?} at {target}");
                let named = e.field.trim_end_matches(".surely_unknown");
                let root = named.split(['.', '[']).next().unwrap_or_default();
                prop_assert!(
                    known.iter().any(|k| k == named || k.starts_with(&format!("{named}.")) || k.starts_with(&format!("{named}[")))
                        || e.field.ends_with("surely_unknown")
                        || known.iter().any(|k| k == root),
                    "field {} is not in the document ({how:?} at {target}): {}", e.field, e.message
                );
                prop_assert!(!e.message.is_empty());
            }
        }
    }
}
