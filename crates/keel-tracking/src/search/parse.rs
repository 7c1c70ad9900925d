//! Recursive-descent parser for filters and order_by clauses.

use std::fmt;

use super::ast::{Attribute, Comparison, DatasetField, Expr, Key, Op, OrderKey, Value};
use super::boolean::BoolExpr;
use super::error::FilterError;
use super::lexer::{CmpOp, Lexer, Token, TokenKind};

/// How deeply parentheses and `NOT`s may nest in a filter. Deeper input is
/// rejected rather than risking the stack.
pub const MAX_NESTING: usize = 64;

/// Parses a run-search filter. An empty or all-whitespace filter is `None`.
///
/// `a AND b AND c` gives one `Expr::And` of three children (likewise `OR`);
/// parentheses are kept as written (`(a AND b) AND c` nests), and a
/// parenthesised single comparison is just that comparison.
pub fn parse_filter(input: &str) -> Result<Option<Expr>, FilterError> {
    parse_boolean(input, |p| p.comparison())
}

/// Reads one comparison (`key op value`) of a filter grammar.
pub(super) type Atom<E> = fn(&mut Parser<'_>) -> Result<E, FilterError>;

/// Parses `OR`/`AND`/`NOT`/parentheses around comparisons read by `atom`,
/// with the nesting limit and error messages shared by every filter grammar.
/// An empty or all-whitespace filter is `None`.
pub(super) fn parse_boolean<E: BoolExpr>(
    input: &str,
    atom: Atom<E>,
) -> Result<Option<E>, FilterError> {
    if input.trim().is_empty() {
        return Ok(None);
    }
    let mut p = Parser::new(input);
    let expr = p.or_expr(0, atom)?;
    let tok = p.bump()?;
    match tok.kind {
        TokenKind::Eof => Ok(Some(expr)),
        TokenKind::RParen => Err(p.error(&tok, "unmatched ')'")),
        _ => Err(p.error(&tok, "expected AND, OR or the end of the filter")),
    }
}

/// Parses MLflow `order_by` clauses: `<key> [ASC|DESC]` each, where the key
/// is written as in a filter and may be a bare attribute name
/// (`start_time DESC`). The default direction is ascending. Dataset fields
/// cannot be ordered by, and a key may appear only once (`created` and
/// `start_time` are the same key).
pub fn parse_order_by(clauses: &[String]) -> Result<Vec<OrderKey>, FilterError> {
    parse_order_clauses(clauses, parse_order_clause, |k| k.key.clone())
}

/// Parses each clause with `parse`, rejecting a clause whose key (as `key`
/// names it) an earlier clause already orders by. Errors carry the index of
/// the clause at fault.
pub(super) fn parse_order_clauses<K, N: PartialEq + fmt::Display>(
    clauses: &[String],
    parse: fn(&str) -> Result<K, FilterError>,
    key: fn(&K) -> N,
) -> Result<Vec<K>, FilterError> {
    let mut keys: Vec<K> = Vec::with_capacity(clauses.len());
    let mut names: Vec<N> = Vec::with_capacity(clauses.len());
    for (i, clause) in clauses.iter().enumerate() {
        let at = |mut e: FilterError| {
            e.clause = Some(i);
            e
        };
        let parsed = parse(clause).map_err(at)?;
        let name = key(&parsed);
        if let Some(first) = names.iter().position(|n| *n == name) {
            return Err(at(FilterError::new(
                0,
                clause.trim_end(),
                format!("duplicate order_by key {name} (already ordered by in order_by[{first}])"),
            )));
        }
        keys.push(parsed);
        names.push(name);
    }
    Ok(keys)
}

fn parse_order_clause(clause: &str) -> Result<OrderKey, FilterError> {
    let mut p = Parser::new(clause);
    let first = p.peek()?.clone();
    if first.kind == TokenKind::Eof {
        return Err(FilterError::new(
            first.start,
            "",
            "empty order_by clause; expected a key such as metrics.auc, optionally followed by ASC or DESC",
        ));
    }
    let (key, key_tok) = p.key()?;
    if let Key::Dataset(_) = key {
        return Err(p.error(
            &key_tok,
            "datasets fields cannot be ordered by; order by metrics, params, tags or attributes",
        ));
    }
    let ascending = p.order_direction()?;
    Ok(OrderKey { key, ascending })
}

/// The entity prefixes (lower case) and what they stand for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entity {
    Metric,
    Param,
    Tag,
    Attribute,
    Dataset,
}

fn entity_from_name(name: &str) -> Option<Entity> {
    let lower = name.to_ascii_lowercase();
    Some(match lower.as_str() {
        "metric" | "metrics" => Entity::Metric,
        "param" | "params" | "parameter" | "parameters" => Entity::Param,
        "tag" | "tags" => Entity::Tag,
        "attribute" | "attributes" | "attr" | "run" => Entity::Attribute,
        "dataset" | "datasets" => Entity::Dataset,
        _ => return None,
    })
}

pub(super) const KEYWORDS: [&str; 10] = [
    "AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "ILIKE", "ASC", "DESC",
];

const ENTITIES_HINT: &str = "expected metrics, params, tags, attributes or datasets";

fn attributes_hint() -> String {
    let names: Vec<&str> = Attribute::ALL.iter().map(|a| a.name()).collect();
    format!("valid attributes are {} and created", names.join(", "))
}

/// What kind of operand a key compares as; decides operators and values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyClass {
    Metric,
    Param,
    Tag,
    NumericAttribute,
    RunId,
    StringAttribute,
    Dataset,
}

impl KeyClass {
    fn of(key: &Key) -> KeyClass {
        match key {
            Key::Metric(_) => KeyClass::Metric,
            Key::Param(_) => KeyClass::Param,
            Key::Tag(_) => KeyClass::Tag,
            Key::Attribute(Attribute::RunId) => KeyClass::RunId,
            Key::Attribute(a) if a.is_numeric() => KeyClass::NumericAttribute,
            Key::Attribute(_) => KeyClass::StringAttribute,
            Key::Dataset(_) => KeyClass::Dataset,
        }
    }

    fn allowed_ops(self) -> &'static [Op] {
        use Op::*;
        match self {
            KeyClass::Metric | KeyClass::NumericAttribute => &[Eq, Ne, Gt, Ge, Lt, Le],
            KeyClass::Param | KeyClass::Tag => &[Eq, Ne, Like, ILike, IsNull, IsNotNull],
            KeyClass::RunId | KeyClass::Dataset => &[Eq, Ne, Like, ILike, In, NotIn],
            KeyClass::StringAttribute => &[Eq, Ne, Like, ILike],
        }
    }

    fn is_numeric(self) -> bool {
        matches!(self, KeyClass::Metric | KeyClass::NumericAttribute)
    }
}

/// How a key is named in messages: "metrics", "attribute status", ….
fn describe(key: &Key) -> String {
    match key {
        Key::Metric(_) => "metrics".to_owned(),
        Key::Param(_) => "params".to_owned(),
        Key::Tag(_) => "tags".to_owned(),
        Key::Attribute(a) if a.is_numeric() => format!("numeric attribute {}", a.name()),
        Key::Attribute(a) => format!("attribute {}", a.name()),
        Key::Dataset(_) => "datasets".to_owned(),
    }
}

pub(super) fn ops_list(ops: &[Op]) -> String {
    let names: Vec<&str> = ops.iter().map(|o| o.as_str()).collect();
    names.join(" ")
}

pub(super) struct Parser<'a> {
    src: &'a str,
    lexer: Lexer<'a>,
    peeked: Option<Token>,
}

impl<'a> Parser<'a> {
    pub(super) fn new(src: &'a str) -> Self {
        Parser {
            src,
            lexer: Lexer::new(src),
            peeked: None,
        }
    }

    pub(super) fn peek(&mut self) -> Result<&Token, FilterError> {
        let tok = match self.peeked.take() {
            Some(tok) => tok,
            None => self.lexer.next_token()?,
        };
        Ok(self.peeked.insert(tok))
    }

    pub(super) fn bump(&mut self) -> Result<Token, FilterError> {
        match self.peeked.take() {
            Some(tok) => Ok(tok),
            None => self.lexer.next_token(),
        }
    }

    pub(super) fn src(&self) -> &'a str {
        self.src
    }

    pub(super) fn error(&self, tok: &Token, message: impl Into<String>) -> FilterError {
        FilterError::new(tok.start, tok.text(self.src), message)
    }

    /// Reads the end of an order_by clause after its key: `ASC`, `DESC` or
    /// nothing (ascending), then the end of the clause.
    pub(super) fn order_direction(&mut self) -> Result<bool, FilterError> {
        let tok = self.bump()?;
        let ascending = if tok.is_keyword(self.src, "ASC") {
            true
        } else if tok.is_keyword(self.src, "DESC") {
            false
        } else if tok.kind == TokenKind::Eof {
            return Ok(true);
        } else {
            return Err(self.error(&tok, "expected ASC, DESC or the end of the clause"));
        };
        let end = self.bump()?;
        if end.kind != TokenKind::Eof {
            return Err(self.error(&end, "expected the end of the clause after ASC/DESC"));
        }
        Ok(ascending)
    }

    fn peek_is_keyword(&mut self, keyword: &str) -> Result<bool, FilterError> {
        let src = self.src;
        Ok(self.peek()?.is_keyword(src, keyword))
    }

    fn or_expr<E: BoolExpr>(&mut self, depth: usize, atom: Atom<E>) -> Result<E, FilterError> {
        let first = self.and_expr(depth, atom)?;
        if !self.peek_is_keyword("OR")? {
            return Ok(first);
        }
        let mut children = vec![first];
        while self.peek_is_keyword("OR")? {
            self.bump()?;
            children.push(self.and_expr(depth, atom)?);
        }
        Ok(E::or(children))
    }

    fn and_expr<E: BoolExpr>(&mut self, depth: usize, atom: Atom<E>) -> Result<E, FilterError> {
        let first = self.unary(depth, atom)?;
        if !self.peek_is_keyword("AND")? {
            return Ok(first);
        }
        let mut children = vec![first];
        while self.peek_is_keyword("AND")? {
            self.bump()?;
            children.push(self.unary(depth, atom)?);
        }
        Ok(E::and(children))
    }

    fn unary<E: BoolExpr>(&mut self, depth: usize, atom: Atom<E>) -> Result<E, FilterError> {
        let tok = self.peek()?.clone();
        let is_not = tok.is_keyword(self.src, "NOT");
        if (is_not || tok.kind == TokenKind::LParen) && depth >= MAX_NESTING {
            return Err(self.error(
                &tok,
                format!("the filter nests NOT and parentheses more than {MAX_NESTING} deep"),
            ));
        }
        if is_not {
            self.bump()?;
            return Ok(E::not(self.unary(depth + 1, atom)?));
        }
        if tok.kind == TokenKind::LParen {
            self.bump()?;
            let inner = self.or_expr(depth + 1, atom)?;
            let close = self.bump()?;
            if close.kind != TokenKind::RParen {
                let what = if close.kind == TokenKind::Eof {
                    "expected ')'"
                } else {
                    "expected AND, OR or ')'"
                };
                return Err(self.error(
                    &close,
                    format!("{what} to close the '(' at character {}", tok.start),
                ));
            }
            return Ok(inner);
        }
        atom(self)
    }

    fn comparison(&mut self) -> Result<Expr, FilterError> {
        let (key, _) = self.key()?;
        let op = self.op(&key)?;
        let value = self.value(&key, op)?;
        Ok(Expr::Compare(Comparison { key, op, value }))
    }

    /// Parses a key; returns it with the token that named it (for errors).
    fn key(&mut self) -> Result<(Key, Token), FilterError> {
        let tok = self.bump()?;
        match &tok.kind {
            TokenKind::Word => self.word_key(tok),
            TokenKind::Quoted { quote, text } if *quote != '\'' => {
                let key = self.attribute_key(&tok, text)?;
                Ok((key, tok))
            }
            _ => Err(self.not_a_key(
                &tok,
                "metrics.auc",
                "expected a comparison such as metrics.auc > 0.9",
            )),
        }
    }

    /// The error for a token where a key should start that is neither a word
    /// nor a backtick- or double-quoted key: a string, a number (both named
    /// with `key_example`), or else `expected`.
    pub(super) fn not_a_key(&self, tok: &Token, key_example: &str, expected: &str) -> FilterError {
        match tok.kind {
            TokenKind::Quoted { .. } => self.error(
                tok,
                format!(
                    "expected a key such as {key_example}, found a string; quote keys with backticks or double quotes"
                ),
            ),
            TokenKind::Number(_) => self.error(
                tok,
                format!("expected a key such as {key_example}, found a number"),
            ),
            _ => self.error(tok, expected),
        }
    }

    /// Rejects a key word without a `.` that is a keyword (the message names
    /// `example`, a comparison) or, per `is_entity`, an entity prefix missing
    /// its key.
    pub(super) fn check_bare_key(
        &self,
        tok: &Token,
        example: &str,
        is_entity: bool,
    ) -> Result<(), FilterError> {
        let text = tok.text(self.src);
        if let Some(kw) = KEYWORDS.iter().find(|k| text.eq_ignore_ascii_case(k)) {
            return Err(self.error(
                tok,
                format!("expected a comparison such as {example}, found the keyword {kw}"),
            ));
        }
        if is_entity {
            return Err(self.error(
                tok,
                format!("expected '.' and a key after '{text}' (e.g. {text}.my_key)"),
            ));
        }
        Ok(())
    }

    fn word_key(&mut self, tok: Token) -> Result<(Key, Token), FilterError> {
        let text = tok.text(self.src);
        let Some((entity_text, name)) = text.split_once('.') else {
            self.check_bare_key(&tok, "metrics.auc > 0.9", entity_from_name(text).is_some())?;
            let key = self.attribute_key(&tok, text)?;
            return Ok((key, tok));
        };
        let Some(entity) = entity_from_name(entity_text) else {
            return Err(FilterError::new(
                tok.start,
                entity_text,
                format!("unknown entity '{entity_text}'; {ENTITIES_HINT}"),
            ));
        };
        let (name, name_tok) = self.key_name(&tok, entity_text, name)?;
        let key = match entity {
            Entity::Metric => Key::Metric(name),
            Entity::Param => Key::Param(name),
            Entity::Tag => Key::Tag(name),
            Entity::Attribute => self.attribute_key(&name_tok, &name)?,
            Entity::Dataset => match DatasetField::from_name(&name) {
                Some(field) => Key::Dataset(field),
                None => {
                    return Err(self.error(
                        &name_tok,
                        format!("unknown dataset field '{name}'; expected name, digest or context"),
                    ));
                }
            },
        };
        Ok((key, tok))
    }

    /// The name of a prefixed key: `name`, the text after the first `.` of
    /// the word `tok` (whose prefix is `entity_text`), or, when `name` is
    /// empty, a backtick- or double-quoted name glued to the dot
    /// (`tags.\`my key\``). Returns the name and a token spanning it.
    pub(super) fn key_name(
        &mut self,
        tok: &Token,
        entity_text: &str,
        name: &str,
    ) -> Result<(String, Token), FilterError> {
        let text = tok.text(self.src);
        let name_start = tok.start + entity_text.len() + 1;
        Ok(if name.is_empty() {
            let next = self.peek()?.clone();
            match next.kind {
                TokenKind::Quoted { quote, text } if next.start == tok.end && quote != '\'' => {
                    self.bump()?;
                    let name_tok = Token {
                        kind: TokenKind::Word,
                        start: next.start,
                        end: next.end,
                    };
                    if text.is_empty() {
                        return Err(self.error(&name_tok, "empty key"));
                    }
                    (text, name_tok)
                }
                TokenKind::Quoted { quote: '\'', .. } if next.start == tok.end => {
                    return Err(self.error(
                        &next,
                        "quote keys with backticks or double quotes, not single quotes",
                    ));
                }
                _ => {
                    return Err(FilterError::new(
                        tok.end,
                        text,
                        format!("expected a key after '{text}'"),
                    ));
                }
            }
        } else {
            let name_tok = Token {
                kind: TokenKind::Word,
                start: name_start,
                end: tok.end,
            };
            (name.to_owned(), name_tok)
        })
    }

    fn attribute_key(&self, tok: &Token, name: &str) -> Result<Key, FilterError> {
        match Attribute::from_name(name) {
            Some(a) => Ok(Key::Attribute(a)),
            None => Err(self.error(
                tok,
                format!(
                    "unknown attribute '{name}'; {} (metrics, params and tags need a prefix, e.g. metrics.{name})",
                    attributes_hint()
                ),
            )),
        }
    }

    fn op(&mut self, key: &Key) -> Result<Op, FilterError> {
        let class = KeyClass::of(key);
        let (op, tok) = self.raw_op(|| {
            format!(
                "expected a comparison operator; {} take {}",
                describe(key),
                ops_list(class.allowed_ops())
            )
        })?;
        if !class.allowed_ops().contains(&op) {
            let mut message = format!(
                "{} is not allowed on {}; use {}",
                op.as_str(),
                describe(key),
                ops_list(class.allowed_ops())
            );
            if class == KeyClass::StringAttribute && matches!(op, Op::In | Op::NotIn) {
                message.push_str(" (IN and NOT IN are supported for run_id only)");
            }
            if matches!(op, Op::IsNull | Op::IsNotNull) {
                message
                    .push_str(" (IS NULL and IS NOT NULL are supported for params and tags only)");
            }
            return Err(self.error(&tok, message));
        }
        Ok(op)
    }

    /// Reads any comparison operator, returning it with its first token;
    /// `expected` is the message when no operator comes next. Whether the
    /// operator suits the key is the caller's check.
    pub(super) fn raw_op(
        &mut self,
        expected: impl FnOnce() -> String,
    ) -> Result<(Op, Token), FilterError> {
        let tok = self.bump()?;
        let op = match tok.kind {
            TokenKind::Op(CmpOp::Eq) => Op::Eq,
            TokenKind::Op(CmpOp::Ne) => Op::Ne,
            TokenKind::Op(CmpOp::Lt) => Op::Lt,
            TokenKind::Op(CmpOp::Le) => Op::Le,
            TokenKind::Op(CmpOp::Gt) => Op::Gt,
            TokenKind::Op(CmpOp::Ge) => Op::Ge,
            TokenKind::Op(CmpOp::DoubleEq) => {
                return Err(self.error(&tok, "'==' is not an operator; use ="));
            }
            TokenKind::Op(CmpOp::LtGt) => {
                return Err(self.error(&tok, "'<>' is not an operator; use !="));
            }
            TokenKind::Word if tok.is_keyword(self.src, "LIKE") => Op::Like,
            TokenKind::Word if tok.is_keyword(self.src, "ILIKE") => Op::ILike,
            TokenKind::Word if tok.is_keyword(self.src, "IN") => Op::In,
            TokenKind::Word if tok.is_keyword(self.src, "NOT") => {
                let next = self.bump()?;
                if !next.is_keyword(self.src, "IN") {
                    return Err(self.error(&next, "expected IN after NOT"));
                }
                Op::NotIn
            }
            TokenKind::Word if tok.is_keyword(self.src, "IS") => {
                let next = self.bump()?;
                if next.is_keyword(self.src, "NULL") {
                    Op::IsNull
                } else if next.is_keyword(self.src, "NOT") {
                    let null = self.bump()?;
                    if !null.is_keyword(self.src, "NULL") {
                        return Err(self.error(&null, "expected NULL after IS NOT"));
                    }
                    Op::IsNotNull
                } else {
                    return Err(self.error(&next, "expected NULL or NOT NULL after IS"));
                }
            }
            _ => return Err(self.error(&tok, expected())),
        };
        Ok((op, tok))
    }

    fn value(&mut self, key: &Key, op: Op) -> Result<Value, FilterError> {
        match op {
            Op::IsNull | Op::IsNotNull => Ok(Value::Null),
            Op::In | Op::NotIn => Ok(Value::List(self.string_list(op)?)),
            _ if KeyClass::of(key).is_numeric() => {
                Ok(Value::Number(self.number_value(&describe(key), op)?))
            }
            _ => Ok(Value::String(self.string_value(&describe(key), op)?)),
        }
    }

    /// Reads the number after `op`; `what` names the key in errors
    /// ("metrics", "numeric attribute start_time").
    pub(super) fn number_value(&mut self, what: &str, op: Op) -> Result<f64, FilterError> {
        let tok = self.bump()?;
        match tok.kind {
            TokenKind::Number(n) => Ok(n),
            TokenKind::Eof => {
                Err(self.error(&tok, format!("expected a number after {}", op.as_str())))
            }
            TokenKind::Quoted { quote, .. } if quote != '`' => Err(self.error(
                &tok,
                format!("expected a number ({what} compare numerically), found a quoted string"),
            )),
            _ => Err(self.error(
                &tok,
                format!("expected a number ({what} compare numerically)"),
            )),
        }
    }

    /// Reads the quoted string after `op`; `what` names the key in errors.
    pub(super) fn string_value(&mut self, what: &str, op: Op) -> Result<String, FilterError> {
        let tok = self.bump()?;
        let expected = format!("expected a quoted string value for {what} (e.g. 'value')");
        match tok.kind {
            TokenKind::Quoted { quote, text } if quote != '`' => Ok(text),
            TokenKind::Quoted { .. } => Err(self.error(
                &tok,
                format!("{expected}; backticks quote keys, not values"),
            )),
            TokenKind::Number(_) => Err(self.error(&tok, format!("{expected}, found a number"))),
            TokenKind::Eof => Err(self.error(&tok, format!("{expected} after {}", op.as_str()))),
            TokenKind::Word => {
                Err(self.error(&tok, format!("{expected}; string values must be quoted")))
            }
            _ => Err(self.error(&tok, expected)),
        }
    }

    /// Reads `('a', 'b', …)` after `op`.
    pub(super) fn string_list(&mut self, op: Op) -> Result<Vec<String>, FilterError> {
        self.list_of(
            op,
            "quoted strings",
            "('a', 'b')",
            "quoted string",
            |p, tok| match tok.kind {
                TokenKind::Quoted { quote, text } if quote != '`' => Ok(text),
                _ => Err(p.error(
                    &tok,
                    format!("expected a quoted string in the {} list", op.as_str()),
                )),
            },
        )
    }

    /// Reads `( item (, item)* )` after `op`, each item read from its token
    /// by `item`. `plural` and `example` describe the list in the error when
    /// `(` is missing, `singular` an item in the error for an empty list.
    pub(super) fn list_of<T>(
        &mut self,
        op: Op,
        plural: &str,
        example: &str,
        singular: &str,
        mut item: impl FnMut(&Self, Token) -> Result<T, FilterError>,
    ) -> Result<Vec<T>, FilterError> {
        let open = self.bump()?;
        if open.kind != TokenKind::LParen {
            return Err(self.error(
                &open,
                format!(
                    "expected '(' and a list of {plural} after {}, e.g. {example}",
                    op.as_str()
                ),
            ));
        }
        let mut items = Vec::new();
        loop {
            let tok = self.bump()?;
            if tok.kind == TokenKind::RParen && items.is_empty() {
                return Err(self.error(
                    &tok,
                    format!(
                        "expected at least one {singular} in the {} list",
                        op.as_str()
                    ),
                ));
            }
            items.push(item(self, tok)?);
            let sep = self.bump()?;
            match sep.kind {
                TokenKind::Comma => {}
                TokenKind::RParen => return Ok(items),
                _ => {
                    return Err(self.error(
                        &sep,
                        format!("expected ',' or ')' in the {} list", op.as_str()),
                    ));
                }
            }
        }
    }
}
