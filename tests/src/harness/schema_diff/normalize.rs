//! A small SQL tokenizer, just enough to compare two pieces of SQL modulo white space, quoting
//! and renames. Written apart from the engine's lexer on purpose.

/// Tokenizes SQL just enough to compare it: strings and comments are kept as they are, runs of
/// white space become one space, identifiers (bare or backticked) are unquoted, lowercased for
/// keyword-insensitivity only when bare, and renamed through `rename`.
pub fn normalize_sql(sql: &str, rename: &dyn Fn(&str) -> Option<String>) -> String {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let mut pending_space = false;
    let push = |out: &mut String, pending: &mut bool, s: &str| {
        if *pending && !out.is_empty() {
            out.push(' ');
        }
        *pending = false;
        out.push_str(s);
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            pending_space = true;
            i += 1;
        } else if c == '\'' || c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() {
                if chars[i] == '\\' {
                    i += 2;
                    continue;
                }
                if chars[i] == c {
                    if i + 1 < chars.len() && chars[i + 1] == c {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i = (i + 1).min(chars.len());
            let s: String = chars[start..i].iter().collect();
            push(&mut out, &mut pending_space, &s);
        } else if c == '`' {
            let mut name = String::new();
            i += 1;
            while i < chars.len() {
                if chars[i] == '`' {
                    if i + 1 < chars.len() && chars[i + 1] == '`' {
                        name.push('`');
                        i += 2;
                        continue;
                    }
                    break;
                }
                name.push(chars[i]);
                i += 1;
            }
            i += 1;
            let mapped = rename(&name).unwrap_or(name);
            push(&mut out, &mut pending_space, &format!("`{mapped}`"));
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let token = match rename(&word) {
                Some(mapped) => format!("`{mapped}`"),
                None => format!("`{word}`"),
            };
            push(&mut out, &mut pending_space, &token);
        } else {
            push(&mut out, &mut pending_space, &c.to_string());
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_renames_bare_and_quoted_identifiers_but_not_strings() {
        let rename = |w: &str| (w.eq_ignore_ascii_case("orders")).then(|| "orders_v2".to_owned());
        let a = normalize_sql(
            "select `orders`.id  from orders where x = 'orders'",
            &rename,
        );
        let b = normalize_sql(
            "select orders_v2.`id` from `orders_v2` where x = 'orders'",
            &|_| None,
        );
        assert_eq!(a, b);
        let c = normalize_sql("select 1 from t where x = 'other'", &|_| None);
        assert_ne!(a, c);
    }
}
