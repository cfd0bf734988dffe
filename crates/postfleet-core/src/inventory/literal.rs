//! Values of an INI inventory, typed as Ansible types them: `ast.literal_eval`, and the text
//! as it is when it is not a Python literal.
//!
//! Literals: integers (`25`, `-1`, `0x1f`, `0o17`, `0b101`, `1_000`), floats (`1.5`, `.5`,
//! `1e3`), strings in any of Python's quotes with their escapes and prefixes (`'a'`, `"a"`,
//! `r'\d'`, `'a' 'b'` is `'ab'`), `True`, `False`, `None`, and lists, tuples, sets and dicts of
//! those (`1, 2` is a tuple). A `#` outside a string starts a comment. What JSON cannot hold
//! (a complex number, an integer past 64 bits, an infinite float) stays text, as do `0644`
//! and `yes`, which are not Python literals, and brackets nested deeper than Python parses.

use serde_json::{Map, Number, Value};

/// `text` as Ansible's INI plugin reads a value.
pub(crate) fn value(text: &str) -> Value {
    literal(text).unwrap_or_else(|| Value::String(text.to_string()))
}

/// The Python literal `text` is, or None when it is not one.
pub(crate) fn literal(text: &str) -> Option<Value> {
    let tokens = tokenize(text.trim_start_matches([' ', '\t']))?;
    let mut parser = Parser {
        tokens: &tokens,
        at: 0,
    };
    let value = parser.top()?;
    (parser.at == tokens.len()).then_some(value)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Int(Option<i128>),
    Float(Option<f64>),
    Imaginary,
    Str(String),
    Bytes(String),
    /// `...`: Ansible turns it back into the text "...".
    Ellipsis,
    Name(String),
    Punct(char),
}

/// Python's tokenizer refuses brackets nested deeper than this ("too many nested
/// parentheses"): the value then stays text. It also keeps the parser's recursion short.
const MAX_NESTING: usize = 200;

fn tokenize(text: &str) -> Option<Vec<Token>> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut nesting = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == ' ' || c == '\t' || c == '\x0c' {
            i += 1;
        } else if c == '#' {
            break;
        } else if "[](){},:+-".contains(c) {
            if "([{".contains(c) {
                nesting += 1;
                if nesting > MAX_NESTING {
                    return None;
                }
            } else if ")]}".contains(c) {
                nesting = usize::saturating_sub(nesting, 1);
            }
            tokens.push(Token::Punct(c));
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let (token, next) = number(&chars, i)?;
            tokens.push(token);
            i = next;
        } else if c == '\'' || c == '"' {
            let (token, next) = string(&chars, i, "")?;
            tokens.push(token);
            i = next;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if matches!(chars.get(i), Some('\'' | '"')) {
                let prefix = word.to_ascii_lowercase();
                if matches!(prefix.as_str(), "r" | "u" | "b" | "br" | "rb") {
                    let (token, next) = string(&chars, i, &prefix)?;
                    tokens.push(token);
                    i = next;
                    continue;
                }
                return None; // f-strings and unknown prefixes are not literals
            }
            tokens.push(Token::Name(word));
        } else if c == '.' && chars.get(i + 1) == Some(&'.') && chars.get(i + 2) == Some(&'.') {
            tokens.push(Token::Ellipsis);
            i += 3;
        } else {
            return None;
        }
    }
    Some(tokens)
}

/// Digits with single underscores between them, from `i`; the end index.
fn digits(chars: &[char], mut i: usize, radix: u32) -> Option<usize> {
    let start = i;
    while i < chars.len() {
        let separator =
            chars[i] == '_' && i > start && chars.get(i + 1).is_some_and(|c| c.is_digit(radix));
        if chars[i].is_digit(radix) || separator {
            i += 1;
        } else {
            break;
        }
    }
    (i > start).then_some(i)
}

fn number(chars: &[char], start: usize) -> Option<(Token, usize)> {
    let text = |from: usize, to: usize| -> String {
        chars[from..to].iter().filter(|c| **c != '_').collect()
    };
    let ends_well = |i: usize| {
        !chars
            .get(i)
            .is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
    };
    // 0x, 0o, 0b
    if chars[start] == '0' {
        if let Some(radix) = match chars.get(start + 1).map(char::to_ascii_lowercase) {
            Some('x') => Some(16),
            Some('o') => Some(8),
            Some('b') => Some(2),
            _ => None,
        } {
            let from = if chars.get(start + 2) == Some(&'_') {
                start + 3
            } else {
                start + 2
            };
            let end = digits(chars, from, radix)?;
            if !ends_well(end) {
                return None;
            }
            let value = i128::from_str_radix(&text(from, end), radix).ok();
            return Some((Token::Int(value), end));
        }
    }
    let mut i = start;
    let mut is_float = false;
    let int_end = if chars[i] == '.' {
        None
    } else {
        Some(digits(chars, i, 10)?)
    };
    if let Some(end) = int_end {
        i = end;
    }
    if chars.get(i) == Some(&'.') {
        is_float = true;
        i += 1;
        if chars.get(i).is_some_and(char::is_ascii_digit) {
            i = digits(chars, i, 10)?;
        } else if int_end.is_none() {
            return None;
        }
    }
    if matches!(chars.get(i), Some('e' | 'E')) {
        let mut j = i + 1;
        if matches!(chars.get(j), Some('+' | '-')) {
            j += 1;
        }
        i = digits(chars, j, 10)?;
        is_float = true;
    }
    if matches!(chars.get(i), Some('j' | 'J')) {
        i += 1;
        if !ends_well(i) {
            return None;
        }
        return Some((Token::Imaginary, i));
    }
    if !ends_well(i) {
        return None;
    }
    let written = text(start, i);
    if is_float {
        let value = written.parse::<f64>().ok().filter(|f| f.is_finite());
        return Some((Token::Float(value), i));
    }
    // Python refuses leading zeros in a decimal integer (`0644`), except for zero itself.
    if written.len() > 1 && written.starts_with('0') && written.chars().any(|c| c != '0') {
        return None;
    }
    Some((Token::Int(written.parse::<i128>().ok()), i))
}

/// A string literal whose quote is at `start`; `prefix` is lower case (`r`, `b`, `rb`...).
fn string(chars: &[char], start: usize, prefix: &str) -> Option<(Token, usize)> {
    let quote = chars[start];
    let triple = chars.get(start + 1) == Some(&quote) && chars.get(start + 2) == Some(&quote);
    let raw = prefix.contains('r');
    let bytes = prefix.contains('b');
    let mut i = start + if triple { 3 } else { 1 };
    let mut out = String::new();
    loop {
        let c = *chars.get(i)?;
        if c == quote {
            if !triple {
                i += 1;
                break;
            }
            if chars.get(i + 1) == Some(&quote) && chars.get(i + 2) == Some(&quote) {
                i += 3;
                break;
            }
            out.push(c);
            i += 1;
            continue;
        }
        if bytes && !c.is_ascii() {
            return None;
        }
        if c != '\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let next = *chars.get(i + 1)?;
        if raw {
            // A backslash stays, and keeps the next character from ending the string.
            out.push('\\');
            out.push(next);
            i += 2;
            continue;
        }
        i += 2;
        match next {
            '\n' => {}
            '\\' | '\'' | '"' => out.push(next),
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            '0'..='7' => {
                let mut code = next.to_digit(8)?;
                for _ in 0..2 {
                    match chars.get(i).and_then(|c| c.to_digit(8)) {
                        Some(d) => {
                            code = code * 8 + d;
                            i += 1;
                        }
                        None => break,
                    }
                }
                if bytes && code > 0xff {
                    return None;
                }
                out.push(char::from_u32(code)?);
            }
            'x' => {
                out.push(hex_escape(chars, &mut i, 2)?);
            }
            'u' if !bytes => out.push(hex_escape(chars, &mut i, 4)?),
            'U' if !bytes => out.push(hex_escape(chars, &mut i, 8)?),
            // \N{NAME} needs Unicode's name table: not read here, the value stays text.
            'N' if !bytes => return None,
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    Some((
        if bytes {
            Token::Bytes(out)
        } else {
            Token::Str(out)
        },
        i,
    ))
}

fn hex_escape(chars: &[char], i: &mut usize, len: usize) -> Option<char> {
    let digits: String = chars.get(*i..*i + len)?.iter().collect();
    if !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    *i += len;
    char::from_u32(u32::from_str_radix(&digits, 16).ok()?)
}

/// A parsed literal: a JSON value, or one JSON cannot hold (its text stands for it).
enum Lit {
    Value(Value),
    Unrepresentable,
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Token::Punct(c)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// The whole text: one element, or a tuple of them (`1, 2`).
    fn top(&mut self) -> Option<Value> {
        let first = self.element()?;
        if !self.eat(',') {
            return to_value(first);
        }
        let mut items = vec![first];
        while self.at < self.tokens.len() {
            items.push(self.element()?);
            if !self.eat(',') {
                break;
            }
        }
        Some(Value::Array(values(items)?))
    }

    fn element(&mut self) -> Option<Lit> {
        match self.peek()?.clone() {
            Token::Punct('+') | Token::Punct('-') => {
                let negative = self.eat('-');
                if !negative {
                    self.at += 1;
                }
                let number = self.number(negative)?;
                self.complex_tail(number)
            }
            Token::Int(_) | Token::Float(_) | Token::Imaginary => {
                let number = self.number(false)?;
                self.complex_tail(number)
            }
            Token::Str(_) | Token::Bytes(_) => self.strings(),
            Token::Ellipsis => {
                self.at += 1;
                Some(Lit::Value(Value::String("...".into())))
            }
            Token::Name(name) => {
                self.at += 1;
                match name.as_str() {
                    "True" => Some(Lit::Value(Value::Bool(true))),
                    "False" => Some(Lit::Value(Value::Bool(false))),
                    "None" => Some(Lit::Value(Value::Null)),
                    "set" if self.eat('(') && self.eat(')') => {
                        Some(Lit::Value(Value::Array(Vec::new())))
                    }
                    _ => None,
                }
            }
            Token::Punct('[') => {
                self.at += 1;
                let items = self.sequence(']')?;
                Some(Lit::Value(Value::Array(values(items)?)))
            }
            Token::Punct('(') => {
                self.at += 1;
                if self.eat(')') {
                    return Some(Lit::Value(Value::Array(Vec::new())));
                }
                let first = self.element()?;
                if self.eat(')') {
                    return Some(first); // parentheses, not a tuple
                }
                if !self.eat(',') {
                    return None;
                }
                let mut items = vec![first];
                items.extend(self.sequence(')')?);
                Some(Lit::Value(Value::Array(values(items)?)))
            }
            Token::Punct('{') => {
                self.at += 1;
                self.braces()
            }
            Token::Punct(_) => None,
        }
    }

    /// Items up to `close` (a trailing comma allowed), the opening bracket eaten.
    fn sequence(&mut self, close: char) -> Option<Vec<Lit>> {
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                return Some(items);
            }
            items.push(self.element()?);
            if !self.eat(',') {
                return self.eat(close).then_some(items);
            }
        }
    }

    /// A dict or a set, the `{` eaten.
    fn braces(&mut self) -> Option<Lit> {
        if self.eat('}') {
            return Some(Lit::Value(Value::Object(Map::new())));
        }
        let first = self.element()?;
        if !self.eat(':') {
            // a set: its items, each once, in the order written
            let mut items = vec![first];
            if self.eat(',') {
                items.extend(self.sequence('}')?);
            } else if !self.eat('}') {
                return None;
            }
            let mut unique: Vec<Value> = Vec::new();
            for item in values(items)? {
                if matches!(item, Value::Array(_) | Value::Object(_)) {
                    return None; // unhashable
                }
                if !unique.contains(&item) {
                    unique.push(item);
                }
            }
            return Some(Lit::Value(Value::Array(unique)));
        }
        let mut map = Map::new();
        let mut key = first;
        loop {
            let value = self.element()?;
            let key_text = match key {
                Lit::Value(Value::String(s)) => s,
                Lit::Value(Value::Array(_) | Value::Object(_)) => return None, // unhashable
                Lit::Value(other) => python_text(&other),
                Lit::Unrepresentable => return None,
            };
            let value = match value {
                Lit::Value(v) => v,
                Lit::Unrepresentable => return None,
            };
            map.insert(key_text, value);
            if !self.eat(',') {
                return self.eat('}').then_some(Lit::Value(Value::Object(map)));
            }
            if self.eat('}') {
                return Some(Lit::Value(Value::Object(map)));
            }
            key = self.element()?;
            if !self.eat(':') {
                return None;
            }
        }
    }

    /// A number (the sign eaten); booleans are not numbers here, as in Python's literal_eval.
    fn number(&mut self, negative: bool) -> Option<Lit> {
        let token = self.peek()?.clone();
        self.at += 1;
        Some(match token {
            Token::Int(Some(n)) => {
                let n = if negative { -n } else { n };
                match i64::try_from(n) {
                    Ok(n) => Lit::Value(Value::from(n)),
                    Err(_) => match u64::try_from(n) {
                        Ok(n) => Lit::Value(Value::from(n)),
                        Err(_) => Lit::Unrepresentable,
                    },
                }
            }
            Token::Float(Some(f)) => {
                let f = if negative { -f } else { f };
                Number::from_f64(f).map_or(Lit::Unrepresentable, |n| Lit::Value(Value::Number(n)))
            }
            Token::Int(None) | Token::Float(None) | Token::Imaginary => Lit::Unrepresentable,
            _ => return None,
        })
    }

    /// `1+2j`: a real number, then `+`/`-` and an imaginary one, is a complex number.
    fn complex_tail(&mut self, real: Lit) -> Option<Lit> {
        if matches!(self.peek(), Some(Token::Punct('+' | '-')))
            && matches!(self.tokens.get(self.at + 1), Some(Token::Imaginary))
        {
            self.at += 2;
            return Some(Lit::Unrepresentable);
        }
        Some(real)
    }

    /// Adjacent strings join (`'a' 'b'`), bytes with bytes only.
    fn strings(&mut self) -> Option<Lit> {
        let mut out = String::new();
        let mut kind = None;
        while let Some(token) = self.peek() {
            let (text, is_bytes) = match token {
                Token::Str(s) => (s, false),
                Token::Bytes(s) => (s, true),
                _ => break,
            };
            if kind.is_some_and(|k| k != is_bytes) {
                return None;
            }
            kind = Some(is_bytes);
            out.push_str(text);
            self.at += 1;
        }
        Some(Lit::Value(Value::String(out)))
    }
}

/// Every item as a JSON value; an item JSON cannot hold becomes its Python spelling, which
/// is not known here: the whole value then stays text.
fn values(items: Vec<Lit>) -> Option<Vec<Value>> {
    items
        .into_iter()
        .map(|item| match item {
            Lit::Value(v) => Some(v),
            Lit::Unrepresentable => None,
        })
        .collect()
}

fn to_value(lit: Lit) -> Option<Value> {
    match lit {
        Lit::Value(v) => Some(v),
        Lit::Unrepresentable => None,
    }
}

/// A dict key that is not a string, as Python would print it.
fn python_text(value: &Value) -> String {
    match value {
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{literal, value};
    use serde_json::json;

    #[test]
    fn numbers() {
        for (text, want) in [
            ("25", json!(25)),
            ("-1", json!(-1)),
            ("+7", json!(7)),
            ("- 3", json!(-3)),
            ("0", json!(0)),
            ("00", json!(0)),
            ("0x1f", json!(31)),
            ("0X1F", json!(31)),
            ("0o17", json!(15)),
            ("0b101", json!(5)),
            ("-0x10", json!(-16)),
            ("1_000", json!(1000)),
            ("1.5", json!(1.5)),
            (".5", json!(0.5)),
            ("5.", json!(5.0)),
            ("1e3", json!(1000.0)),
            ("-2.5E-1", json!(-0.25)),
            ("18446744073709551615", json!(18446744073709551615u64)),
        ] {
            assert_eq!(literal(text), Some(want), "{text}");
        }
    }

    #[test]
    fn what_is_not_a_python_literal_stays_text() {
        for text in [
            "0644",
            "yes",
            "true",
            "hello world",
            "1_",
            "1__0",
            "0x",
            "1abc",
            "--5",
            "-True",
            "1 + 2",
            "a.b",
            "f'x'",
            "'unclosed",
            "[1, 2",
            "1j",
            "1+2j",
            "[1j]",
            "1e400",
            "99999999999999999999999",
            "{[1]: 2}",
            "'\\N{BULLET}'",
            "",
            "not True",
            "'a' b'b'",
            "... 'a'",
            "'a' ...",
            "smtp.example.org:25",
            "[relay.example.net]:25",
        ] {
            assert_eq!(value(text), json!(text), "{text}");
        }
    }

    #[test]
    fn constants_strings_and_escapes() {
        assert_eq!(literal("True"), Some(json!(true)));
        assert_eq!(literal("False"), Some(json!(false)));
        assert_eq!(literal("None"), Some(json!(null)));
        assert_eq!(literal("'a b'"), Some(json!("a b")));
        assert_eq!(literal("\"it's\""), Some(json!("it's")));
        assert_eq!(
            literal(r"'a\tb\n\x41\u00e9\101\\\''"),
            Some(json!("a\tb\nAéA\\'"))
        );
        assert_eq!(literal(r"'\d'"), Some(json!("\\d")));
        assert_eq!(literal(r"r'\d\''"), Some(json!("\\d\\'")));
        assert_eq!(literal("'a' \"b\""), Some(json!("ab")));
        assert_eq!(literal("b'x'"), Some(json!("x")));
        assert_eq!(literal("u'x'"), Some(json!("x")));
        assert_eq!(literal("'''a'b'''"), Some(json!("a'b")));
        assert_eq!(literal("'03#pa33w0rd'"), Some(json!("03#pa33w0rd")));
        assert_eq!(literal("..."), Some(json!("...")));
    }

    #[test]
    fn containers_and_comments() {
        assert_eq!(literal("[1, 'a', None]"), Some(json!([1, "a", null])));
        assert_eq!(literal("[1, 2,]"), Some(json!([1, 2])));
        assert_eq!(literal("[]"), Some(json!([])));
        assert_eq!(literal("(1, 2)"), Some(json!([1, 2])));
        assert_eq!(literal("(1,)"), Some(json!([1])));
        assert_eq!(literal("(1)"), Some(json!(1)));
        assert_eq!(literal("()"), Some(json!([])));
        assert_eq!(literal("25,587"), Some(json!([25, 587])));
        assert_eq!(literal("1,"), Some(json!([1])));
        assert_eq!(
            literal("{'a': 1, 'b': [True], 2: 'x', None: 0}"),
            Some(json!({"a": 1, "b": [true], "2": "x", "None": 0}))
        );
        assert_eq!(literal("{}"), Some(json!({})));
        assert_eq!(literal("{1, 2, 1}"), Some(json!([1, 2])));
        assert_eq!(literal("set()"), Some(json!([])));
        assert_eq!(literal("8080 # the port"), Some(json!(8080)));
        assert_eq!(literal("  5"), Some(json!(5)));
        assert_eq!(
            value("hello # not a comment"),
            json!("hello # not a comment")
        );
        assert_eq!(
            literal("[1, [2, {'k': (3,)}]]"),
            Some(json!([1, [2, {"k": [3]}]]))
        );
        assert_eq!(literal("[1, 2] 3"), None);
        assert_eq!(literal("[...]"), Some(json!(["..."])));
        assert_eq!(literal("{'a' 1}"), None);
    }

    #[test]
    fn nesting_deeper_than_python_allows_stays_text_without_deep_recursion() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let mut want = json!([]);
        for _ in 1..200 {
            want = json!([want]);
        }
        assert_eq!(literal(&nested(200)), Some(want));
        // Python: "too many nested parentheses", so Ansible keeps the text
        assert_eq!(literal(&nested(201)), None);
        // far deeper, closed or not: text, and no stack overflow
        let deep = "(".repeat(1_000_000);
        assert_eq!(value(&deep), json!(deep));
        assert_eq!(literal(&nested(1_000_000)), None);
    }
}
