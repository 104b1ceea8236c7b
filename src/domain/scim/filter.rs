//! The SCIM filter and PATCH path grammar (RFC 7644 §3.4.2.2 and §3.5.2), parsed into a tree.
//! Attribute names are kept as written; resolving them against a schema is the caller's job.

use super::{ScimType, ScimViolation};

/// `[schemaURN ":"] attr ["." subAttr]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttrPath {
    pub schema: Option<String>,
    pub attr: String,
    pub sub_attr: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    String(String),
    Number(serde_json::Number),
    Bool(bool),
    Null,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Present(AttrPath),
    Compare(AttrPath, CompareOp, Literal),
    /// `emails[type eq "work"]`: some value of the multi-valued attribute matches the inner filter,
    /// whose paths name sub-attributes.
    ValuePath(AttrPath, Box<Filter>),
}

/// A PATCH `path`: an attribute, optionally narrowed to the values a filter selects, optionally
/// followed by a sub-attribute of those values.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub value_filter: Option<Filter>,
    pub sub_attr: Option<String>,
}

/// The longest filter, in characters (as the OpenAPI document's `maxLength` counts).
pub const MAX_FILTER_LEN: usize = 4096;
const MAX_DEPTH: usize = 32;

/// Whether `text` has more than [`MAX_FILTER_LEN`] characters (counted no further).
pub fn too_long(text: &str) -> bool {
    text.chars().nth(MAX_FILTER_LEN).is_some()
}

pub fn parse_filter(text: &str) -> Result<Filter, ScimViolation> {
    if too_long(text) {
        return Err(invalid_filter(format!(
            "the filter is longer than {MAX_FILTER_LEN} characters"
        )));
    }
    let mut parser = Parser::new(text, invalid_filter)?;
    let filter = parser.filter(0)?;
    parser.expect_end()?;
    Ok(filter)
}

pub fn parse_patch_path(text: &str) -> Result<PatchPath, ScimViolation> {
    let invalid_path = |detail: String| ScimViolation::new(ScimType::InvalidPath, detail);
    let mut parser = Parser::new(text, invalid_path)?;
    let attr = match parser.next() {
        Some(Token::Word(word)) => parse_attr_path(&word, invalid_path)?,
        _ => return Err(invalid_path(format!("\"{text}\" is not an attribute path"))),
    };
    let mut path = PatchPath {
        attr,
        value_filter: None,
        sub_attr: None,
    };
    if parser.peek() == Some(&Token::OpenBracket) {
        parser.next();
        path.value_filter = Some(parser.filter(0)?);
        parser.expect(&Token::CloseBracket, "]")?;
        if let Some(Token::Word(word)) = parser.peek().cloned() {
            let sub = word.strip_prefix('.').ok_or_else(|| {
                invalid_path(format!(
                    "expected \".subAttribute\" after ']' in \"{text}\""
                ))
            })?;
            if sub.is_empty() || sub.contains('.') || sub.contains(':') {
                return Err(invalid_path(format!(
                    "\"{sub}\" is not a sub-attribute name"
                )));
            }
            path.sub_attr = Some(sub.to_owned());
            parser.next();
        }
    }
    parser.expect_end()?;
    Ok(path)
}

fn invalid_filter(detail: String) -> ScimViolation {
    ScimViolation::new(ScimType::InvalidFilter, detail)
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    OpenParen,
    CloseParen,
    OpenBracket,
    CloseBracket,
}

fn tokenize(text: &str, error: fn(String) -> ScimViolation) -> Result<Vec<Token>, ScimViolation> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | '[' | ']' => {
                chars.next();
                tokens.push(match c {
                    '(' => Token::OpenParen,
                    ')' => Token::CloseParen,
                    '[' => Token::OpenBracket,
                    _ => Token::CloseBracket,
                });
            }
            '"' => {
                // A JSON string literal: find its end honouring escapes, then let serde decode it.
                chars.next();
                let mut end = None;
                let mut escaped = false;
                for (i, ch) in chars.by_ref() {
                    match (escaped, ch) {
                        (true, _) => escaped = false,
                        (false, '\\') => escaped = true,
                        (false, '"') => {
                            end = Some(i);
                            break;
                        }
                        _ => {}
                    }
                }
                let end = end.ok_or_else(|| {
                    error(format!("unterminated string starting at character {start}"))
                })?;
                let literal: String = serde_json::from_str(&text[start..=end]).map_err(|e| {
                    error(format!("invalid string literal at character {start}: {e}"))
                })?;
                tokens.push(Token::Str(literal));
            }
            _ => {
                let mut end = text.len();
                while let Some(&(i, ch)) = chars.peek() {
                    if ch.is_whitespace() || matches!(ch, '(' | ')' | '[' | ']' | '"') {
                        end = i;
                        break;
                    }
                    chars.next();
                }
                tokens.push(Token::Word(text[start..end].to_owned()));
            }
        }
    }
    Ok(tokens)
}

fn parse_attr_path(
    word: &str,
    error: fn(String) -> ScimViolation,
) -> Result<AttrPath, ScimViolation> {
    let (schema, rest) = match word.rfind(':') {
        Some(i) => (Some(word[..i].to_owned()), &word[i + 1..]),
        None => (None, word),
    };
    let mut parts = rest.split('.');
    let attr = parts.next().unwrap_or_default();
    let sub_attr = parts.next();
    let valid_name = |name: &str| {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '$')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
    };
    if parts.next().is_some() || !valid_name(attr) || sub_attr.is_some_and(|s| !valid_name(s)) {
        return Err(error(format!("\"{word}\" is not a valid attribute path")));
    }
    Ok(AttrPath {
        schema,
        attr: attr.to_owned(),
        sub_attr: sub_attr.map(str::to_owned),
    })
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    error: fn(String) -> ScimViolation,
}

impl Parser {
    fn new(text: &str, error: fn(String) -> ScimViolation) -> Result<Self, ScimViolation> {
        let tokens = tokenize(text, error)?;
        if tokens.is_empty() {
            return Err(error("the expression is empty".to_owned()));
        }
        Ok(Self {
            tokens,
            pos: 0,
            error,
        })
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword))
    }

    fn fail<T>(&self, detail: String) -> Result<T, ScimViolation> {
        Err((self.error)(detail))
    }

    fn expect(&mut self, token: &Token, shown: &str) -> Result<(), ScimViolation> {
        match self.next() {
            Some(ref t) if t == token => Ok(()),
            Some(other) => self.fail(format!("expected '{shown}' but found {}", describe(&other))),
            None => self.fail(format!("expected '{shown}' but the expression ended")),
        }
    }

    fn expect_end(&self) -> Result<(), ScimViolation> {
        match self.peek() {
            None => Ok(()),
            Some(token) => self.fail(format!(
                "unexpected {} after a complete expression",
                describe(token)
            )),
        }
    }

    // filter := term ("or" term)*
    fn filter(&mut self, depth: usize) -> Result<Filter, ScimViolation> {
        if depth > MAX_DEPTH {
            return self.fail(format!("the filter nests deeper than {MAX_DEPTH} levels"));
        }
        let mut left = self.term(depth)?;
        while self.peek_keyword("or") {
            self.next();
            let right = self.term(depth)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    // term := factor ("and" factor)*
    fn term(&mut self, depth: usize) -> Result<Filter, ScimViolation> {
        let mut left = self.factor(depth)?;
        while self.peek_keyword("and") {
            self.next();
            let right = self.factor(depth)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    // factor := "not" "(" filter ")" | "(" filter ")" | attrPath "[" filter "]" | attrExp
    fn factor(&mut self, depth: usize) -> Result<Filter, ScimViolation> {
        match self.next() {
            Some(Token::OpenParen) => {
                let inner = self.filter(depth + 1)?;
                self.expect(&Token::CloseParen, ")")?;
                Ok(inner)
            }
            Some(Token::Word(word)) if word.eq_ignore_ascii_case("not") => {
                self.expect(&Token::OpenParen, "(")?;
                let inner = self.filter(depth + 1)?;
                self.expect(&Token::CloseParen, ")")?;
                Ok(Filter::Not(Box::new(inner)))
            }
            Some(Token::Word(word)) => {
                let path = parse_attr_path(&word, self.error)?;
                if self.peek() == Some(&Token::OpenBracket) {
                    self.next();
                    let inner = self.filter(depth + 1)?;
                    self.expect(&Token::CloseBracket, "]")?;
                    return Ok(Filter::ValuePath(path, Box::new(inner)));
                }
                self.attr_exp(path, &word)
            }
            Some(other) => self.fail(format!(
                "expected an attribute path but found {}",
                describe(&other)
            )),
            None => {
                self.fail("the expression ended where an attribute path was expected".to_owned())
            }
        }
    }

    fn attr_exp(&mut self, path: AttrPath, shown: &str) -> Result<Filter, ScimViolation> {
        let op = match self.next() {
            Some(Token::Word(op)) => op,
            _ => return self.fail(format!("expected an operator after \"{shown}\"")),
        };
        let op = match op.to_ascii_lowercase().as_str() {
            "pr" => return Ok(Filter::Present(path)),
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "co" => CompareOp::Co,
            "sw" => CompareOp::Sw,
            "ew" => CompareOp::Ew,
            "gt" => CompareOp::Gt,
            "ge" => CompareOp::Ge,
            "lt" => CompareOp::Lt,
            "le" => CompareOp::Le,
            _ => {
                return self.fail(format!(
                    "unknown operator \"{op}\"; use one of eq, ne, co, sw, ew, gt, ge, lt, le, pr"
                ));
            }
        };
        let value = match self.next() {
            Some(Token::Str(s)) => Literal::String(s),
            Some(Token::Word(w)) => match w.as_str() {
                "true" => Literal::Bool(true),
                "false" => Literal::Bool(false),
                "null" => Literal::Null,
                number => match serde_json::from_str::<serde_json::Number>(number) {
                    Ok(n) => Literal::Number(n),
                    Err(_) => {
                        return self.fail(format!(
                            "\"{number}\" is not a value: quote strings, e.g. \"{number}\""
                        ));
                    }
                },
            },
            Some(other) => {
                return self.fail(format!("expected a value but found {}", describe(&other)));
            }
            None => {
                return self.fail(format!(
                    "the expression ended before the value after \"{shown}\""
                ));
            }
        };
        Ok(Filter::Compare(path, op, value))
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Word(w) => format!("\"{w}\""),
        Token::Str(s) => format!("the string {s:?}"),
        Token::OpenParen => "'('".to_owned(),
        Token::CloseParen => "')'".to_owned(),
        Token::OpenBracket => "'['".to_owned(),
        Token::CloseBracket => "']'".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_length_limit_counts_characters_not_bytes() {
        // 4,096 characters, 8,000-odd bytes: within the limit the document declares.
        let value = "é".repeat(MAX_FILTER_LEN - 16);
        let text = format!("userName eq \"{value}\"");
        assert_eq!(text.chars().count(), MAX_FILTER_LEN - 2);
        assert!(text.len() > MAX_FILTER_LEN);
        assert!(parse_filter(&text).is_ok());
        let over = format!("userName eq \"{value}{}\"", "é".repeat(3));
        assert!(parse_filter(&over).is_err());
    }

    use super::*;

    fn path(attr: &str, sub: Option<&str>) -> AttrPath {
        AttrPath {
            schema: None,
            attr: attr.to_owned(),
            sub_attr: sub.map(str::to_owned),
        }
    }

    fn eq(attr: &str, value: &str) -> Filter {
        Filter::Compare(
            path(attr, None),
            CompareOp::Eq,
            Literal::String(value.to_owned()),
        )
    }

    #[test]
    fn simple_comparison_and_keywords_are_case_insensitive() {
        assert_eq!(
            parse_filter(r#"userName EQ "bjensen""#).unwrap(),
            eq("userName", "bjensen")
        );
        assert_eq!(
            parse_filter("title pr").unwrap(),
            Filter::Present(path("title", None))
        );
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let parsed = parse_filter(r#"a eq "1" or b eq "2" and c eq "3""#).unwrap();
        assert_eq!(
            parsed,
            Filter::Or(
                Box::new(eq("a", "1")),
                Box::new(Filter::And(Box::new(eq("b", "2")), Box::new(eq("c", "3"))))
            )
        );
    }

    #[test]
    fn parentheses_not_and_value_paths() {
        let parsed = parse_filter(
            r#"not (a eq "1") and (emails[type eq "work" and value co "@x"] or b pr)"#,
        )
        .unwrap();
        let Filter::And(left, right) = parsed else {
            panic!("expected and")
        };
        assert_eq!(*left, Filter::Not(Box::new(eq("a", "1"))));
        let Filter::Or(vp, _) = *right else {
            panic!("expected or")
        };
        assert!(matches!(*vp, Filter::ValuePath(ref p, _) if p.attr == "emails"));
    }

    #[test]
    fn urn_prefixed_paths_and_sub_attributes() {
        let parsed =
            parse_filter(r#"urn:ietf:params:scim:schemas:core:2.0:User:name.familyName sw "J""#)
                .unwrap();
        let Filter::Compare(p, CompareOp::Sw, _) = parsed else {
            panic!("expected sw")
        };
        assert_eq!(
            p.schema.as_deref(),
            Some("urn:ietf:params:scim:schemas:core:2.0:User")
        );
        assert_eq!(p.attr, "name");
        assert_eq!(p.sub_attr.as_deref(), Some("familyName"));
    }

    #[test]
    fn literals() {
        assert_eq!(
            parse_filter("active eq true").unwrap(),
            Filter::Compare(path("active", None), CompareOp::Eq, Literal::Bool(true))
        );
        assert!(matches!(
            parse_filter("x gt 10").unwrap(),
            Filter::Compare(_, CompareOp::Gt, Literal::Number(_))
        ));
        assert_eq!(
            parse_filter(r#"a eq "say \"hi\"""#).unwrap(),
            eq("a", "say \"hi\"")
        );
    }

    #[test]
    fn malformed_filters_are_invalid_filter_errors() {
        for bad in [
            "",
            "userName",
            "userName eq",
            "userName zz \"x\"",
            "userName eq bjensen",
            "(userName eq \"x\"",
            "userName eq \"x\" extra",
            "userName eq \"unterminated",
            "a.b.c eq \"x\"",
            "not userName eq \"x\"",
            "emails[type eq \"work\"",
        ] {
            let err = parse_filter(bad).unwrap_err();
            assert_eq!(err.scim_type, ScimType::InvalidFilter, "{bad}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!("{}a pr{}", "(".repeat(200), ")".repeat(200));
        assert_eq!(
            parse_filter(&deep).unwrap_err().scim_type,
            ScimType::InvalidFilter
        );
    }

    #[test]
    fn patch_paths() {
        let p = parse_patch_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(p.attr, path("emails", None));
        assert_eq!(p.value_filter, Some(eq("type", "work")));
        assert_eq!(p.sub_attr.as_deref(), Some("value"));
        let p = parse_patch_path("name.givenName").unwrap();
        assert_eq!(p.attr, path("name", Some("givenName")));
        assert!(p.value_filter.is_none());
        for bad in ["", "emails[", "emails[type eq \"w\"]value", "a b"] {
            assert_eq!(
                parse_patch_path(bad).unwrap_err().scim_type,
                ScimType::InvalidPath,
                "{bad}"
            );
        }
    }
}
