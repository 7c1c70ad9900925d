use keel_core::sql::{Dialect, QueryBuilder};
use proptest::prelude::*;

use super::compile_tests::count_placeholders;
use super::*;

/// Keys: plain names, dotted names, and anything at all (quoted on render).
pub(super) fn key_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_][a-z0-9_]{0,8}",
        "[a-z]{1,4}(\\.[a-zA-Z0-9]{1,4}){1,3}",
        "[a-z][a-z0-9_./:-]{0,8}",
        any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
    ]
}

pub(super) fn string_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9%_ ]{0,10}",
        "['\"`\\\\%_*?\\[\\] ()]{0,8}",
        any::<String>(),
    ]
}

pub(super) fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1000i64..1000).prop_map(|n| n as f64),
        any::<f64>().prop_filter("finite", |n| n.is_finite()),
    ]
}

fn string_list() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(string_value(), 1..4)
}

const NUMERIC_OPS: [Op; 6] = [Op::Eq, Op::Ne, Op::Gt, Op::Ge, Op::Lt, Op::Le];
const STRING_OPS: [Op; 4] = [Op::Eq, Op::Ne, Op::Like, Op::ILike];

fn string_attribute() -> impl Strategy<Value = Attribute> {
    prop::sample::select(vec![
        Attribute::RunId,
        Attribute::RunName,
        Attribute::Status,
        Attribute::ArtifactUri,
        Attribute::UserId,
        Attribute::LifecycleStage,
    ])
}

fn dataset_field() -> impl Strategy<Value = DatasetField> {
    prop::sample::select(DatasetField::ALL.to_vec())
}

/// Any comparison the parser can produce.
fn comparison() -> impl Strategy<Value = Comparison> {
    let numeric_key = prop_oneof![
        key_name().prop_map(Key::Metric),
        prop::sample::select(vec![Attribute::StartTime, Attribute::EndTime])
            .prop_map(Key::Attribute),
    ];
    let numeric = (
        numeric_key,
        prop::sample::select(NUMERIC_OPS.to_vec()),
        number(),
    )
        .prop_map(|(key, op, n)| Comparison {
            key,
            op,
            value: Value::Number(n),
        });
    let kv_key = prop_oneof![
        key_name().prop_map(Key::Param),
        key_name().prop_map(Key::Tag)
    ];
    let string_key = prop_oneof![
        kv_key.clone(),
        string_attribute().prop_map(Key::Attribute),
        dataset_field().prop_map(Key::Dataset),
    ];
    let string = (
        string_key,
        prop::sample::select(STRING_OPS.to_vec()),
        string_value(),
    )
        .prop_map(|(key, op, v)| Comparison {
            key,
            op,
            value: Value::String(v),
        });
    let null = (
        kv_key,
        prop::sample::select(vec![Op::IsNull, Op::IsNotNull]),
    )
        .prop_map(|(key, op)| Comparison {
            key,
            op,
            value: Value::Null,
        });
    let list_key = prop_oneof![
        Just(Key::Attribute(Attribute::RunId)),
        dataset_field().prop_map(Key::Dataset),
    ];
    let list = (
        list_key,
        prop::sample::select(vec![Op::In, Op::NotIn]),
        string_list(),
    )
        .prop_map(|(key, op, items)| Comparison {
            key,
            op,
            value: Value::List(items),
        });
    prop_oneof![numeric, string, null, list]
}

fn expr() -> impl Strategy<Value = Expr> {
    filters(comparison().prop_map(Expr::Compare), 5, 48, 2..5)
}

/// Fragments of filter text, valid and not, glued into token soup.
fn soup() -> impl Strategy<Value = String> {
    let fragment = prop::sample::select(vec![
        "metrics.a",
        "params.`b c`",
        "tags.t",
        "attributes.start_time",
        "run_id",
        "created",
        "datasets.name",
        "foo.bar",
        "metrics.",
        "`",
        "\"",
        "'",
        "'x'",
        "\"y\"",
        "1",
        "-2.5",
        "1e3",
        ".",
        "=",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "==",
        "<>",
        "!",
        "LIKE",
        "ILIKE",
        "IN",
        "NOT",
        "IS",
        "NULL",
        "AND",
        "OR",
        "(",
        ")",
        ",",
        "ASC",
        "DESC",
        " ",
        "é",
        "\u{0}",
    ]);
    prop::collection::vec(fragment, 0..16).prop_map(|parts| parts.join(" "))
}

fn check_compiles(e: &Expr) {
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        let mut q = QueryBuilder::new();
        push_filter(e, dialect, &mut q);
        assert_eq!(count_placeholders(q.sql()), q.binds().len());
    }
}

proptest! {
    // 512 cases by default; PROPTEST_CASES overrides.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512)
    ))]

    #[test]
    fn rendered_filters_parse_back_to_the_same_ast(e in expr()) {
        let text = e.to_string();
        let parsed = parse_filter(&text);
        prop_assert_eq!(parsed, Ok(Some(e.clone())), "text: {}", text);
        check_compiles(&e);
    }

    #[test]
    fn arbitrary_text_never_panics(input in any::<String>()) {
        let _ = parse_filter(&input);
        let _ = parse_order_by(&[input]);
    }

    #[test]
    fn token_soup_never_panics_and_reparses(input in soup()) {
        match parse_filter(&input) {
            Ok(Some(e)) => {
                let again = parse_filter(&e.to_string());
                prop_assert_eq!(again, Ok(Some(e.clone())));
                check_compiles(&e);
            }
            Ok(None) => prop_assert!(input.trim().is_empty()),
            Err(err) => {
                prop_assert!(err.position <= input.len());
                prop_assert!(input.is_char_boundary(err.position));
                prop_assert!(!err.message.is_empty());
            }
        }
        let _ = parse_order_by(&[input.clone(), input]);
    }

    #[test]
    fn order_keys_round_trip(
        keys in prop::collection::vec(
            (
                prop_oneof![
                    key_name().prop_map(Key::Metric),
                    key_name().prop_map(Key::Param),
                    key_name().prop_map(Key::Tag),
                    prop::sample::select(Attribute::ALL.to_vec()).prop_map(Key::Attribute),
                ],
                any::<bool>(),
            ).prop_map(|(key, ascending)| OrderKey { key, ascending }),
            0..5,
        )
    ) {
        let mut unique: Vec<OrderKey> = Vec::new();
        for k in keys {
            if !unique.iter().any(|u| u.key == k.key) {
                unique.push(k);
            }
        }
        let texts: Vec<String> = unique.iter().map(|k| k.to_string()).collect();
        prop_assert_eq!(parse_order_by(&texts), Ok(unique.clone()));
        let mut q = QueryBuilder::new();
        push_order_joins(&unique, &mut q);
        push_order_by(&unique, &mut q);
        prop_assert_eq!(count_placeholders(q.sql()), q.binds().len());
    }
}
