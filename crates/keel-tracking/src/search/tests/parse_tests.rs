use super::*;

// ---------------------------------------------------------------- filters

#[test]
fn empty_and_blank_filters_are_no_filter() {
    assert_eq!(parse_filter(""), Ok(None));
    assert_eq!(parse_filter("   \t\n "), Ok(None));
}

#[test]
fn metric_comparisons_with_every_operator() {
    for (text, op) in [
        ("=", Op::Eq),
        ("!=", Op::Ne),
        (">", Op::Gt),
        (">=", Op::Ge),
        ("<", Op::Lt),
        ("<=", Op::Le),
    ] {
        assert_eq!(
            parse(&format!("metrics.auc {text} 0.5")),
            metric("auc", op, 0.5),
            "{text}"
        );
    }
    // No spaces needed around operators.
    assert_eq!(parse("metrics.auc>=0.5"), metric("auc", Op::Ge, 0.5));
    assert_eq!(parse("metrics.auc<-1"), metric("auc", Op::Lt, -1.0));
}

#[test]
fn entity_prefixes_and_their_aliases() {
    for prefix in ["metric", "metrics", "METRICS", "Metric"] {
        assert_eq!(parse(&format!("{prefix}.m > 1")), metric("m", Op::Gt, 1.0));
    }
    for prefix in ["param", "params", "parameter", "parameters", "PARAMS"] {
        assert_eq!(parse(&format!("{prefix}.p = 'x'")), param("p", Op::Eq, "x"));
    }
    for prefix in ["tag", "tags", "Tags"] {
        assert_eq!(parse(&format!("{prefix}.t = 'x'")), tag("t", Op::Eq, "x"));
    }
    for prefix in ["attribute", "attributes", "attr", "run", "ATTRIBUTES"] {
        assert_eq!(
            parse(&format!("{prefix}.status = 'FINISHED'")),
            attr(Attribute::Status, Op::Eq, s("FINISHED"))
        );
    }
    for prefix in ["dataset", "datasets", "DATASETS"] {
        assert_eq!(
            parse(&format!("{prefix}.name = 'train'")),
            cmp(Key::Dataset(DatasetField::Name), Op::Eq, s("train"))
        );
    }
}

#[test]
fn every_attribute_and_alias() {
    let strings = [
        ("run_id", Attribute::RunId),
        ("run_name", Attribute::RunName),
        ("status", Attribute::Status),
        ("artifact_uri", Attribute::ArtifactUri),
        ("user_id", Attribute::UserId),
        ("lifecycle_stage", Attribute::LifecycleStage),
    ];
    for (name, a) in strings {
        for op in ["=", "!=", "LIKE", "ILIKE"] {
            let e = parse(&format!("attributes.{name} {op} 'v'"));
            let Expr::Compare(c) = e else { panic!() };
            assert_eq!(c.key, Key::Attribute(a));
            assert_eq!(c.value, s("v"));
        }
    }
    let numbers = [
        ("start_time", Attribute::StartTime),
        ("end_time", Attribute::EndTime),
        ("created", Attribute::StartTime),
        ("Created", Attribute::StartTime),
    ];
    for (name, a) in numbers {
        for op in ["=", "!=", ">", ">=", "<", "<="] {
            let e = parse(&format!("attributes.{name} {op} 1700000000000"));
            let Expr::Compare(c) = e else { panic!() };
            assert_eq!(c.key, Key::Attribute(a));
            assert_eq!(c.value, Value::Number(1_700_000_000_000.0));
        }
    }
    for text in [
        "attributes.`run name` = 'x'",
        "attributes.\"Run name\" = 'x'",
        "`Run Name` = 'x'",
        "\"run name\" = 'x'",
    ] {
        assert_eq!(
            parse(text),
            attr(Attribute::RunName, Op::Eq, s("x")),
            "{text}"
        );
    }
}

#[test]
fn bare_attribute_names_as_in_mlflow() {
    assert_eq!(
        parse("status = 'RUNNING'"),
        attr(Attribute::Status, Op::Eq, s("RUNNING"))
    );
    assert_eq!(
        parse("start_time > 5"),
        attr(Attribute::StartTime, Op::Gt, Value::Number(5.0))
    );
    assert_eq!(
        parse("created < 5"),
        attr(Attribute::StartTime, Op::Lt, Value::Number(5.0))
    );
}

#[test]
fn dataset_fields_and_operators() {
    for (name, field) in [
        ("name", DatasetField::Name),
        ("digest", DatasetField::Digest),
        ("context", DatasetField::Context),
    ] {
        for op in ["=", "!=", "LIKE", "ILIKE"] {
            let Expr::Compare(c) = parse(&format!("datasets.{name} {op} 'v'")) else {
                panic!()
            };
            assert_eq!(c.key, Key::Dataset(field));
        }
        assert_eq!(
            parse(&format!("datasets.{name} NOT IN ('a', \"b\")")),
            cmp(
                Key::Dataset(field),
                Op::NotIn,
                Value::List(vec!["a".into(), "b".into()])
            )
        );
    }
}

#[test]
fn quoted_and_dotted_keys() {
    assert_eq!(
        parse("metrics.\"my metric\" > 1"),
        metric("my metric", Op::Gt, 1.0)
    );
    assert_eq!(parse("params.`a b` = 'x'"), param("a b", Op::Eq, "x"));
    assert_eq!(
        parse("tags.mlflow.runName = 'x'"),
        tag("mlflow.runName", Op::Eq, "x")
    );
    assert_eq!(
        parse("tags.`mlflow.source.name` = 'x'"),
        tag("mlflow.source.name", Op::Eq, "x")
    );
    // Doubled quotes inside quoted keys.
    assert_eq!(parse("params.`a``b` = 'x'"), param("a`b", Op::Eq, "x"));
    assert_eq!(parse("params.\"a\"\"b\" = 'x'"), param("a\"b", Op::Eq, "x"));
    // Bare names may hold - / : and non-ASCII letters.
    assert_eq!(
        parse("metrics.val-loss/step:1 < 2"),
        metric("val-loss/step:1", Op::Lt, 2.0)
    );
    assert_eq!(
        parse("metrics.précision > 0"),
        metric("précision", Op::Gt, 0.0)
    );
    assert_eq!(parse("metrics.1st > 0"), metric("1st", Op::Gt, 0.0));
    // Keywords are fine as key names.
    assert_eq!(parse("params.and = 'x'"), param("and", Op::Eq, "x"));
}

#[test]
fn string_literals() {
    assert_eq!(parse("params.p = 'x'"), param("p", Op::Eq, "x"));
    assert_eq!(parse("params.p = \"x\""), param("p", Op::Eq, "x"));
    assert_eq!(parse("params.p = ''"), param("p", Op::Eq, ""));
    assert_eq!(parse("params.p = 'it''s'"), param("p", Op::Eq, "it's"));
    assert_eq!(
        parse("params.p = \"say \"\"hi\"\"\""),
        param("p", Op::Eq, "say \"hi\"")
    );
    assert_eq!(parse("params.p = \"it's\""), param("p", Op::Eq, "it's"));
    assert_eq!(parse(r"params.p = 'a\b\'"), param("p", Op::Eq, r"a\b\"));
    assert_eq!(
        parse("params.p = 'AND OR ( ) , ='"),
        param("p", Op::Eq, "AND OR ( ) , =")
    );
    assert_eq!(parse("params.p = '日本'"), param("p", Op::Eq, "日本"));
}

#[test]
fn number_literals() {
    for (text, n) in [
        ("1", 1.0),
        ("-1", -1.0),
        ("0.25", 0.25),
        ("-0.25", -0.25),
        (".5", 0.5),
        ("-.5", -0.5),
        ("5.", 5.0),
        ("1e3", 1000.0),
        ("1E+3", 1000.0),
        ("2.5e-3", 0.0025),
        ("-1e-3", -0.001),
        ("1700000000000", 1_700_000_000_000.0),
    ] {
        assert_eq!(
            parse(&format!("metrics.m = {text}")),
            metric("m", Op::Eq, n),
            "{text}"
        );
    }
}

#[test]
fn like_ilike_in_and_null_operators() {
    assert_eq!(parse("params.p LIKE '%a_'"), param("p", Op::Like, "%a_"));
    assert_eq!(parse("params.p like '%a_'"), param("p", Op::Like, "%a_"));
    assert_eq!(parse("tags.t ILIKE '%A%'"), tag("t", Op::ILike, "%A%"));
    assert_eq!(parse("tags.t iLike '%A%'"), tag("t", Op::ILike, "%A%"));
    assert_eq!(
        parse("params.p IS NULL"),
        cmp(Key::Param("p".into()), Op::IsNull, Value::Null)
    );
    assert_eq!(
        parse("tags.t is not null"),
        cmp(Key::Tag("t".into()), Op::IsNotNull, Value::Null)
    );
    assert_eq!(
        parse("attributes.run_id IN ('a', 'b','c')"),
        attr(
            Attribute::RunId,
            Op::In,
            Value::List(vec!["a".into(), "b".into(), "c".into()])
        )
    );
    assert_eq!(
        parse("run_id not in ('a')"),
        attr(Attribute::RunId, Op::NotIn, Value::List(vec!["a".into()]))
    );
    assert_eq!(
        parse("attributes.run_id LIKE 'ab%'"),
        attr(Attribute::RunId, Op::Like, s("ab%"))
    );
}

#[test]
fn mlflow_and_chains_stay_flat() {
    assert_eq!(
        parse("metrics.a > 1 AND params.b = 'x' and tags.c != 'y'"),
        Expr::And(vec![
            metric("a", Op::Gt, 1.0),
            param("b", Op::Eq, "x"),
            tag("c", Op::Ne, "y"),
        ])
    );
}

#[test]
fn precedence_not_over_and_over_or() {
    let a = || metric("a", Op::Gt, 1.0);
    let b = || metric("b", Op::Gt, 1.0);
    let c = || metric("c", Op::Gt, 1.0);
    assert_eq!(
        parse("metrics.a > 1 OR metrics.b > 1 AND metrics.c > 1"),
        Expr::Or(vec![a(), Expr::And(vec![b(), c()])])
    );
    assert_eq!(
        parse("metrics.a > 1 AND metrics.b > 1 OR metrics.c > 1"),
        Expr::Or(vec![Expr::And(vec![a(), b()]), c()])
    );
    assert_eq!(
        parse("NOT metrics.a > 1 AND metrics.b > 1"),
        Expr::And(vec![Expr::Not(Box::new(a())), b()])
    );
    assert_eq!(
        parse("not (metrics.a > 1 or metrics.b > 1)"),
        Expr::Not(Box::new(Expr::Or(vec![a(), b()])))
    );
    assert_eq!(
        parse("(metrics.a > 1 OR metrics.b > 1) AND metrics.c > 1"),
        Expr::And(vec![Expr::Or(vec![a(), b()]), c()])
    );
    assert_eq!(
        parse("NOT NOT metrics.a > 1"),
        Expr::Not(Box::new(Expr::Not(Box::new(a()))))
    );
    // Parentheses keep the grouping as written, and a lone parenthesised
    // comparison is the comparison.
    assert_eq!(
        parse("(metrics.a > 1 AND metrics.b > 1) AND metrics.c > 1"),
        Expr::And(vec![Expr::And(vec![a(), b()]), c()])
    );
    assert_eq!(parse("((metrics.a > 1))"), a());
}

#[test]
fn display_renders_canonical_text() {
    let e = parse(
        "metric.`a b` >= -1.5 AND (params.p LIKE 'it''s' OR NOT tags.t IS NULL) \
         AND attr.run_id IN ('x', 'y') AND created > 5",
    );
    assert_eq!(
        e.to_string(),
        "metrics.`a b` >= -1.5 AND (params.p LIKE 'it''s' OR NOT tags.t IS NULL) \
         AND attributes.run_id IN ('x', 'y') AND attributes.start_time > 5"
    );
    assert_eq!(parse(&e.to_string()), e);
}

// ---------------------------------------------------------------- errors

/// Asserts the error's position, near text and message.
#[track_caller]
fn assert_err(input: &str, position: usize, near: &str, message: &str) {
    let e = parse_err(input);
    assert_eq!(
        (e.position, e.near.as_str(), e.message.as_str()),
        (position, near, message),
        "for {input:?}"
    );
    assert_eq!(e.clause, None);
}

#[test]
fn error_display_format() {
    let e = parse_err("metrics.auc > 1 AND params.x foo");
    assert_eq!(
        e.to_string(),
        "invalid filter at character 29 near 'foo': expected a comparison operator; \
         params take = != LIKE ILIKE IS NULL IS NOT NULL"
    );
    let e = parse_err("metrics.auc >");
    assert_eq!(
        e.to_string(),
        "invalid filter at end of input (character 13): expected a number after >"
    );
}

#[test]
fn invalid_entity() {
    assert_err(
        "foo.bar = 1",
        0,
        "foo",
        "unknown entity 'foo'; expected metrics, params, tags, attributes or datasets",
    );
    assert_err(
        "metrics.a > 1 AND metricz.b > 1",
        18,
        "metricz",
        "unknown entity 'metricz'; expected metrics, params, tags, attributes or datasets",
    );
}

#[test]
fn unknown_attribute() {
    let hint = "valid attributes are run_id, run_name, status, artifact_uri, user_id, \
                lifecycle_stage, start_time, end_time and created";
    assert_err(
        "attributes.foo = 'x'",
        11,
        "foo",
        &format!(
            "unknown attribute 'foo'; {hint} (metrics, params and tags need a prefix, e.g. metrics.foo)"
        ),
    );
    assert_err(
        "auc > 1",
        0,
        "auc",
        &format!(
            "unknown attribute 'auc'; {hint} (metrics, params and tags need a prefix, e.g. metrics.auc)"
        ),
    );
    // Attribute names are case-sensitive, as in MLflow.
    assert_eq!(parse_err("attributes.Status = 'x'").position, 11);
    assert_eq!(parse_err("`my key` = 'x'").near, "`my key`");
}

#[test]
fn unknown_dataset_field() {
    assert_err(
        "datasets.size = 'x'",
        9,
        "size",
        "unknown dataset field 'size'; expected name, digest or context",
    );
}

#[test]
fn missing_key_pieces() {
    assert_err(
        "metrics > 1",
        0,
        "metrics",
        "expected '.' and a key after 'metrics' (e.g. metrics.my_key)",
    );
    assert_err(
        "metrics. > 1",
        8,
        "metrics.",
        "expected a key after 'metrics.'",
    );
    assert_err("params.`` = 'x'", 7, "``", "empty key");
    assert_err(
        "params.'a' = 'x'",
        7,
        "'a'",
        "quote keys with backticks or double quotes, not single quotes",
    );
    assert_err(
        "'a' = 'x'",
        0,
        "'a'",
        "expected a key such as metrics.auc, found a string; quote keys with backticks or double quotes",
    );
    assert_err(
        "1 = 1",
        0,
        "1",
        "expected a key such as metrics.auc, found a number",
    );
    assert_err(
        "AND metrics.a > 1",
        0,
        "AND",
        "expected a comparison such as metrics.auc > 0.9, found the keyword AND",
    );
}

#[test]
fn missing_or_bad_operator() {
    assert_err(
        "metrics.auc 0.5",
        12,
        "0.5",
        "expected a comparison operator; metrics take = != > >= < <=",
    );
    assert_err(
        "metrics.auc",
        11,
        "",
        "expected a comparison operator; metrics take = != > >= < <=",
    );
    assert_err(
        "metrics.auc == 1",
        12,
        "==",
        "'==' is not an operator; use =",
    );
    assert_err(
        "metrics.auc <> 1",
        12,
        "<>",
        "'<>' is not an operator; use !=",
    );
    assert_err(
        "params.p IS 'x'",
        12,
        "'x'",
        "expected NULL or NOT NULL after IS",
    );
    assert_err(
        "params.p IS NOT 'x'",
        16,
        "'x'",
        "expected NULL after IS NOT",
    );
    assert_err("run_id NOT ('a')", 11, "(", "expected IN after NOT");
}

#[test]
fn operator_not_allowed_for_key() {
    assert_err(
        "metrics.auc LIKE 'x'",
        12,
        "LIKE",
        "LIKE is not allowed on metrics; use = != > >= < <=",
    );
    assert_err(
        "attributes.start_time ILIKE 'x'",
        22,
        "ILIKE",
        "ILIKE is not allowed on numeric attribute start_time; use = != > >= < <=",
    );
    assert_err(
        "params.p > 'x'",
        9,
        ">",
        "> is not allowed on params; use = != LIKE ILIKE IS NULL IS NOT NULL",
    );
    assert_err(
        "tags.t IN ('x')",
        7,
        "IN",
        "IN is not allowed on tags; use = != LIKE ILIKE IS NULL IS NOT NULL",
    );
    assert_err(
        "attributes.status IN ('x')",
        18,
        "IN",
        "IN is not allowed on attribute status; use = != LIKE ILIKE \
         (IN and NOT IN are supported for run_id only)",
    );
    assert_err(
        "metrics.m IS NULL",
        10,
        "IS",
        "IS NULL is not allowed on metrics; use = != > >= < <= \
         (IS NULL and IS NOT NULL are supported for params and tags only)",
    );
    assert_err(
        "datasets.name < 'x'",
        14,
        "<",
        "< is not allowed on datasets; use = != LIKE ILIKE IN NOT IN",
    );
}

#[test]
fn missing_value() {
    assert_err("metrics.auc >", 13, "", "expected a number after >");
    assert_err(
        "params.p =",
        10,
        "",
        "expected a quoted string value for params (e.g. 'value') after =",
    );
    assert_err(
        "metrics.a > AND metrics.b > 1",
        12,
        "AND",
        "expected a number (metrics compare numerically)",
    );
}

#[test]
fn wrong_value_type() {
    assert_err(
        "metrics.auc > 'x'",
        14,
        "'x'",
        "expected a number (metrics compare numerically), found a quoted string",
    );
    assert_err(
        "attributes.end_time > '5'",
        22,
        "'5'",
        "expected a number (numeric attribute end_time compare numerically), found a quoted string",
    );
    assert_err(
        "params.p = 5",
        11,
        "5",
        "expected a quoted string value for params (e.g. 'value'), found a number",
    );
    assert_err(
        "tags.t = cnn",
        9,
        "cnn",
        "expected a quoted string value for tags (e.g. 'value'); string values must be quoted",
    );
    assert_err(
        "attributes.status = `x`",
        20,
        "`x`",
        "expected a quoted string value for attribute status (e.g. 'value'); \
         backticks quote keys, not values",
    );
    assert_err(
        "run_id = ('a')",
        9,
        "(",
        "expected a quoted string value for attribute run_id (e.g. 'value')",
    );
}

#[test]
fn bad_in_lists() {
    assert_err(
        "run_id IN 'a'",
        10,
        "'a'",
        "expected '(' and a list of quoted strings after IN, e.g. ('a', 'b')",
    );
    assert_err(
        "run_id IN ()",
        11,
        ")",
        "expected at least one quoted string in the IN list",
    );
    assert_err(
        "run_id NOT IN ('a', 1)",
        20,
        "1",
        "expected a quoted string in the NOT IN list",
    );
    assert_err(
        "run_id IN ('a', )",
        16,
        ")",
        "expected a quoted string in the IN list",
    );
    assert_err(
        "run_id IN ('a' 'b')",
        15,
        "'b'",
        "expected ',' or ')' in the IN list",
    );
    assert_err(
        "run_id IN ('a'",
        14,
        "",
        "expected ',' or ')' in the IN list",
    );
}

#[test]
fn unbalanced_parentheses() {
    assert_err(
        "(metrics.a > 1",
        14,
        "",
        "expected ')' to close the '(' at character 0",
    );
    assert_err(
        "metrics.a > 1 AND (metrics.b > 1 OR (metrics.c > 1)",
        51,
        "",
        "expected ')' to close the '(' at character 18",
    );
    assert_err(
        "(metrics.a > 1 params.b = 'x')",
        15,
        "params.b",
        "expected AND, OR or ')' to close the '(' at character 0",
    );
    assert_err("metrics.a > 1)", 13, ")", "unmatched ')'");
    assert_err(
        "()",
        1,
        ")",
        "expected a comparison such as metrics.auc > 0.9",
    );
}

#[test]
fn trailing_garbage() {
    assert_err(
        "metrics.a > 1 metrics.b > 1",
        14,
        "metrics.b",
        "expected AND, OR or the end of the filter",
    );
    assert_err(
        "metrics.a > 1 AND",
        17,
        "",
        "expected a comparison such as metrics.auc > 0.9",
    );
    assert_err(
        "metrics.a > 1 OR OR metrics.b > 1",
        17,
        "OR",
        "expected a comparison such as metrics.auc > 0.9, found the keyword OR",
    );
    assert_err(
        "params.p = 'x' 'y'",
        15,
        "'y'",
        "expected AND, OR or the end of the filter",
    );
}

#[test]
fn lexical_errors() {
    assert_err(
        "params.p = 'abc",
        11,
        "'abc",
        "unterminated string: missing closing '",
    );
    assert_err(
        "params.`abc = 'x'",
        7,
        "`abc = 'x'",
        "unterminated quoted key: missing closing `",
    );
    assert_err(
        "metrics.a > 1 && metrics.b > 1",
        14,
        "&",
        "unexpected character '&'; use AND",
    );
    assert_err(
        "metrics.a > 1 || metrics.b > 1",
        14,
        "|",
        "unexpected character '|'; use OR",
    );
    assert_err(
        "metrics.a ! 1",
        10,
        "!",
        "unexpected character '!'; did you mean '!='?",
    );
    assert_err("metrics.a > 1;", 13, ";", "unexpected character ';'");
    assert_err("metrics.a > 1.2.3", 12, "1.2.3", "invalid number '1.2.3'");
    assert_err("metrics.a > 1abc", 12, "1abc", "invalid number '1abc'");
    assert_err("metrics.a > 1e", 12, "1e", "invalid number '1e'");
    assert_err(
        "metrics.a > 1e999",
        12,
        "1e999",
        "number '1e999' is out of range",
    );
    // The first error in the text wins, even a lexical one after a parse
    // error's position would not be reached.
    assert_err(
        "foo.a > 1 & x",
        0,
        "foo",
        "unknown entity 'foo'; expected metrics, params, tags, attributes or datasets",
    );
}

#[test]
fn error_positions_are_byte_offsets() {
    // 'é' is two bytes.
    assert_err(
        "params.é = 'x' AND bogus.a = 'y'",
        20,
        "bogus",
        "unknown entity 'bogus'; expected metrics, params, tags, attributes or datasets",
    );
}

#[test]
fn long_near_text_is_cut() {
    let input = format!("params.p = '{}", "x".repeat(100));
    let e = parse_err(&input);
    assert_eq!(e.near.chars().count(), 41);
    assert!(e.near.ends_with('…'));
}

#[test]
fn nesting_is_bounded() {
    let ok = format!(
        "{}metrics.a > 1{}",
        "(".repeat(MAX_NESTING),
        ")".repeat(MAX_NESTING)
    );
    assert_eq!(parse(&ok), metric("a", Op::Gt, 1.0));
    let deep = format!(
        "{}metrics.a > 1{}",
        "(".repeat(MAX_NESTING + 1),
        ")".repeat(MAX_NESTING + 1)
    );
    assert_err(
        &deep,
        MAX_NESTING,
        "(",
        &format!("the filter nests NOT and parentheses more than {MAX_NESTING} deep"),
    );
    let nots = format!("{}metrics.a > 1", "NOT ".repeat(100_000));
    assert_eq!(parse_err(&nots).position, MAX_NESTING * 4);
    let parens = "(".repeat(1_000_000);
    assert_eq!(parse_err(&parens).position, MAX_NESTING);
}

// ---------------------------------------------------------------- order_by

fn order(clauses: &[&str]) -> Result<Vec<OrderKey>, FilterError> {
    let owned: Vec<String> = clauses.iter().map(|c| c.to_string()).collect();
    parse_order_by(&owned)
}

fn ok(key: Key, ascending: bool) -> OrderKey {
    OrderKey { key, ascending }
}

#[test]
fn order_by_clauses() {
    assert_eq!(order(&[]), Ok(vec![]));
    assert_eq!(
        order(&[
            "metrics.auc DESC",
            "params.model",
            "attributes.start_time ASC",
            "tags.`x y` desc",
            "run_name",
            "attr.end_time Desc",
            "metric.\"m 2\"   asc  ",
        ]),
        Ok(vec![
            ok(Key::Metric("auc".into()), false),
            ok(Key::Param("model".into()), true),
            ok(Key::Attribute(Attribute::StartTime), true),
            ok(Key::Tag("x y".into()), false),
            ok(Key::Attribute(Attribute::RunName), true),
            ok(Key::Attribute(Attribute::EndTime), false),
            ok(Key::Metric("m 2".into()), true),
        ])
    );
    assert_eq!(
        order(&["created DESC"]),
        Ok(vec![ok(Key::Attribute(Attribute::StartTime), false)])
    );
    assert_eq!(
        order(&["tags.mlflow.runName"]),
        Ok(vec![ok(Key::Tag("mlflow.runName".into()), true)])
    );
    assert_eq!(
        order(&["start_time"]),
        Ok(vec![ok(Key::Attribute(Attribute::StartTime), true)])
    );
}

#[track_caller]
fn assert_order_err(clauses: &[&str], clause: usize, position: usize, near: &str, message: &str) {
    let e = match order(clauses) {
        Err(e) => e,
        Ok(keys) => panic!("{clauses:?} parsed to {keys:?}"),
    };
    assert_eq!(
        (e.clause, e.position, e.near.as_str(), e.message.as_str()),
        (Some(clause), position, near, message),
        "for {clauses:?}"
    );
}

#[test]
fn order_by_errors() {
    assert_order_err(
        &["metrics.a", "  "],
        1,
        2,
        "",
        "empty order_by clause; expected a key such as metrics.auc, optionally followed by ASC or DESC",
    );
    assert_order_err(
        &["metrics.a DESCENDING"],
        0,
        10,
        "DESCENDING",
        "expected ASC, DESC or the end of the clause",
    );
    assert_order_err(
        &["metrics.a DESC x"],
        0,
        15,
        "x",
        "expected the end of the clause after ASC/DESC",
    );
    assert_order_err(
        &["metrics.a", "foo.b"],
        1,
        0,
        "foo",
        "unknown entity 'foo'; expected metrics, params, tags, attributes or datasets",
    );
    assert_order_err(
        &["datasets.name"],
        0,
        0,
        "datasets.name",
        "datasets fields cannot be ordered by; order by metrics, params, tags or attributes",
    );
    assert_order_err(
        &["attributes.start_time", "created DESC"],
        1,
        0,
        "created DESC",
        "duplicate order_by key attributes.start_time (already ordered by in order_by[0])",
    );
    assert_order_err(
        &["params.a", "metrics.a", "param.a DESC"],
        2,
        0,
        "param.a DESC",
        "duplicate order_by key params.a (already ordered by in order_by[0])",
    );
    assert_order_err(
        &["metrics.a > 1"],
        0,
        10,
        ">",
        "expected ASC, DESC or the end of the clause",
    );
    let e = order(&["metrics.a", "metrics.b DESCX"]).err();
    assert_eq!(
        e.map(|e| e.to_string()),
        Some(
            "invalid order_by[1] at character 10 near 'DESCX': \
             expected ASC, DESC or the end of the clause"
                .to_owned()
        )
    );
}

#[test]
fn order_key_display_round_trips() {
    let keys =
        order(&["metrics.`a b` DESC", "params.p", "created", "tags.x.y desc"]).unwrap_or_default();
    let texts: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    assert_eq!(
        texts,
        [
            "metrics.`a b` DESC",
            "params.p ASC",
            "attributes.start_time ASC",
            "tags.x.y DESC"
        ]
    );
    assert_eq!(parse_order_by(&texts), Ok(keys));
}
