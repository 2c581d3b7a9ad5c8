//! Lexical helpers for RFC 3261 §25.1 basic rules: tokens, LWS, quoted strings
//! and parameter lists. All functions work on `&str` and never panic.

/// `token` characters (RFC 3261 §25.1).
pub(crate) fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c)
}

/// True if `s` is a non-empty token.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// `word` characters (Call-ID), RFC 3261 §25.1.
pub(crate) fn is_word_char(c: u8) -> bool {
    is_token_char(c) || b"()<>:\\\"/[]?{}".contains(&c)
}

/// Trims SP and HTAB (folding was already replaced by SP).
pub(crate) fn trim_lws(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

/// If `s` starts with a quoted-string, returns (its unescaped content, rest).
pub(crate) fn quoted_string(s: &str) -> Option<(String, &str)> {
    let b = s.as_bytes();
    if b.first() != Some(&b'"') {
        return None;
    }
    let mut out = String::new();
    let mut i = 1;
    let mut start = 1;
    while i < b.len() {
        match b[i] {
            b'"' => {
                out.push_str(&s[start..i]);
                return Some((out, &s[i + 1..]));
            }
            b'\\' => {
                out.push_str(&s[start..i]);
                // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
                let next = *b.get(i + 1)?;
                if next > 0x7f || next == b'\r' || next == b'\n' {
                    return None;
                }
                out.push(next as char);
                i += 2;
                start = i;
            }
            _ => i += 1,
        }
    }
    None
}

/// Splits a header value on top-level commas: commas inside quoted strings
/// or `<...>` do not split. Returns `None` on an unbalanced quote or bracket.
pub(crate) fn split_commas(s: &str) -> Option<Vec<&str>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let (mut in_q, mut in_angle, mut esc) = (false, false, false);
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        if in_q {
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_q = false;
            }
            continue;
        }
        match c {
            b'"' => in_q = true,
            b'<' if !in_angle => in_angle = true,
            b'>' if in_angle => in_angle = false,
            b',' if !in_angle => {
                out.push(trim_lws(&s[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    if in_q || in_angle {
        return None;
    }
    out.push(trim_lws(&s[start..]));
    Some(out)
}

/// A `;name[=value]` parameter as received (value unquoted if it was quoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Parameter name, as received.
    pub name: String,
    /// Value, if any (quotes removed).
    pub value: Option<String>,
}

impl Param {
    /// A parameter with a value.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Param {
            name: name.into(),
            value: Some(value.into()),
        }
    }
    /// A flag parameter (`;lr`).
    pub fn flag(name: impl Into<String>) -> Self {
        Param {
            name: name.into(),
            value: None,
        }
    }
}

/// Finds a parameter by case-insensitive name.
pub fn find_param<'a>(params: &'a [Param], name: &str) -> Option<&'a Param> {
    params.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// Characters allowed unquoted in a generic-param value: token, IPv6
/// reference (`[..]`) or host.
fn is_gen_value_char(c: u8) -> bool {
    is_token_char(c) || c == b':' || c == b'[' || c == b']'
}

/// Parses `*( SEMI generic-param )` (RFC 3261 §25.1: `generic-param = token
/// [ EQUAL gen-value ]`, `gen-value = token / host / quoted-string`) from the
/// start of `s`. Stops at the first character that cannot continue the list
/// (typically `,` or end). Returns the params and the rest. LWS around `;` and
/// `=` is allowed. Empty parameters (`;;`) are errors.
pub(crate) fn params(mut s: &str) -> Result<(Vec<Param>, &str), &'static str> {
    let mut out = Vec::new();
    loop {
        let t = trim_lws(s);
        let Some(after) = t.strip_prefix(';') else {
            return Ok((out, s));
        };
        let after = after.trim_start_matches([' ', '\t']);
        let name_len = after.bytes().take_while(|&c| is_token_char(c)).count();
        if name_len == 0 {
            return Err("empty parameter");
        }
        let name = &after[..name_len];
        let rest = after[name_len..].trim_start_matches([' ', '\t']);
        if let Some(v) = rest.strip_prefix('=') {
            let v = v.trim_start_matches([' ', '\t']);
            if v.starts_with('"') {
                let (val, r) = quoted_string(v).ok_or("unterminated quoted parameter")?;
                out.push(Param::new(name, val));
                s = r;
            } else {
                let n = v.bytes().take_while(|&c| is_gen_value_char(c)).count();
                if n == 0 {
                    return Err("empty parameter value");
                }
                out.push(Param::new(name, &v[..n]));
                s = &v[n..];
            }
        } else {
            out.push(Param::flag(name));
            s = rest;
        }
    }
}

/// Writes `;name[=value]` for each parameter, quoting values that are not
/// plain gen-values.
pub(crate) fn write_params(out: &mut String, params: &[Param]) {
    for p in params {
        out.push(';');
        out.push_str(&p.name);
        if let Some(v) = &p.value {
            out.push('=');
            if !v.is_empty() && v.bytes().all(is_gen_value_char) {
                out.push_str(v);
            } else {
                write_quoted(out, v);
            }
        }
    }
}

/// Writes `s` as a quoted-string, escaping `"` and `\`.
pub(crate) fn write_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted() {
        assert_eq!(
            quoted_string(r#""a\"b" rest"#),
            Some(("a\"b".into(), " rest"))
        );
        assert_eq!(quoted_string(r#""open"#), None);
        assert_eq!(quoted_string(r#""x\"#), None);
    }

    #[test]
    fn commas() {
        let v = split_commas(r#""a,b" <sip:x;a=1,2>, <sip:y>"#).unwrap();
        assert_eq!(v, vec![r#""a,b" <sip:x;a=1,2>"#, "<sip:y>"]);
        assert!(split_commas(r#""a"#).is_none());
    }

    #[test]
    fn param_list() {
        let (p, rest) = params(" ; tag = 1918 ;lr;q=0.5, next").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0], Param::new("tag", "1918"));
        assert_eq!(p[1], Param::flag("lr"));
        assert_eq!(rest, ", next");
        assert!(params(";;").is_err());
        assert!(params("; a=").is_err());
    }
}
