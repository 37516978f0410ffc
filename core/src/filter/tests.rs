//! Unit tests, one or more per rule of the contract, and property tests: the evaluator agrees
//! with a deliberately naive reference implementation; printing and parsing round-trip; no
//! input makes the parser panic.

use super::*;
use bytes::Bytes;
use proptest::prelude::*;

fn rec(key: Option<&str>, headers: &[(&str, &str)]) -> Record {
    Record {
        key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
        value: Bytes::new(),
        producer_ts: None,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), Bytes::copy_from_slice(v.as_bytes())))
            .collect(),
    }
}

fn m(filter: &str, r: &Record) -> bool {
    Filter::parse(filter)
        .unwrap_or_else(|e| panic!("{filter:?}: {e}"))
        .matches(r)
}

fn err(filter: &str) -> FilterError {
    match Filter::parse(filter) {
        Ok(f) => panic!("{filter:?} parsed as {f:?}"),
        Err(e) => e,
    }
}

#[test]
fn comparison_operators_on_strings() {
    let r = rec(None, &[("type", "created")]);
    assert!(m("type = 'created'", &r));
    assert!(!m("type = 'paid'", &r));
    assert!(m("type <> 'paid'", &r));
    assert!(m("type != 'paid'", &r));
    assert!(!m("type != 'created'", &r));
    assert!(m("type < 'd'", &r));
    assert!(m("type <= 'created'", &r));
    assert!(m("type > 'c'", &r));
    assert!(m("type >= 'created'", &r));
    assert!(!m("type > 'created'", &r));
}

#[test]
fn numbers_compare_numerically_when_both_sides_are_numbers() {
    let r = rec(
        None,
        &[
            ("n", "10"),
            ("f", "2.50"),
            ("s", "abc"),
            ("big", "18446744073709551617"),
        ],
    );
    // As strings "10" < "9"; as numbers 10 > 9.
    assert!(m("n > 9", &r));
    assert!(m("n = 10.0", &r));
    assert!(m("n = 1e1", &r));
    assert!(m("n = 1E+1", &r));
    assert!(m("n < 1.1e1", &r));
    assert!(m("f = 2.5", &r));
    assert!(m("f > -3", &r));
    assert!(m("n IN (3, 10)", &r));
    // A string literal is a string, even when it reads as a number.
    assert!(!m("n > '9'", &r));
    assert!(!m("f = '2.5'", &r));
    // A non-number value compares as a string with the literal's text.
    assert!(m("s > 10", &r));
    assert!(!m("s = 10", &r));
    // Integers compare exactly beyond f64's precision.
    assert!(m("big > 18446744073709551616", &r));
    assert!(!m("big = 18446744073709551616", &r));
    // Header values read as numbers only under the literal grammar.
    for v in [" 1", "1 ", "+1", "1.", ".5", "0x10", "inf", "NaN", "1e"] {
        let r = rec(None, &[("v", v)]);
        assert!(!m("v = 1", &r), "{v:?}");
        assert!(m(&format!("v = '{v}'"), &r));
    }
    let r = rec(None, &[("z", "-0")]);
    assert!(m("z = 0", &r) && m("z = 0.0", &r) && m("z = -0.0", &r));
}

#[test]
fn missing_header_makes_every_comparison_false_and_not_inverts() {
    let r = rec(Some("k"), &[("a", "1")]);
    for f in [
        "b = 1",
        "b <> 1",
        "b < 'x'",
        "b IN (1, 2)",
        "b NOT IN (1, 2)",
        "b LIKE '%'",
        "b NOT LIKE 'x'",
        "b IS NOT NULL",
    ] {
        assert!(!m(f, &r), "{f}");
        assert!(m(&format!("NOT ({f})"), &r), "NOT {f}");
        assert!(m(&format!("NOT {f}"), &r), "NOT {f}");
    }
    assert!(m("b IS NULL", &r));
    assert!(!m("a IS NULL", &r));
    assert!(m("a IS NOT NULL", &r));
    assert!(m("NOT NOT a = 1", &r));
}

#[test]
fn key_is_the_record_key_and_case_insensitive() {
    let r = rec(Some("user-7"), &[("key", "header")]);
    assert!(m("key = 'user-7'", &r));
    assert!(m("KEY = 'user-7'", &r));
    assert!(m("Key LIKE 'user-%'", &r));
    assert!(m("\"key\" = 'header'", &r));
    assert!(!m("key IS NULL", &r));
    let no_key = rec(None, &[]);
    assert!(m("key IS NULL", &no_key));
    assert!(!m("key = ''", &no_key));
    assert!(m("key = 7", &rec(Some("7"), &[])));
}

#[test]
fn keywords_are_case_insensitive() {
    let r = rec(None, &[("a", "1"), ("b", "x")]);
    assert!(m("a = 1 and b = 'x'", &r));
    assert!(m("a = 2 Or b = 'x'", &r));
    assert!(m("not a = 2", &r));
    assert!(m("a in (1)", &r));
    assert!(m("a NoT In (2)", &r));
    assert!(m("b like 'x'", &r));
    assert!(m("b not like 'y'", &r));
    assert!(m("c is null", &r));
    assert!(m("a Is Not Null", &r));
}

#[test]
fn quoted_names_and_strings() {
    let r = rec(
        None,
        &[
            ("and", "1"),
            ("with space", "it's"),
            ("q\"uote", ""),
            ("", "e"),
        ],
    );
    assert!(m("\"and\" = 1", &r));
    assert!(m("\"with space\" = 'it''s'", &r));
    assert!(m("\"q\"\"uote\" = ''", &r));
    assert!(m("\"\" = 'e'", &r));
    // Header names are case-sensitive, only keywords are not.
    assert!(m("\"AND\" IS NULL", &r));
    let r = rec(None, &[("a.b_c-d9", "v")]);
    assert!(m("a.b_c-d9 = 'v'", &r));
}

#[test]
fn and_binds_tighter_than_or_and_parentheses_group() {
    let r = rec(None, &[("a", "1"), ("b", "2")]);
    assert!(m("a = 1 OR a = 9 AND b = 9", &r));
    assert!(!m("(a = 1 OR a = 9) AND b = 9", &r));
    assert!(!m("NOT a = 1 OR b = 9", &r));
    assert!(m("NOT (a = 9 OR b = 9)", &r));
    assert!(m("((a = 1))", &r));
}

#[test]
fn in_lists() {
    let r = rec(None, &[("t", "b")]);
    assert!(m("t IN ('a', 'b')", &r));
    assert!(!m("t IN ('a')", &r));
    assert!(m("t NOT IN ('a', 'c')", &r));
    assert!(!m("t NOT IN ('b')", &r));
}

#[test]
fn like_patterns() {
    let cases: &[(&str, &str, bool)] = &[
        ("abc", "abc", true),
        ("abc", "ab", false),
        ("a%", "abc", true),
        ("%c", "abc", true),
        ("%b%", "abc", true),
        ("%", "", true),
        ("_", "", false),
        ("a_c", "abc", true),
        ("a_c", "ac", false),
        ("a_c", "a€c", true),
        ("___", "a€c", true),
        ("%%x%%", "yyxyy", true),
        ("a%b%c", "aXbYc", true),
        ("a%b%c", "aXcYb", false),
        ("%a%a%a%a%b", "aaaaaaaaaaaaaaaaaaaa", false),
        ("A%", "abc", false),
    ];
    for (pattern, value, want) in cases {
        let r = rec(None, &[("v", value)]);
        assert_eq!(
            m(&format!("v LIKE '{pattern}'"), &r),
            *want,
            "{value} LIKE {pattern}"
        );
        assert_eq!(m(&format!("v NOT LIKE '{pattern}'"), &r), !*want);
    }
    // A byte that is not UTF-8 is one character.
    assert!(like(b"a_c", b"a\xffc"));
    assert!(!like(b"a_c", b"a\xff\xffc"));
    assert!(like(b"%\xe2\x82\xac", b"xx\xe2\x82\xac"));
}

#[test]
fn duplicate_headers_use_the_first() {
    let r = rec(None, &[("a", "1"), ("a", "2")]);
    assert!(m("a = 1", &r));
    assert!(!m("a = 2", &r));
}

#[test]
fn errors_carry_the_byte_position_of_the_failing_token() {
    let cases: &[(&str, usize)] = &[
        ("", 0),
        ("   ", 3),
        ("a", 1),
        ("a =", 3),
        ("a = ", 4),
        ("a == 1", 3),
        ("a = b", 4),
        ("a = 1 b = 2", 6),
        ("a = 1 AND", 9),
        ("(a = 1", 6),
        ("a = 1)", 5),
        ("a IN ()", 6),
        ("a IN (1 2)", 8),
        ("a IN 1", 5),
        ("a NOT = 1", 6),
        ("a LIKE 5", 7),
        ("a IS 'x'", 5),
        ("a IS NOT", 8),
        ("and = 1", 0),
        ("null IS NULL", 0),
        ("a @ 1", 2),
        ("a ! 1", 2),
        ("a = 'unterminated", 4),
        ("\"unterminated = 1", 0),
        ("a = 1e+", 4),
        ("a = 1.", 4),
        ("a = --1", 4),
        ("é = 1", 0),
        ("a = 1 AND é = 1", 10),
        ("NOT", 3),
        ("()", 1),
    ];
    for (filter, position) in cases {
        let e = err(filter);
        assert_eq!(e.position, *position, "{filter:?}: {e}");
        assert!(!e.message.is_empty());
    }
}

#[test]
fn nesting_and_length_are_bounded() {
    let deep = format!(
        "{}a = 1{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    assert_eq!(err(&deep).position, MAX_DEPTH);
    let ok = format!("{}a = 1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert!(Filter::parse(&ok).is_ok());
    assert_eq!(err(&"NOT ".repeat(MAX_DEPTH + 1)).position, 4 * MAX_DEPTH);
    let long = format!("a IN ({}1)", "1, ".repeat(MAX_FILTER_LEN));
    assert_eq!(err(&long).position, MAX_FILTER_LEN);
    // Long flat chains are fine (they parse flat, no recursion per operand).
    let chain = vec!["a = 1"; 400].join(" OR ");
    assert!(matches!(Filter::parse(&chain), Ok(Filter::Or(v)) if v.len() == 400));
}

#[test]
fn display_is_canonical() {
    let cases: &[(&str, &str)] = &[
        ("a=1", "a = 1"),
        ("a != 'x'", "a <> 'x'"),
        (
            "KEY like 'u%' and \"x\" is not null",
            "key LIKE 'u%' AND x IS NOT NULL",
        ),
        ("a = 1 or (b = 2 or c = 3)", "a = 1 OR (b = 2 OR c = 3)"),
        ("(a = 1 and b = 2) or c = 3", "a = 1 AND b = 2 OR c = 3"),
        ("not (a = 1 or b=2)", "NOT (a = 1 OR b = 2)"),
        ("\"key\" in ('it''s',1.50)", "\"key\" IN ('it''s', 1.50)"),
        ("\"a b\" not in (1)", "\"a b\" NOT IN (1)"),
        ("\"\" not like '_'", "\"\" NOT LIKE '_'"),
        ("((a = 1))", "a = 1"),
    ];
    for (input, canonical) in cases {
        let f = Filter::parse(input).unwrap();
        assert_eq!(f.to_string(), *canonical);
        assert_eq!(Filter::parse(canonical).unwrap(), f);
    }
    let f: Filter = serde_json::from_str("\"a = 1\"").unwrap();
    assert_eq!(serde_json::to_string(&f).unwrap(), "\"a = 1\"");
    assert!(serde_json::from_str::<Filter>("\"a =\"").is_err());
}

// ---------------------------------------------------------------------------------------------
// Property tests

const NAMES: [&str; 5] = ["a", "b", "x.y", "and", "key"];
const VALUES: [&str; 12] = [
    "1", "2", "10", "-3", "1.5", "2.50", "x", "ab", "", "a%b", "9", "1e1",
];

fn name() -> impl Strategy<Value = Name> {
    prop_oneof![
        1 => Just(Name::Key),
        4 => proptest::sample::select(&NAMES[..]).prop_map(|n| Name::Header(n.to_string())),
    ]
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        proptest::sample::select(&VALUES[..]).prop_map(|v| match Number::parse(v) {
            Some(n) => Literal::Num(n),
            None => Literal::Str(v.to_string()),
        }),
        proptest::sample::select(&VALUES[..]).prop_map(|v| Literal::Str(v.to_string())),
        "[a-z' ]{0,3}".prop_map(Literal::Str),
    ]
}

fn op() -> impl Strategy<Value = CmpOp> {
    proptest::sample::select(vec![
        CmpOp::Eq,
        CmpOp::Ne,
        CmpOp::Lt,
        CmpOp::Le,
        CmpOp::Gt,
        CmpOp::Ge,
    ])
}

fn leaf() -> impl Strategy<Value = Filter> {
    prop_oneof![
        (name(), op(), literal()).prop_map(|(n, o, l)| Filter::Cmp(n, o, l)),
        (
            name(),
            any::<bool>(),
            proptest::collection::vec(literal(), 1..4)
        )
            .prop_map(|(name, negated, list)| Filter::In {
                name,
                negated,
                list
            }),
        (name(), any::<bool>(), "[ab1%_']{0,4}").prop_map(|(name, negated, pattern)| {
            Filter::Like {
                name,
                negated,
                pattern,
            }
        }),
        (name(), any::<bool>()).prop_map(|(name, negated)| Filter::IsNull { name, negated }),
    ]
}

fn filter() -> impl Strategy<Value = Filter> {
    leaf().prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 2..4).prop_map(Filter::Or),
            proptest::collection::vec(inner.clone(), 2..4).prop_map(Filter::And),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    })
}

fn record() -> impl Strategy<Value = Record> {
    (
        proptest::option::of(proptest::sample::select(&VALUES[..])),
        proptest::collection::vec(
            (
                proptest::sample::select(&NAMES[..]),
                proptest::sample::select(&VALUES[..]),
            ),
            0..4,
        ),
    )
        .prop_map(|(key, headers)| rec(key, &headers))
}

/// The reference: every value a `String`, numbers through `f64` (the generated numbers are
/// small, so `f64` is exact for them), LIKE by plain recursion over characters.
mod reference {
    use super::*;

    fn number(s: &str) -> Option<f64> {
        let t = s.strip_prefix('-').unwrap_or(s);
        let (mantissa, exp) = match t.find(['e', 'E']) {
            Some(i) => (&t[..i], Some(&t[i + 1..])),
            None => (t, None),
        };
        let (int, frac) = match mantissa.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (mantissa, None),
        };
        let digits = |d: &str| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit());
        let exp_ok = exp.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
        (digits(int) && frac.is_none_or(digits) && exp_ok)
            .then(|| s.parse().ok())
            .flatten()
    }

    pub fn like(p: &[char], v: &[char]) -> bool {
        match p.split_first() {
            None => v.is_empty(),
            Some(('%', rest)) => (0..=v.len()).any(|i| like(rest, &v[i..])),
            Some(('_', rest)) => !v.is_empty() && like(rest, &v[1..]),
            Some((c, rest)) => v.first() == Some(c) && like(rest, &v[1..]),
        }
    }

    fn get(r: &Record, n: &Name) -> Option<String> {
        let b = match n {
            Name::Key => r.key.clone(),
            Name::Header(h) => r
                .headers
                .iter()
                .find(|(k, _)| k == h)
                .map(|(_, v)| v.clone()),
        }?;
        Some(String::from_utf8(b.to_vec()).unwrap())
    }

    fn order(v: &str, l: &Literal) -> Ordering {
        let text = match l {
            Literal::Str(s) => s.clone(),
            Literal::Num(n) => {
                if let (Some(a), Some(b)) = (number(v), number(n.as_str())) {
                    return a.partial_cmp(&b).unwrap();
                }
                n.as_str().to_string()
            }
        };
        v.cmp(text.as_str())
    }

    pub fn eval(f: &Filter, r: &Record) -> bool {
        match f {
            Filter::Or(fs) => fs.iter().any(|f| eval(f, r)),
            Filter::And(fs) => fs.iter().all(|f| eval(f, r)),
            Filter::Not(f) => !eval(f, r),
            Filter::Cmp(n, op, l) => match get(r, n) {
                None => false,
                Some(v) => {
                    let o = order(&v, l);
                    match op {
                        CmpOp::Eq => o == Ordering::Equal,
                        CmpOp::Ne => o != Ordering::Equal,
                        CmpOp::Lt => o == Ordering::Less,
                        CmpOp::Le => o != Ordering::Greater,
                        CmpOp::Gt => o == Ordering::Greater,
                        CmpOp::Ge => o != Ordering::Less,
                    }
                }
            },
            Filter::In {
                name,
                negated,
                list,
            } => match get(r, name) {
                None => false,
                Some(v) => list.iter().any(|l| order(&v, l) == Ordering::Equal) ^ negated,
            },
            Filter::Like {
                name,
                negated,
                pattern,
            } => match get(r, name) {
                None => false,
                Some(v) => {
                    let p: Vec<char> = pattern.chars().collect();
                    let v: Vec<char> = v.chars().collect();
                    like(&p, &v) ^ negated
                }
            },
            Filter::IsNull { name, negated } => get(r, name).is_none() ^ negated,
        }
    }
}

/// Fragments a random filter text is assembled from (plus arbitrary characters).
const TOKENS: &[&str] = &[
    "a", "key", "\"b c\"", "'x'", "''", "'", "\"", "1", "-2.5", "1e+3", "=", "<>", "!=", "<", "<=",
    ">", ">=", "(", ")", ",", "AND", "or", "NOT", "IN", "LIKE", "IS", "NULL", " ", "%", "é",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn evaluator_agrees_with_the_reference(f in filter(), records in proptest::collection::vec(record(), 1..8)) {
        for r in &records {
            prop_assert_eq!(f.matches(r), reference::eval(&f, r), "{} on {:?}", f, r);
        }
    }

    #[test]
    fn printing_parses_back_to_the_same_filter(f in filter()) {
        let text = f.to_string();
        prop_assert_eq!(Filter::parse(&text), Ok(f), "{}", text);
    }

    #[test]
    fn random_text_never_panics_and_round_trips(
        parts in proptest::collection::vec(
            prop_oneof![proptest::sample::select(TOKENS).prop_map(String::from), any::<char>().prop_map(String::from)],
            0..24,
        )
    ) {
        let text = parts.concat();
        match Filter::parse(&text) {
            Ok(f) => prop_assert_eq!(Filter::parse(&f.to_string()), Ok(f)),
            Err(e) => prop_assert!(e.position <= text.len() && text.is_char_boundary(e.position)),
        }
    }

    #[test]
    fn like_agrees_with_recursion(p in "[ab%_é]{0,6}", v in "[abé]{0,8}") {
        let pc: Vec<char> = p.chars().collect();
        let vc: Vec<char> = v.chars().collect();
        prop_assert_eq!(like(p.as_bytes(), v.as_bytes()), reference::like(&pc, &vc));
    }
}
