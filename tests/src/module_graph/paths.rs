//! The paths a source file names: its `use` trees and the `crate::`/`super::` paths written in
//! code, read from tokens (comments, strings and char literals skipped), resolved to module
//! paths.

/// Every path anchored at `crate`, `super` or `self` that `source` names in a `use` or in code,
/// resolved from the module it is written in (`module`, plus any inline `mod x { }` around it),
/// with the line it starts on.
pub(super) fn referenced_paths(source: &str, module: &[String]) -> Vec<(Vec<String>, usize)> {
    let tokens = tokenize(source);
    let mut out = Vec::new();
    // One entry per open brace: the inline module it opens, if it does.
    let mut braces: Vec<Option<String>> = Vec::new();
    let mut pending_mod: Option<String> = None;
    let mut i = 0;
    let current = |braces: &[Option<String>]| {
        let mut m = module.to_vec();
        m.extend(braces.iter().flatten().cloned());
        m
    };
    while i < tokens.len() {
        let token = &tokens[i];
        match token.text.as_str() {
            "{" => {
                braces.push(pending_mod.take());
                i += 1;
            }
            "}" => {
                braces.pop();
                pending_mod = None;
                i += 1;
            }
            ";" => {
                pending_mod = None;
                i += 1;
            }
            "mod" if token.ident => {
                pending_mod = tokens
                    .get(i + 1)
                    .filter(|t| t.ident)
                    .map(|t| t.text.clone());
                i += 2;
            }
            "use" if token.ident => {
                let line = token.line;
                let mut trees = Vec::new();
                i = parse_use_tree(&tokens, i + 1, Vec::new(), true, &mut trees);
                let here = current(&braces);
                for tree in trees {
                    if let Some(path) = resolve(&tree, &here) {
                        out.push((path, line));
                    }
                }
            }
            "crate" | "super" | "self"
                if token.ident
                    && tokens.get(i + 1).is_some_and(|t| t.text == "::")
                    && !(i > 0 && tokens[i - 1].text == "::") =>
            {
                let line = token.line;
                let in_visibility = i >= 3
                    && tokens[i - 1].text == "in"
                    && tokens[i - 2].text == "("
                    && tokens[i - 3].text == "pub";
                let mut path = vec![token.text.clone()];
                i += 1;
                while i + 1 < tokens.len() && tokens[i].text == "::" && tokens[i + 1].ident {
                    path.push(tokens[i + 1].text.clone());
                    i += 2;
                }
                if !in_visibility && let Some(path) = resolve(&path, &current(&braces)) {
                    out.push((path, line));
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// Expands the use tree starting at `i` into full paths (`a::{b, c::d}` into `a::b`, `a::c::d`),
/// returning the index after it (`top`: past the `;` that ends the declaration).
fn parse_use_tree(
    tokens: &[Token],
    mut i: usize,
    mut prefix: Vec<String>,
    top: bool,
    out: &mut Vec<Vec<String>>,
) -> usize {
    loop {
        let Some(token) = tokens.get(i) else {
            out.push(prefix);
            return i;
        };
        match token.text.as_str() {
            "::" => i += 1,
            "*" => {
                prefix.push("*".to_owned());
                i += 1;
            }
            "{" => {
                i += 1;
                loop {
                    match tokens.get(i).map(|t| t.text.as_str()) {
                        // A `;` inside a group is a broken tree (a macro's?): stop there.
                        None | Some(";") => break,
                        Some("}") => {
                            i += 1;
                            break;
                        }
                        Some(",") => i += 1,
                        Some(_) => i = parse_use_tree(tokens, i, prefix.clone(), false, out),
                    }
                }
                if top {
                    // Past the `;` that ends the declaration.
                    while tokens.get(i).is_some_and(|t| t.text != ";") {
                        i += 1;
                    }
                    return i + 1;
                }
                return i;
            }
            "as" if token.ident => i += 2,
            "," | "}" => {
                out.push(prefix);
                return i;
            }
            ";" => {
                out.push(prefix);
                return if top { i + 1 } else { i };
            }
            _ if token.ident => {
                prefix.push(token.text.clone());
                i += 1;
            }
            _ => i += 1,
        }
    }
}

/// An anchored path made absolute (from the crate root); `None` for a path into another crate
/// or a name in scope.
pub(super) fn resolve(path: &[String], module: &[String]) -> Option<Vec<String>> {
    let (first, rest) = path.split_first()?;
    let mut absolute = match first.as_str() {
        "crate" => Vec::new(),
        "self" => module.to_vec(),
        "super" => {
            let mut base = module.to_vec();
            base.pop()?;
            base
        }
        _ => return None,
    };
    let mut rest = rest.iter().peekable();
    while rest.peek().is_some_and(|s| *s == "super") {
        absolute.pop()?;
        rest.next();
    }
    // `self` inside a group (`a::{self, b}`) names the group's prefix.
    absolute.extend(rest.filter(|s| *s != "self").cloned());
    Some(absolute)
}

#[derive(Debug, Clone)]
struct Token {
    text: String,
    ident: bool,
    line: usize,
}

/// Rust's tokens as far as paths need them: identifiers (keywords included), `::` and single
/// punctuation; comments, string, char and number literals and lifetimes are dropped.
fn tokenize(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let is_ident_start = |c: char| c == '_' || c.is_alphabetic();
    let is_ident = |c: char| c == '_' || c.is_alphanumeric();
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            _ if c.is_whitespace() => i += 1,
            '/' if at(i + 1) == '/' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if at(i + 1) == '*' => {
                let mut depth = 0;
                while i < chars.len() {
                    if chars[i] == '/' && at(i + 1) == '*' {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && at(i + 1) == '/' {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        if chars[i] == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
            }
            '"' => i = skip_string(&chars, i + 1, &mut line),
            // Raw strings: r"..", r#".."#, br"..", cr#".."#.
            'r' | 'b' | 'c' if raw_string_start(&chars, i).is_some() => {
                let (hashes, quote) = raw_string_start(&chars, i).unwrap_or((0, i));
                i = quote + 1;
                while i < chars.len() {
                    if chars[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                        i += 1 + hashes;
                        break;
                    }
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
            // Byte and C strings, byte chars: b"..", c"..", b'.'.
            'b' | 'c' if at(i + 1) == '"' => i = skip_string(&chars, i + 2, &mut line),
            'b' if at(i + 1) == '\'' => i = skip_char(&chars, i + 1),
            '\'' => {
                if at(i + 1) == '\\' || at(i + 2) == '\'' {
                    i = skip_char(&chars, i);
                } else {
                    // A lifetime or a label.
                    i += 1;
                    while is_ident(at(i)) {
                        i += 1;
                    }
                }
            }
            ':' if at(i + 1) == ':' => {
                tokens.push(Token {
                    text: "::".into(),
                    ident: false,
                    line,
                });
                i += 2;
            }
            '$' if chars
                .get(i + 1..i + 6)
                .is_some_and(|s| s.iter().copied().eq("crate".chars()))
                && !is_ident(at(i + 6)) =>
            {
                // `$crate` in a macro is this crate.
                tokens.push(Token {
                    text: "crate".into(),
                    ident: true,
                    line,
                });
                i += 6;
            }
            _ if c.is_ascii_digit() => {
                while is_ident(at(i)) {
                    i += 1;
                }
            }
            _ if is_ident_start(c) => {
                // A raw identifier (`r#type`) is the identifier.
                if c == 'r' && at(i + 1) == '#' && is_ident_start(at(i + 2)) {
                    i += 2;
                }
                let start = i;
                while is_ident(at(i)) {
                    i += 1;
                }
                tokens.push(Token {
                    text: chars[start..i].iter().collect(),
                    ident: true,
                    line,
                });
            }
            _ => {
                tokens.push(Token {
                    text: c.to_string(),
                    ident: false,
                    line,
                });
                i += 1;
            }
        }
    }
    tokens
}

/// Past the closing quote of a string whose body starts at `i`.
fn skip_string(chars: &[char], mut i: usize, line: &mut usize) -> usize {
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            c => {
                if c == '\n' {
                    *line += 1;
                }
                i += 1;
            }
        }
    }
    i
}

/// Past a char literal whose opening quote is at `i`.
fn skip_char(chars: &[char], mut i: usize) -> usize {
    i += 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '\'' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// For a raw string starting at `i` (`r`, `br` or `cr`): its number of `#` and its opening
/// quote's index.
fn raw_string_start(chars: &[char], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    if matches!(chars.get(j), Some('b' | 'c')) {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = chars[j..].iter().take_while(|c| **c == '#').count();
    (chars.get(j + hashes) == Some(&'"')).then_some((hashes, j + hashes))
}
