//! Record filters: the SQL92-like selection on headers and the key from the REST contract
//! ("Filters" in `rest-api.md`), parsed into an expression and evaluated on decoded records.
//!
//! ```text
//! expr    := or
//! or      := and ("OR" and)*
//! and     := unary ("AND" unary)*
//! unary   := "NOT" unary | "(" expr ")" | cmp
//! cmp     := name ("=" | "<>" | "!=" | "<" | "<=" | ">" | ">=") literal
//!          | name ["NOT"] "IN" "(" literal ("," literal)* ")"
//!          | name ["NOT"] "LIKE" string
//!          | name "IS" ["NOT"] "NULL"
//! name    := header name ([A-Za-z0-9._-]+, or "quoted") | the word key
//! literal := 'single-quoted string' | number
//! ```
//!
//! **Parser: hand-written recursive descent over a tokenizer**, not a parser crate. The grammar
//! is eight productions with one token of look-ahead; the contract's error rule (the byte offset
//! of the failing *token*, or the filter's length when it ends early) falls out of a token list
//! that carries offsets, while `winnow`/`chumsky` report positions of their own choosing that we
//! would have to map back; and it adds no dependency to `sluice-core`, which every crate uses.
//!
//! Rules the evaluator follows (each has a unit test below):
//! - Keywords (`AND OR NOT IN LIKE IS NULL` and `key`) are case-insensitive and reserved: a
//!   header named like one is written quoted (`"key"` is the header, `key` the record key).
//!   Quoted names double an embedded quote (`"a""b"`), strings an embedded apostrophe (`'it''s'`).
//! - A number is `-?digits[.digits][(e|E)[+-]digits]`. `=`, `<>`/`!=`, `IN` and the order
//!   comparisons compare numerically when the literal is a number and the record's value reads
//!   as one under the same grammar (integers exactly, otherwise as `f64`), else as byte strings
//!   (a number literal then compares as the text it was written as).
//! - A comparison (including `NOT IN`, `NOT LIKE`, `<>`) on a header the record does not have is
//!   false; `NOT` inverts (two-valued logic); `IS [NOT] NULL` tests absence. With duplicate
//!   header names the first one counts.
//! - `LIKE`: `%` matches any run, `_` one character (one UTF-8 character of the value; a byte
//!   that is not valid UTF-8 counts as one character). There is no escape character.
//! - Limits: at most [`MAX_FILTER_LEN`] bytes and [`MAX_DEPTH`] levels of `NOT` / parentheses, so
//!   parsing, evaluation and dropping are bounded; beyond them parsing fails with a position.
//!
//! [`Filter`]'s `Display` prints a canonical form that parses back to the same filter, and it
//! (de)serializes as that string.

use crate::format::record::Record;
use std::cmp::Ordering;
use std::fmt;

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;
/// Deepest nesting of `NOT` and parentheses accepted.
pub const MAX_DEPTH: usize = 64;

/// A malformed filter: where parsing failed and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter at byte {position}: {message}")]
pub struct FilterError {
    /// 0-based byte offset of the token where parsing failed (the filter's length if it ended
    /// too early).
    pub position: usize,
    pub message: String,
}

/// What a comparison looks at: the record's key or one of its headers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Name {
    Key,
    Header(String),
}

/// `=`, `<>` (also written `!=`), `<`, `<=`, `>`, `>=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A number literal: the text as written (what it prints as, and what it compares as when the
/// other side is not a number) and its value.
#[derive(Clone, Debug)]
pub struct Number {
    text: String,
    value: Num,
}

impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}
impl Eq for Number {}

impl Number {
    /// A number literal from its text, if the text is one.
    pub fn parse(text: &str) -> Option<Self> {
        Num::parse(text.as_bytes()).map(|value| Self {
            text: text.to_string(),
            value,
        })
    }
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Literal {
    Str(String),
    Num(Number),
}

impl Literal {
    fn bytes(&self) -> &[u8] {
        match self {
            Literal::Str(s) => s.as_bytes(),
            Literal::Num(n) => n.text.as_bytes(),
        }
    }
}

/// A parsed filter. `And` / `Or` hold two or more operands (a chain parses flat).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    Or(Vec<Filter>),
    And(Vec<Filter>),
    Not(Box<Filter>),
    Cmp(Name, CmpOp, Literal),
    In {
        name: Name,
        negated: bool,
        list: Vec<Literal>,
    },
    Like {
        name: Name,
        negated: bool,
        pattern: String,
    },
    IsNull {
        name: Name,
        negated: bool,
    },
}

// ---------------------------------------------------------------------------------------------
// Numbers

/// A value that reads as a number: integers exactly (when they fit), anything else as `f64`.
#[derive(Clone, Copy, Debug)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    /// `-?digits[.digits][(e|E)[+-]digits]`, nothing else (no spaces, `+`, `inf`, `nan`), so
    /// the `f64` is never NaN.
    fn parse(s: &[u8]) -> Option<Num> {
        let digits = |i: usize| s[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        let mut i = usize::from(s.first() == Some(&b'-'));
        let int = digits(i);
        if int == 0 {
            return None;
        }
        i += int;
        let mut integral = true;
        if s.get(i) == Some(&b'.') {
            let frac = digits(i + 1);
            if frac == 0 {
                return None;
            }
            i += 1 + frac;
            integral = false;
        }
        if matches!(s.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(s.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let exp = digits(i);
            if exp == 0 {
                return None;
            }
            i += exp;
            integral = false;
        }
        if i != s.len() {
            return None;
        }
        let text = std::str::from_utf8(s).ok()?;
        if integral {
            if let Ok(n) = text.parse::<i128>() {
                return Some(Num::Int(n));
            }
        }
        text.parse::<f64>().ok().map(Num::Float)
    }

    fn cmp(self, other: Num) -> Ordering {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a.cmp(&b),
            (a, b) => a.as_f64().total_cmp(&b.as_f64()),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::Int(n) => n as f64,
            Num::Float(f) => {
                // -0.0 and 0.0 are the same number.
                if f == 0.0 {
                    0.0
                } else {
                    f
                }
            }
        }
    }
}

/// How a record's value orders against a literal: numerically when both are numbers.
fn compare(value: &[u8], lit: &Literal) -> Ordering {
    if let Literal::Num(n) = lit {
        if let Some(v) = Num::parse(value) {
            return v.cmp(n.value);
        }
    }
    value.cmp(lit.bytes())
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/// `%` any run, `_` one character; iterative with backtracking to the last `%` (at most
/// pattern × value steps).
pub(crate) fn like(pattern: &[u8], value: &[u8]) -> bool {
    // Width of the character starting at value[i]: its UTF-8 length if valid there, else 1.
    let width = |i: usize| {
        let len = match value[i] {
            b if b < 0x80 => 1,
            b if b >> 5 == 0b110 => 2,
            b if b >> 4 == 0b1110 => 3,
            b if b >> 3 == 0b11110 => 4,
            _ => 1,
        };
        if len > 1
            && value
                .get(i..i + len)
                .is_some_and(|c| std::str::from_utf8(c).is_ok())
        {
            len
        } else {
            1
        }
    };
    let (mut p, mut v) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        match pattern.get(p) {
            Some(b'%') => {
                star = Some((p, v));
                p += 1;
            }
            Some(b'_') => {
                p += 1;
                v += width(v);
            }
            Some(&c) if c == value[v] => {
                p += 1;
                v += 1;
            }
            _ => match star {
                Some((sp, sv)) => {
                    let sv = sv + width(sv);
                    star = Some((sp, sv));
                    p = sp + 1;
                    v = sv;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&b| b == b'%')
}

impl Filter {
    /// Parse a filter (see the module doc for the grammar and rules).
    pub fn parse(src: &str) -> Result<Filter, FilterError> {
        if src.len() > MAX_FILTER_LEN {
            return Err(FilterError {
                position: MAX_FILTER_LEN,
                message: format!("filter longer than {MAX_FILTER_LEN} bytes"),
            });
        }
        let tokens = tokenize(src)?;
        let mut p = Parser {
            tokens,
            at: 0,
            len: src.len(),
        };
        let f = p.or(0)?;
        match p.peek() {
            None => Ok(f),
            Some(t) => Err(p.error_at(t, "expected AND, OR, `)` or the end")),
        }
    }

    /// Whether the record passes the filter.
    pub fn matches(&self, record: &Record) -> bool {
        let lookup = |name: &Name| -> Option<&[u8]> {
            match name {
                Name::Key => record.key.as_deref(),
                Name::Header(h) => record
                    .headers
                    .iter()
                    .find(|(n, _)| n == h)
                    .map(|(_, v)| &v[..]),
            }
        };
        self.eval(&lookup)
    }

    fn eval<'a>(&self, lookup: &impl Fn(&Name) -> Option<&'a [u8]>) -> bool {
        match self {
            Filter::Or(fs) => fs.iter().any(|f| f.eval(lookup)),
            Filter::And(fs) => fs.iter().all(|f| f.eval(lookup)),
            Filter::Not(f) => !f.eval(lookup),
            Filter::Cmp(name, op, lit) => lookup(name).is_some_and(|v| {
                let o = compare(v, lit);
                match op {
                    CmpOp::Eq => o.is_eq(),
                    CmpOp::Ne => o.is_ne(),
                    CmpOp::Lt => o.is_lt(),
                    CmpOp::Le => o.is_le(),
                    CmpOp::Gt => o.is_gt(),
                    CmpOp::Ge => o.is_ge(),
                }
            }),
            Filter::In {
                name,
                negated,
                list,
            } => {
                lookup(name).is_some_and(|v| list.iter().any(|l| compare(v, l).is_eq()) != *negated)
            }
            Filter::Like {
                name,
                negated,
                pattern,
            } => lookup(name).is_some_and(|v| like(pattern.as_bytes(), v) != *negated),
            Filter::IsNull { name, negated } => lookup(name).is_none() != *negated,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    /// A bare word: `[A-Za-z0-9._-]+` (plus a `+` right after the `e` of a number's exponent).
    Word(String),
    /// A "double-quoted" name, unescaped.
    Quoted(String),
    /// A 'single-quoted' string, unescaped.
    Str(String),
    Op(CmpOp),
    LParen,
    RParen,
    Comma,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    start: usize,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// Whether `w` is a number's mantissa followed by `e`/`E` (so a `+` may follow).
fn is_exponent_prefix(w: &[u8]) -> bool {
    matches!(w.last(), Some(b'e' | b'E')) && Num::parse(&w[..w.len() - 1]).is_some()
}

fn tokenize(src: &str) -> Result<Vec<Token>, FilterError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |position: usize, message: &str| FilterError {
        position,
        message: message.to_string(),
    };
    while i < b.len() {
        let start = i;
        let c = b[i];
        let tok = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => {
                i += 1;
                Tok::LParen
            }
            b')' => {
                i += 1;
                Tok::RParen
            }
            b',' => {
                i += 1;
                Tok::Comma
            }
            b'=' => {
                i += 1;
                Tok::Op(CmpOp::Eq)
            }
            b'!' if b.get(i + 1) == Some(&b'=') => {
                i += 2;
                Tok::Op(CmpOp::Ne)
            }
            b'<' => match b.get(i + 1) {
                Some(b'>') => {
                    i += 2;
                    Tok::Op(CmpOp::Ne)
                }
                Some(b'=') => {
                    i += 2;
                    Tok::Op(CmpOp::Le)
                }
                _ => {
                    i += 1;
                    Tok::Op(CmpOp::Lt)
                }
            },
            b'>' => {
                if b.get(i + 1) == Some(&b'=') {
                    i += 2;
                    Tok::Op(CmpOp::Ge)
                } else {
                    i += 1;
                    Tok::Op(CmpOp::Gt)
                }
            }
            b'\'' | b'"' => {
                // Quoted: the quote doubled stands for itself.
                let mut s = String::new();
                let mut j = i + 1;
                let mut run = j;
                loop {
                    match b.get(j) {
                        None => {
                            let what = if c == b'\'' { "string" } else { "quoted name" };
                            return Err(err(start, &format!("unterminated {what}")));
                        }
                        Some(&q) if q == c => {
                            s.push_str(&src[run..j]);
                            if b.get(j + 1) == Some(&c) {
                                s.push(c as char);
                                j += 2;
                                run = j;
                            } else {
                                j += 1;
                                break;
                            }
                        }
                        Some(_) => j += 1,
                    }
                }
                i = j;
                if c == b'\'' {
                    Tok::Str(s)
                } else {
                    Tok::Quoted(s)
                }
            }
            c if is_word_byte(c) => {
                let mut j = i;
                while j < b.len()
                    && (is_word_byte(b[j]) || (b[j] == b'+' && is_exponent_prefix(&b[i..j])))
                {
                    j += 1;
                }
                i = j;
                Tok::Word(src[start..j].to_string())
            }
            _ => return Err(err(start, "unexpected character")),
        };
        out.push(Token { tok, start });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Parser

const KEYWORDS: [&str; 8] = ["and", "or", "not", "in", "like", "is", "null", "key"];

fn is_keyword(w: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(w))
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    len: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn error_at(&self, t: &Token, message: &str) -> FilterError {
        FilterError {
            position: t.start,
            message: message.to_string(),
        }
    }

    /// An error at the current token, or at the end.
    fn error(&self, message: &str) -> FilterError {
        FilterError {
            position: self.peek().map_or(self.len, |t| t.start),
            message: match self.peek() {
                None => format!("{message}, found the end of the filter"),
                Some(_) => message.to_string(),
            },
        }
    }

    /// Whether the current token is the keyword `kw` (consumed if so).
    fn keyword(&mut self, kw: &str) -> bool {
        let hit = matches!(self.peek(), Some(Token { tok: Tok::Word(w), .. }) if w.eq_ignore_ascii_case(kw));
        if hit {
            self.at += 1;
        }
        hit
    }

    fn expect_keyword(&mut self, kw: &str, message: &str) -> Result<(), FilterError> {
        if self.keyword(kw) {
            Ok(())
        } else {
            Err(self.error(message))
        }
    }

    fn or(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let mut items = vec![self.and(depth)?];
        while self.keyword("or") {
            items.push(self.and(depth)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Filter::Or(items)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let mut items = vec![self.unary(depth)?];
        while self.keyword("and") {
            items.push(self.unary(depth)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Filter::And(items)
        })
    }

    fn unary(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let opens = match self.peek().map(|t| &t.tok) {
            Some(Tok::LParen) => true,
            Some(Tok::Word(w)) => w.eq_ignore_ascii_case("not"),
            _ => false,
        };
        if opens && depth >= MAX_DEPTH {
            return Err(self.error(&format!(
                "nested deeper than {MAX_DEPTH} levels of NOT and parentheses"
            )));
        }
        if self.keyword("not") {
            return Ok(Filter::Not(Box::new(self.unary(depth + 1)?)));
        }
        if matches!(
            self.peek(),
            Some(Token {
                tok: Tok::LParen,
                ..
            })
        ) {
            self.at += 1;
            let f = self.or(depth + 1)?;
            return match self.next() {
                Some(Token {
                    tok: Tok::RParen, ..
                }) => Ok(f),
                _ => {
                    self.at -= 1;
                    Err(self.error("expected `)`"))
                }
            };
        }
        self.cmp()
    }

    fn name(&mut self) -> Result<Name, FilterError> {
        const WANT: &str = "expected a header name, `key`, NOT or `(`";
        let name = match self.peek().map(|t| &t.tok) {
            Some(Tok::Quoted(s)) => Name::Header(s.clone()),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("key") => Name::Key,
            Some(Tok::Word(w)) if !is_keyword(w) && w.bytes().all(is_word_byte) => {
                Name::Header(w.clone())
            }
            _ => return Err(self.error(WANT)),
        };
        self.at += 1;
        Ok(name)
    }

    fn literal(&mut self) -> Result<Literal, FilterError> {
        const WANT: &str = "expected a 'string' or a number";
        let lit = match self.peek().map(|t| &t.tok) {
            Some(Tok::Str(s)) => Literal::Str(s.clone()),
            Some(Tok::Word(w)) => match Number::parse(w) {
                Some(n) => Literal::Num(n),
                None => return Err(self.error(WANT)),
            },
            _ => return Err(self.error(WANT)),
        };
        self.at += 1;
        Ok(lit)
    }

    fn cmp(&mut self) -> Result<Filter, FilterError> {
        let name = self.name()?;
        if let Some(Token {
            tok: Tok::Op(op), ..
        }) = self.peek()
        {
            let op = *op;
            self.at += 1;
            return Ok(Filter::Cmp(name, op, self.literal()?));
        }
        if self.keyword("is") {
            let negated = self.keyword("not");
            self.expect_keyword("null", "expected NULL")?;
            return Ok(Filter::IsNull { name, negated });
        }
        let negated = self.keyword("not");
        if self.keyword("in") {
            if !matches!(self.next().map(|t| t.tok), Some(Tok::LParen)) {
                self.at -= 1;
                return Err(self.error("expected `(`"));
            }
            let mut list = vec![self.literal()?];
            loop {
                match self.next().map(|t| t.tok) {
                    Some(Tok::Comma) => list.push(self.literal()?),
                    Some(Tok::RParen) => break,
                    _ => {
                        self.at -= 1;
                        return Err(self.error("expected `,` or `)`"));
                    }
                }
            }
            return Ok(Filter::In {
                name,
                negated,
                list,
            });
        }
        if self.keyword("like") {
            return match self.peek().map(|t| &t.tok) {
                Some(Tok::Str(s)) => {
                    let pattern = s.clone();
                    self.at += 1;
                    Ok(Filter::Like {
                        name,
                        negated,
                        pattern,
                    })
                }
                _ => Err(self.error("expected a 'string' pattern")),
            };
        }
        Err(self.error(if negated {
            "expected IN or LIKE"
        } else {
            "expected a comparison operator, IN, NOT, LIKE or IS"
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// Printing and (de)serialization

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Name::Key => f.write_str("key"),
            Name::Header(h) if !h.is_empty() && h.bytes().all(is_word_byte) && !is_keyword(h) => {
                f.write_str(h)
            }
            Name::Header(h) => write!(f, "\"{}\"", h.replace('"', "\"\"")),
        }
    }
}

impl fmt::Display for CmpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        })
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Str(s) => write!(f, "'{}'", s.replace('\'', "''")),
            Literal::Num(n) => f.write_str(&n.text),
        }
    }
}

impl Filter {
    /// Print `self` as an operand of an operator that binds tighter than `self` might.
    fn fmt_operand(&self, f: &mut fmt::Formatter<'_>, parens: bool) -> fmt::Result {
        if parens {
            write!(f, "({self})")
        } else {
            write!(f, "{self}")
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let not = |negated: bool| if negated { "NOT " } else { "" };
        match self {
            Filter::Or(items) | Filter::And(items) => {
                let or = matches!(self, Filter::Or(_));
                let sep = if or { " OR " } else { " AND " };
                // An operand that is itself an OR (or, under AND, an AND) keeps its parentheses.
                let nested =
                    |g: &Filter| matches!(g, Filter::Or(_)) || (!or && matches!(g, Filter::And(_)));
                for (i, g) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    g.fmt_operand(f, nested(g))?;
                }
                Ok(())
            }
            Filter::Not(g) => {
                f.write_str("NOT ")?;
                g.fmt_operand(f, matches!(**g, Filter::Or(_) | Filter::And(_)))
            }
            Filter::Cmp(name, op, lit) => write!(f, "{name} {op} {lit}"),
            Filter::In {
                name,
                negated,
                list,
            } => {
                write!(f, "{name} {}IN (", not(*negated))?;
                for (i, l) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{l}")?;
                }
                f.write_str(")")
            }
            Filter::Like {
                name,
                negated,
                pattern,
            } => write!(
                f,
                "{name} {}LIKE {}",
                not(*negated),
                Literal::Str(pattern.clone())
            ),
            Filter::IsNull { name, negated } => write!(f, "{name} IS {}NULL", not(*negated)),
        }
    }
}

impl std::str::FromStr for Filter {
    type Err = FilterError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Filter::parse(s)
    }
}

impl serde::Serialize for Filter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Filter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Filter::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
