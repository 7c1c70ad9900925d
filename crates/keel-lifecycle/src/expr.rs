//! The guard/assign expression language of lifecycle definitions.
//!
//! Lifecycle transitions are guarded by small expressions over the incoming
//! event and the run's context, e.g. `event.auc > 0.8 && context.stage == 'staging'`.
//! They are parsed once, when a definition is loaded, and evaluated once per
//! event on a hot path, so:
//!
//! * parsing is strict and explains itself (byte offset plus what was
//!   expected), because definition authors are the audience for its errors;
//! * evaluation works on borrowed JSON (`Cow<Value>`), so a typical guard
//!   allocates nothing;
//! * evaluation errors name the offending sub-expression and the types
//!   involved, since "event.auc is missing" is the usual root cause;
//! * [`Expr`]'s `Display` is canonical and re-parses to an equal `Expr`, so
//!   definitions can be normalised and compared.
//!
//! Grammar, lowest precedence first: `||`/`or`; `&&`/`and`; prefix `!`/`not`;
//! comparisons `== != < <= > >= in`, `not in` (not chainable); `+ -`;
//! `* / %`; prefix `-`; primaries (literals, paths, calls, array literals,
//! parentheses). Paths start from one of the roots passed to [`parse`].

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use serde_json::{Number, Value};

/// A parsed guard/assign expression. Clone + Debug + PartialEq.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    node: Node,
}

/// Why an expression failed to parse; `offset` is a byte offset into the source.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} (at character {offset})")]
pub struct ExprError {
    pub offset: usize,
    pub message: String,
}

/// Why evaluating an expression failed (type mismatch, overflow, division by zero).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

/// What an expression sees. Missing values are JSON null.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub event: &'a serde_json::Value,
    pub context: &'a serde_json::Value,
    pub item: Option<&'a serde_json::Value>,
    pub index: Option<u64>,
}

/// Deepest expression tree accepted. Evaluation and display recurse over the
/// tree, so this bounds their stack use whatever the input.
const MAX_DEPTH: usize = 256;
/// Deepest bracket/call nesting accepted; bounds the parser's own recursion.
const MAX_NESTING: usize = 64;

/// Names an expression may start from, e.g. &["event", "context"] or &["event","context","item","index"].
///
/// Only `event`, `context`, `item` and `index` can be roots, because those are
/// the values a [`Scope`] carries.
pub fn parse(src: &str, roots: &[&str]) -> Result<Expr, ExprError> {
    for root in roots {
        if Root::from_name(root).is_none() {
            return Err(ExprError {
                offset: 0,
                message: format!(
                    "`{root}` cannot be an expression root; roots are event, context, item and index"
                ),
            });
        }
    }
    let toks = lex(src)?;
    let mut parser = Parser {
        toks,
        pos: 0,
        roots,
        nesting: 0,
    };
    let (node, _) = parser.parse_or()?;
    let tok = parser.peek();
    match tok.kind {
        Kind::End => Ok(Expr { node }),
        Kind::Sym(")") => Err(ExprError {
            offset: tok.start,
            message: "unexpected `)` (no matching `(`)".to_owned(),
        }),
        _ => Err(ExprError {
            offset: tok.start,
            message: format!(
                "unexpected `{}`; expected an operator or the end of the expression",
                tok.text
            ),
        }),
    }
}

impl Expr {
    /// Evaluates to an owned JSON value (for assignments).
    pub fn eval(&self, scope: &Scope<'_>) -> Result<serde_json::Value, EvalError> {
        eval(&self.node, scope).map(Cow::into_owned)
    }

    /// A guard: true only for JSON true; any other value is an EvalError naming what it was.
    pub fn eval_bool(&self, scope: &Scope<'_>) -> Result<bool, EvalError> {
        match truth(&self.node, scope)? {
            Truth::Bool(b) => Ok(b),
            Truth::Other(t) => Err(EvalError(format!(
                "a guard must be true or false, but `{}` is {t}{}",
                self.node,
                hint_for(&self.node, t)
            ))),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.node, f)
    }
}

// ---------------------------------------------------------------------------
// Syntax tree
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// A constant, including folded negative numbers and all-constant arrays,
    /// so that evaluating them borrows instead of building values.
    Lit(Value),
    /// An array literal with at least one non-constant element.
    Array(Vec<Node>),
    Path(Path),
    Not(Box<Node>),
    Neg(Box<Node>),
    Binary(BinOp, Box<Node>, Box<Node>),
    Call(Func, Vec<Node>),
}

#[derive(Debug, Clone, PartialEq)]
struct Path {
    root: Root,
    segs: Vec<Seg>,
}

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Field(String),
    Index(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    Event,
    Context,
    Item,
    Index,
}

impl Root {
    fn from_name(name: &str) -> Option<Root> {
        match name {
            "event" => Some(Root::Event),
            "context" => Some(Root::Context),
            "item" => Some(Root::Item),
            "index" => Some(Root::Index),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Root::Event => "event",
            Root::Context => "context",
            Root::Item => "item",
            Root::Index => "index",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

// Precedence levels, used by both the parser's structure and Display.
const PREC_OR: u8 = 1;
const PREC_AND: u8 = 2;
const PREC_NOT: u8 = 3;
const PREC_CMP: u8 = 4;
const PREC_ADD: u8 = 5;
const PREC_MUL: u8 = 6;
const PREC_NEG: u8 = 7;
const PREC_ATOM: u8 = 8;

impl BinOp {
    fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "||",
            BinOp::And => "&&",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::In => "in",
            BinOp::NotIn => "not in",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
        }
    }

    fn prec(self) -> u8 {
        match self {
            BinOp::Or => PREC_OR,
            BinOp::And => PREC_AND,
            BinOp::Eq
            | BinOp::Ne
            | BinOp::Lt
            | BinOp::Le
            | BinOp::Gt
            | BinOp::Ge
            | BinOp::In
            | BinOp::NotIn => PREC_CMP,
            BinOp::Add | BinOp::Sub => PREC_ADD,
            BinOp::Mul | BinOp::Div | BinOp::Mod => PREC_MUL,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Len,
    Exists,
    Lower,
    Upper,
    StartsWith,
    EndsWith,
    Contains,
    Abs,
    Min,
    Max,
}

const FUNCS: [Func; 10] = [
    Func::Len,
    Func::Exists,
    Func::Lower,
    Func::Upper,
    Func::StartsWith,
    Func::EndsWith,
    Func::Contains,
    Func::Abs,
    Func::Min,
    Func::Max,
];

impl Func {
    fn name(self) -> &'static str {
        match self {
            Func::Len => "len",
            Func::Exists => "exists",
            Func::Lower => "lower",
            Func::Upper => "upper",
            Func::StartsWith => "starts_with",
            Func::EndsWith => "ends_with",
            Func::Contains => "contains",
            Func::Abs => "abs",
            Func::Min => "min",
            Func::Max => "max",
        }
    }

    fn arity(self) -> usize {
        match self {
            Func::Len | Func::Exists | Func::Lower | Func::Upper | Func::Abs => 1,
            Func::StartsWith | Func::EndsWith | Func::Contains | Func::Min | Func::Max => 2,
        }
    }

    fn from_name(name: &str) -> Option<Func> {
        FUNCS.into_iter().find(|f| f.name() == name)
    }
}

/// Builds an array node, folding it into a constant when every element is one
/// (so `x in [1, 2, 3]` borrows the array on every evaluation).
fn array_node(items: Vec<Node>) -> Node {
    if items.iter().all(|n| matches!(n, Node::Lit(_))) {
        let values = items
            .into_iter()
            .filter_map(|n| match n {
                Node::Lit(v) => Some(v),
                _ => None,
            })
            .collect();
        Node::Lit(Value::Array(values))
    } else {
        Node::Array(items)
    }
}

/// Builds a negation, folding it into numeric literals so `-1` is a constant
/// and displays (and re-parses) as `-1`.
fn neg_node(inner: Node) -> Node {
    if let Node::Lit(Value::Number(n)) = &inner
        && let Some(negated) = negate_literal(n)
    {
        return Node::Lit(Value::Number(negated));
    }
    Node::Neg(Box::new(inner))
}

fn negate_literal(n: &Number) -> Option<Number> {
    if let Some(i) = n.as_i64() {
        return Some(match i.checked_neg() {
            Some(v) => Number::from(v),
            None => Number::from(i64::MIN.unsigned_abs()),
        });
    }
    if let Some(u) = n.as_u64() {
        return (u == i64::MIN.unsigned_abs()).then(|| Number::from(i64::MIN));
    }
    n.as_f64().and_then(|f| Number::from_f64(-f))
}

// ---------------------------------------------------------------------------
// Display
// ---------------------------------------------------------------------------

impl Node {
    fn prec(&self) -> u8 {
        match self {
            Node::Lit(Value::Number(n)) if number_is_negative(n) => PREC_NEG,
            Node::Lit(_) | Node::Array(_) | Node::Path(_) | Node::Call(..) => PREC_ATOM,
            Node::Not(_) => PREC_NOT,
            Node::Neg(_) => PREC_NEG,
            Node::Binary(op, ..) => op.prec(),
        }
    }

    /// Writes `self`, parenthesised when it binds more loosely than `min`.
    fn fmt_at(&self, f: &mut fmt::Formatter<'_>, min: u8) -> fmt::Result {
        if self.prec() < min {
            write!(f, "({self})")
        } else {
            fmt::Display::fmt(self, f)
        }
    }
}

fn number_is_negative(n: &Number) -> bool {
    n.as_i64().is_some_and(|i| i < 0)
        || (!n.is_i64() && !n.is_u64() && n.as_f64().is_some_and(f64::is_sign_negative))
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Lit(v) => write_value(f, v),
            Node::Array(items) => write_list(f, "[", items, "]"),
            Node::Path(p) => fmt::Display::fmt(p, f),
            Node::Not(inner) => {
                // Parenthesise anything compound: `!(a == b)` reads better
                // than the equivalent `!a == b`.
                f.write_str("!")?;
                inner.fmt_at(f, PREC_NEG)
            }
            Node::Neg(inner) => {
                f.write_str("-")?;
                inner.fmt_at(f, PREC_NEG)
            }
            Node::Binary(op, l, r) => {
                let p = op.prec();
                // Left-associative; comparisons don't chain, so both of their
                // operands need the next level up.
                let left_min = if p == PREC_CMP { p + 1 } else { p };
                l.fmt_at(f, left_min)?;
                write!(f, " {} ", op.symbol())?;
                r.fmt_at(f, p + 1)
            }
            Node::Call(func, args) => {
                f.write_str(func.name())?;
                write_list(f, "(", args, ")")
            }
        }
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, open: &str, items: &[Node], close: &str) -> fmt::Result {
    f.write_str(open)?;
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        fmt::Display::fmt(item, f)?;
    }
    f.write_str(close)
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.root.name())?;
        for seg in &self.segs {
            match seg {
                Seg::Field(name) if is_ident(name) => write!(f, ".{name}")?,
                Seg::Field(name) => {
                    f.write_str("[")?;
                    write_string(f, name)?;
                    f.write_str("]")?;
                }
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

fn is_ident(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn write_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("'")?;
    for c in s.chars() {
        match c {
            '\\' => f.write_str("\\\\")?,
            '\'' => f.write_str("\\'")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            c => fmt::Write::write_char(f, c)?,
        }
    }
    f.write_str("'")
}

/// Writes a constant in source syntax. Objects never come out of the parser;
/// they are written as JSON for debugging only.
fn write_value(f: &mut fmt::Formatter<'_>, v: &Value) -> fmt::Result {
    match v {
        Value::Null => f.write_str("null"),
        Value::Bool(b) => write!(f, "{b}"),
        Value::Number(n) => write!(f, "{n}"),
        Value::String(s) => write_string(f, s),
        Value::Array(items) => {
            f.write_str("[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write_value(f, item)?;
            }
            f.write_str("]")
        }
        Value::Object(_) => write!(f, "{v}"),
    }
}

// ---------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Num(Number),
    Str(String),
    Ident,
    Sym(&'static str),
    End,
}

#[derive(Debug, Clone)]
struct Token<'s> {
    kind: Kind,
    start: usize,
    /// The token's source text, quoted in error messages.
    text: &'s str,
}

/// Longest first, so `<=` wins over `<`.
const SYMBOLS: [&str; 20] = [
    "||", "&&", "==", "!=", "<=", ">=", "<", ">", "!", "+", "-", "*", "/", "%", "(", ")", "[", "]",
    ",", ".",
];

fn lex(src: &str) -> Result<Vec<Token<'_>>, ExprError> {
    let bytes = src.as_bytes();
    let mut toks = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let rest = &src[pos..];
        let Some(c) = rest.chars().next() else { break };
        if c.is_whitespace() {
            pos += c.len_utf8();
            continue;
        }
        let start = pos;
        let kind = if c.is_ascii_digit() {
            let (kind, end) = lex_number(src, start)?;
            pos = end;
            kind
        } else if c == '\'' || c == '"' {
            let (s, end) = lex_string(src, start, c)?;
            pos = end;
            Kind::Str(s)
        } else if c.is_ascii_alphabetic() || c == '_' {
            pos += rest
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            Kind::Ident
        } else if let Some(sym) = SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
            pos += sym.len();
            Kind::Sym(sym)
        } else {
            let message = match c {
                '=' => "unexpected `=`; use `==` to compare".to_owned(),
                '|' => "unexpected `|`; use `||` (or `or`)".to_owned(),
                '&' => "unexpected `&`; use `&&` (or `and`)".to_owned(),
                _ => format!("unexpected character `{c}`"),
            };
            return Err(ExprError {
                offset: start,
                message,
            });
        };
        toks.push(Token {
            kind,
            start,
            text: &src[start..pos],
        });
    }
    toks.push(Token {
        kind: Kind::End,
        start: src.len(),
        text: "",
    });
    Ok(toks)
}

fn lex_number(src: &str, start: usize) -> Result<(Kind, usize), ExprError> {
    let bytes = src.as_bytes();
    let digits_from = |mut p: usize| {
        while p < bytes.len() && bytes[p].is_ascii_digit() {
            p += 1;
        }
        p
    };
    let mut end = digits_from(start);
    let mut is_float = false;
    if bytes.get(end) == Some(&b'.') {
        let after = digits_from(end + 1);
        if after == end + 1 {
            return Err(ExprError {
                offset: end,
                message: "expected digits after the decimal point".to_owned(),
            });
        }
        end = after;
        is_float = true;
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut p = end + 1;
        if matches!(bytes.get(p), Some(b'+' | b'-')) {
            p += 1;
        }
        let after = digits_from(p);
        if after == p {
            return Err(ExprError {
                offset: end,
                message: "expected digits in the exponent, as in 1e-3".to_owned(),
            });
        }
        end = after;
        is_float = true;
    }
    let text = &src[start..end];
    let too_large = || ExprError {
        offset: start,
        message: format!("number `{text}` is too large"),
    };
    let number = if is_float {
        text.parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .ok_or_else(too_large)?
    } else {
        Number::from(text.parse::<u64>().map_err(|_| too_large())?)
    };
    Ok((Kind::Num(number), end))
}

fn lex_string(src: &str, start: usize, quote: char) -> Result<(String, usize), ExprError> {
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((i, c)) = chars.next() {
        let at = start + 1 + i;
        if c == quote {
            return Ok((out, at + 1));
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let escaped = match chars.next().map(|(_, e)| e) {
            Some('\\') => '\\',
            Some('\'') => '\'',
            Some('"') => '"',
            Some('n') => '\n',
            Some('t') => '\t',
            Some('r') => '\r',
            Some(other) => {
                return Err(ExprError {
                    offset: at,
                    message: format!(
                        "unknown escape `\\{other}` in string; use \\\\, \\', \\\", \\n, \\t or \\r"
                    ),
                });
            }
            None => break,
        };
        out.push(escaped);
    }
    Err(ExprError {
        offset: start,
        message: format!("unclosed string; add a closing {quote}"),
    })
}

// ---------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------

/// A node and the depth of its tree, tracked so over-deep input is rejected
/// before anything recurses over it.
type Parsed = Result<(Node, usize), ExprError>;

struct Parser<'s, 'r> {
    toks: Vec<Token<'s>>,
    pos: usize,
    roots: &'r [&'r str],
    nesting: usize,
}

impl<'s> Parser<'s, '_> {
    fn peek(&self) -> &Token<'s> {
        self.peek_at(0)
    }

    fn peek_at(&self, ahead: usize) -> &Token<'s> {
        let last = self.toks.len().saturating_sub(1);
        // The token list always ends with End; never index past it.
        &self.toks[(self.pos + ahead).min(last)]
    }

    fn advance(&mut self) {
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
    }

    fn is_sym(&self, sym: &str) -> bool {
        matches!(self.peek().kind, Kind::Sym(s) if s == sym)
    }

    fn is_word_at(&self, ahead: usize, word: &str) -> bool {
        let t = self.peek_at(ahead);
        t.kind == Kind::Ident && t.text == word
    }

    /// Consumes the operator `sym` or keyword `word` if next; returns its offset.
    fn eat_op(&mut self, sym: &str, word: &str) -> Option<usize> {
        if self.is_sym(sym) || self.is_word_at(0, word) {
            let at = self.peek().start;
            self.advance();
            Some(at)
        } else {
            None
        }
    }

    fn error(&self, offset: usize, message: impl Into<String>) -> ExprError {
        ExprError {
            offset,
            message: message.into(),
        }
    }

    fn deeper(&self, depth: usize, at: usize) -> Result<usize, ExprError> {
        if depth >= MAX_DEPTH {
            Err(self.error(
                at,
                format!("expression is nested too deeply (at most {MAX_DEPTH} levels)"),
            ))
        } else {
            Ok(depth + 1)
        }
    }

    fn enter(&mut self) -> Result<(), ExprError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(self.error(
                self.peek().start,
                format!("brackets are nested too deeply (at most {MAX_NESTING} levels)"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting = self.nesting.saturating_sub(1);
    }

    fn expected_value(&self) -> ExprError {
        let tok = self.peek();
        let after = match self.pos.checked_sub(1).and_then(|p| self.toks.get(p)) {
            Some(prev) => format!(" after `{}`", prev.text),
            None => String::new(),
        };
        let message = match tok.kind {
            Kind::End if self.pos == 0 => "empty expression; expected a value".to_owned(),
            Kind::End => format!("expected a value{after}, but the expression ended"),
            _ => format!("expected a value{after}, found `{}`", tok.text),
        };
        self.error(tok.start, message)
    }

    fn binary(&self, op: BinOp, l: (Node, usize), r: (Node, usize), at: usize) -> Parsed {
        let depth = self.deeper(l.1.max(r.1), at)?;
        Ok((Node::Binary(op, Box::new(l.0), Box::new(r.0)), depth))
    }

    fn parse_or(&mut self) -> Parsed {
        let mut lhs = self.parse_and()?;
        while let Some(at) = self.eat_op("||", "or") {
            let rhs = self.parse_and()?;
            lhs = self.binary(BinOp::Or, lhs, rhs, at)?;
        }
        Ok(lhs)
    }

    fn parse_and(&mut self) -> Parsed {
        let mut lhs = self.parse_not()?;
        while let Some(at) = self.eat_op("&&", "and") {
            let rhs = self.parse_not()?;
            lhs = self.binary(BinOp::And, lhs, rhs, at)?;
        }
        Ok(lhs)
    }

    fn parse_not(&mut self) -> Parsed {
        // A loop rather than recursion, so `!!!!…` cannot exhaust the stack.
        let mut count = 0;
        let mut first = 0;
        while let Some(at) = self.eat_op("!", "not") {
            if count == 0 {
                first = at;
            }
            count += 1;
        }
        let (mut node, mut depth) = self.parse_cmp()?;
        for _ in 0..count {
            depth = self.deeper(depth, first)?;
            node = Node::Not(Box::new(node));
        }
        Ok((node, depth))
    }

    /// The comparison operator next in the input, its offset and token count.
    fn peek_cmp(&self) -> Option<(BinOp, usize, usize)> {
        let tok = self.peek();
        let op = match tok.kind {
            Kind::Sym("==") => BinOp::Eq,
            Kind::Sym("!=") => BinOp::Ne,
            Kind::Sym("<") => BinOp::Lt,
            Kind::Sym("<=") => BinOp::Le,
            Kind::Sym(">") => BinOp::Gt,
            Kind::Sym(">=") => BinOp::Ge,
            Kind::Ident if tok.text == "in" => BinOp::In,
            Kind::Ident if tok.text == "not" && self.is_word_at(1, "in") => {
                return Some((BinOp::NotIn, tok.start, 2));
            }
            _ => return None,
        };
        Some((op, tok.start, 1))
    }

    fn parse_cmp(&mut self) -> Parsed {
        let lhs = self.parse_add()?;
        let Some((op, at, len)) = self.peek_cmp() else {
            return Ok(lhs);
        };
        for _ in 0..len {
            self.advance();
        }
        let rhs = self.parse_add()?;
        if let Some((_, again, _)) = self.peek_cmp() {
            return Err(self.error(
                again,
                "comparisons cannot be chained; combine them with `&&` or add parentheses",
            ));
        }
        self.binary(op, lhs, rhs, at)
    }

    fn parse_add(&mut self) -> Parsed {
        let mut lhs = self.parse_mul()?;
        loop {
            let op = match self.peek().kind {
                Kind::Sym("+") => BinOp::Add,
                Kind::Sym("-") => BinOp::Sub,
                _ => return Ok(lhs),
            };
            let at = self.peek().start;
            self.advance();
            let rhs = self.parse_mul()?;
            lhs = self.binary(op, lhs, rhs, at)?;
        }
    }

    fn parse_mul(&mut self) -> Parsed {
        let mut lhs = self.parse_unary()?;
        loop {
            let op = match self.peek().kind {
                Kind::Sym("*") => BinOp::Mul,
                Kind::Sym("/") => BinOp::Div,
                Kind::Sym("%") => BinOp::Mod,
                _ => return Ok(lhs),
            };
            let at = self.peek().start;
            self.advance();
            let rhs = self.parse_unary()?;
            lhs = self.binary(op, lhs, rhs, at)?;
        }
    }

    fn parse_unary(&mut self) -> Parsed {
        let mut count = 0;
        let first = self.peek().start;
        while self.is_sym("-") {
            count += 1;
            self.advance();
        }
        let (mut node, mut depth) = self.parse_primary()?;
        for _ in 0..count {
            depth = self.deeper(depth, first)?;
            node = neg_node(node);
        }
        Ok((node, depth))
    }

    fn parse_primary(&mut self) -> Parsed {
        let tok = self.peek().clone();
        match tok.kind {
            Kind::Num(n) => {
                self.advance();
                Ok((Node::Lit(Value::Number(n)), 1))
            }
            Kind::Str(s) => {
                self.advance();
                Ok((Node::Lit(Value::String(s)), 1))
            }
            Kind::Sym("(") => {
                self.advance();
                self.enter()?;
                let inner = self.parse_or()?;
                if !self.is_sym(")") {
                    let found = self.peek();
                    let found = if found.kind == Kind::End {
                        "the end".to_owned()
                    } else {
                        format!("`{}`", found.text)
                    };
                    return Err(self.error(
                        self.peek().start,
                        format!(
                            "expected `)` to close the `(` at character {}, found {found}",
                            tok.start
                        ),
                    ));
                }
                self.advance();
                self.leave();
                Ok(inner)
            }
            Kind::Sym("[") => {
                self.advance();
                let (items, depth) = self.parse_list("]", "array")?;
                Ok((array_node(items), depth))
            }
            Kind::Ident => self.parse_word(&tok),
            _ => Err(self.expected_value()),
        }
    }

    /// Comma-separated expressions up to `close` (the opener already consumed).
    fn parse_list(
        &mut self,
        close: &'static str,
        what: &str,
    ) -> Result<(Vec<Node>, usize), ExprError> {
        self.enter()?;
        let mut items = Vec::new();
        let mut depth = 0;
        if self.is_sym(close) {
            self.advance();
        } else {
            loop {
                let (item, d) = self.parse_or()?;
                items.push(item);
                depth = depth.max(d);
                if self.is_sym(",") {
                    self.advance();
                } else if self.is_sym(close) {
                    self.advance();
                    break;
                } else {
                    let tok = self.peek();
                    let found = if tok.kind == Kind::End {
                        "the end".to_owned()
                    } else {
                        format!("`{}`", tok.text)
                    };
                    return Err(self.error(
                        tok.start,
                        format!("expected `,` or `{close}` in {what}, found {found}"),
                    ));
                }
            }
        }
        self.leave();
        let depth = self.deeper(depth, self.peek().start)?;
        Ok((items, depth))
    }

    fn parse_word(&mut self, tok: &Token<'s>) -> Parsed {
        let word = tok.text;
        match word {
            "true" | "false" => {
                self.advance();
                return Ok((Node::Lit(Value::Bool(word == "true")), 1));
            }
            "null" => {
                self.advance();
                return Ok((Node::Lit(Value::Null), 1));
            }
            "and" | "or" | "not" | "in" => return Err(self.expected_value()),
            _ => {}
        }
        let is_call = self.peek_at(1).kind == Kind::Sym("(");
        if is_call {
            let Some(func) = Func::from_name(word) else {
                let names: Vec<&str> = FUNCS.iter().map(|f| f.name()).collect();
                return Err(self.error(
                    tok.start,
                    format!(
                        "unknown function `{word}`; functions are {}",
                        names.join(", ")
                    ),
                ));
            };
            self.advance();
            self.advance();
            let what = format!("the arguments of `{word}`");
            let (args, depth) = self.parse_list(")", &what)?;
            if args.len() != func.arity() {
                let plural = if func.arity() == 1 { "" } else { "s" };
                return Err(self.error(
                    tok.start,
                    format!(
                        "`{word}` takes {} argument{plural}, but {} were given",
                        func.arity(),
                        args.len()
                    ),
                ));
            }
            return Ok((Node::Call(func, args), depth));
        }
        if self.roots.contains(&word)
            && let Some(root) = Root::from_name(word)
        {
            self.advance();
            return self.parse_path(root);
        }
        if Func::from_name(word).is_some() {
            return Err(self.error(
                tok.start,
                format!("`{word}` is a function; call it as {word}(…)"),
            ));
        }
        let message = if self.roots.is_empty() {
            format!("unknown name `{word}`; no names are available here")
        } else {
            format!(
                "unknown name `{word}`; expressions start from {}",
                self.roots.join(", ")
            )
        };
        Err(self.error(tok.start, message))
    }

    fn parse_path(&mut self, root: Root) -> Parsed {
        let mut segs = Vec::new();
        loop {
            if self.is_sym(".") {
                self.advance();
                let tok = self.peek();
                if tok.kind != Kind::Ident {
                    return Err(self.error(
                        tok.start,
                        "expected a field name after `.` (use [0] for array indexes, ['my-field'] for other names)",
                    ));
                }
                segs.push(Seg::Field(tok.text.to_owned()));
                self.advance();
            } else if self.is_sym("[") {
                self.advance();
                let tok = self.peek();
                let seg = match &tok.kind {
                    Kind::Str(s) => Some(Seg::Field(s.clone())),
                    Kind::Num(n) => n
                        .as_u64()
                        .and_then(|u| usize::try_from(u).ok())
                        .map(Seg::Index),
                    _ => None,
                };
                let Some(seg) = seg else {
                    return Err(self.error(
                        tok.start,
                        "expected a quoted field name or a non-negative whole-number index after `[`",
                    ));
                };
                self.advance();
                if !self.is_sym("]") {
                    return Err(self.error(self.peek().start, "expected `]`"));
                }
                self.advance();
                segs.push(seg);
            } else {
                return Ok((Node::Path(Path { root, segs }), 1));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------
//
// Two entry points share the work: `eval` produces a value (borrowed from the
// scope or the tree where possible), and `truth` evaluates in boolean context
// (guards, `&&`, `||`, `!`, comparisons) straight to a `bool`. Keeping guards
// on the `truth` path means the common `path OP constant` guard touches only
// references and a `bool`, never building or moving a `Value`.

static NULL: Value = Value::Null;
static TRUE: Value = Value::Bool(true);
static FALSE: Value = Value::Bool(false);

type Evaluated<'a> = Result<Cow<'a, Value>, EvalError>;

fn boolean<'a>(b: bool) -> Evaluated<'a> {
    Ok(Cow::Borrowed(if b { &TRUE } else { &FALSE }))
}

fn number<'a>(n: Number) -> Evaluated<'a> {
    Ok(Cow::Owned(Value::Number(n)))
}

/// The value of a constant or path, by reference, when no evaluation is
/// needed (everything but the `index` root, which has no `Value` to borrow).
#[inline(always)]
fn leaf<'a>(node: &'a Node, scope: &Scope<'a>) -> Option<&'a Value> {
    match node {
        Node::Lit(v) => Some(v),
        Node::Path(p) => p.resolve_ref(scope),
        _ => None,
    }
}

/// A `&Value` for `$node`: leaves are borrowed directly; anything else is
/// evaluated into `$slot` (a caller's local), which keeps it alive.
macro_rules! value_of {
    ($slot:ident, $node:expr, $scope:expr) => {
        match leaf($node, $scope) {
            Some(v) => v,
            None => {
                $slot = eval($node, $scope)?;
                $slot.as_ref()
            }
        }
    };
}

fn eval<'a>(node: &'a Node, scope: &Scope<'a>) -> Evaluated<'a> {
    match node {
        Node::Lit(v) => Ok(Cow::Borrowed(v)),
        Node::Path(p) => Ok(p.resolve(scope)),
        Node::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(eval(item, scope)?.into_owned());
            }
            Ok(Cow::Owned(Value::Array(out)))
        }
        Node::Not(_) => boolean(expect_bool(node, scope)?),
        Node::Binary(op, l, r) => match op.prec() {
            PREC_ADD | PREC_MUL => eval_arith(node, *op, l, r, scope),
            _ => boolean(expect_bool(node, scope)?),
        },
        Node::Neg(inner) => {
            let slot;
            let v = value_of!(slot, inner, scope);
            let Value::Number(n) = v else {
                return Err(fail(
                    node,
                    format!("`-` needs a number, got {}", type_name(v)),
                    missing_hint(inner, v),
                ));
            };
            let negated = match num(n) {
                Num::Int(i) => int_number(-i),
                Num::Float(x) => Number::from_f64(-x),
            };
            negated
                .map(Value::Number)
                .map(Cow::Owned)
                .ok_or_else(|| fail(node, "integer overflow".to_owned(), String::new()))
        }
        Node::Call(func, args) => eval_call(node, *func, args, scope),
    }
}

/// Result of evaluating in boolean context.
enum Truth {
    Bool(bool),
    /// Not a boolean; carries the type name for the error message.
    Other(&'static str),
}

fn truth<'a>(node: &'a Node, scope: &Scope<'a>) -> Result<Truth, EvalError> {
    match node {
        Node::Not(inner) => match truth(inner, scope)? {
            Truth::Bool(b) => Ok(Truth::Bool(!b)),
            Truth::Other(t) => Err(fail(
                node,
                format!("`!` needs true or false, got {t}"),
                hint_for(inner, t),
            )),
        },
        Node::Binary(op @ (BinOp::And | BinOp::Or), l, r) => {
            let side = |which: &str, n: &'a Node| match truth(n, scope)? {
                Truth::Bool(b) => Ok(b),
                Truth::Other(t) => Err(fail(
                    node,
                    format!(
                        "`{}` needs true or false on both sides, but the {which} side is {t}",
                        op.symbol()
                    ),
                    hint_for(n, t),
                )),
            };
            let left = side("left", l)?;
            // Short-circuit: the right side is not evaluated (nor type-checked).
            if (*op == BinOp::And) != left {
                return Ok(Truth::Bool(left));
            }
            side("right", r).map(Truth::Bool)
        }
        Node::Binary(op, l, r) if op.prec() == PREC_CMP => {
            compare(node, *op, l, r, scope).map(Truth::Bool)
        }
        _ => {
            let slot;
            Ok(match value_of!(slot, node, scope) {
                Value::Bool(b) => Truth::Bool(*b),
                other => Truth::Other(type_name(other)),
            })
        }
    }
}

/// `truth` for nodes that always yield a boolean or an error (`!`, logic,
/// comparisons).
fn expect_bool<'a>(node: &'a Node, scope: &Scope<'a>) -> Result<bool, EvalError> {
    match truth(node, scope)? {
        Truth::Bool(b) => Ok(b),
        Truth::Other(t) => Err(fail(
            node,
            format!("expected true or false, got {t}"),
            String::new(),
        )),
    }
}

impl Path {
    /// Walks the path by reference; anything missing is null. `None` only for
    /// a bare `index`, whose number has to be built.
    #[inline]
    fn resolve_ref<'a>(&'a self, scope: &Scope<'a>) -> Option<&'a Value> {
        let mut v: &'a Value = match self.root {
            Root::Event => scope.event,
            Root::Context => scope.context,
            Root::Item => scope.item.unwrap_or(&NULL),
            Root::Index if self.segs.is_empty() && scope.index.is_some() => return None,
            Root::Index => return Some(&NULL),
        };
        for seg in &self.segs {
            v = match (seg, v) {
                (Seg::Field(k), Value::Object(m)) => m.get(k).unwrap_or(&NULL),
                (Seg::Index(i), Value::Array(a)) => a.get(*i).unwrap_or(&NULL),
                _ => return Some(&NULL),
            };
        }
        Some(v)
    }

    fn resolve<'a>(&'a self, scope: &Scope<'a>) -> Cow<'a, Value> {
        match (self.resolve_ref(scope), scope.index) {
            (Some(v), _) => Cow::Borrowed(v),
            (None, Some(i)) => Cow::Owned(Value::from(i)),
            (None, None) => Cow::Borrowed(&NULL),
        }
    }
}

/// An error about `node`: "<what> in `<node>`<hint>".
#[cold]
fn fail(node: &Node, what: String, hint: String) -> EvalError {
    EvalError(format!("{what} in `{node}`{hint}"))
}

/// " (is event.x missing?)" when a path produced null: the usual culprit.
fn missing_hint(node: &Node, v: &Value) -> String {
    hint_for(node, type_name(v))
}

fn hint_for(node: &Node, type_name: &str) -> String {
    match node {
        Node::Path(p) if type_name == "null" => format!(" (is {p} missing?)"),
        _ => String::new(),
    }
}

fn missing_hint2(l: &Node, lv: &Value, r: &Node, rv: &Value) -> String {
    let hint = missing_hint(l, lv);
    if hint.is_empty() {
        missing_hint(r, rv)
    } else {
        hint
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Comparisons and membership (`== != < <= > >= in`, `not in`).
fn compare<'a>(
    node: &'a Node,
    op: BinOp,
    l: &'a Node,
    r: &'a Node,
    scope: &Scope<'a>,
) -> Result<bool, EvalError> {
    let (left_slot, right_slot);
    let a = value_of!(left_slot, l, scope);
    let b = value_of!(right_slot, r, scope);
    match op {
        BinOp::Eq => Ok(json_eq(a, b)),
        BinOp::Ne => Ok(!json_eq(a, b)),
        BinOp::In | BinOp::NotIn => {
            membership(node, op, a, b, l, r).map(|found| found == (op == BinOp::In))
        }
        _ => match order(a, b) {
            Some(o) => Ok(match op {
                BinOp::Lt => o == Ordering::Less,
                BinOp::Le => o != Ordering::Greater,
                BinOp::Gt => o == Ordering::Greater,
                _ => o != Ordering::Less,
            }),
            None => Err(fail(
                node,
                format!("cannot compare {} with {}", type_name(a), type_name(b)),
                missing_hint2(l, a, r, b),
            )),
        },
    }
}

/// Whether `a` is in `b`: array element (JSON equality), substring, or object key.
fn membership(
    node: &Node,
    op: BinOp,
    a: &Value,
    b: &Value,
    l: &Node,
    r: &Node,
) -> Result<bool, EvalError> {
    match (a, b) {
        (_, Value::Array(items)) => Ok(items.iter().any(|x| json_eq(a, x))),
        (Value::String(needle), Value::String(s)) => Ok(s.contains(needle.as_str())),
        (Value::String(key), Value::Object(m)) => Ok(m.contains_key(key)),
        (_, Value::String(_) | Value::Object(_)) => {
            let what = if b.is_string() {
                "a string needs a string"
            } else {
                "an object needs a string key"
            };
            Err(fail(
                node,
                format!(
                    "`{}` on {what} on the left, got {}",
                    op.symbol(),
                    type_name(a)
                ),
                missing_hint(l, a),
            ))
        }
        _ => Err(fail(
            node,
            format!(
                "`{}` needs an array, string or object on the right, got {}",
                op.symbol(),
                type_name(b)
            ),
            missing_hint(r, b),
        )),
    }
}

/// `+ - * / %`.
fn eval_arith<'a>(
    node: &'a Node,
    op: BinOp,
    l: &'a Node,
    r: &'a Node,
    scope: &Scope<'a>,
) -> Evaluated<'a> {
    let (left_slot, right_slot);
    let a = value_of!(left_slot, l, scope);
    let b = value_of!(right_slot, r, scope);
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => arith(node, op, x, y),
        (Value::String(x), Value::String(y)) if op == BinOp::Add => {
            let mut s = String::with_capacity(x.len() + y.len());
            s.push_str(x);
            s.push_str(y);
            Ok(Cow::Owned(Value::String(s)))
        }
        _ => {
            let expected = if op == BinOp::Add {
                "two numbers or two strings"
            } else {
                "two numbers"
            };
            Err(fail(
                node,
                format!(
                    "`{}` needs {expected}, got {} and {}",
                    op.symbol(),
                    type_name(a),
                    type_name(b)
                ),
                missing_hint2(l, a, r, b),
            ))
        }
    }
}

#[derive(Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

fn num(n: &Number) -> Num {
    if let Some(i) = n.as_i64() {
        Num::Int(i128::from(i))
    } else if let Some(u) = n.as_u64() {
        Num::Int(i128::from(u))
    } else {
        Num::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

fn to_f64(n: Num) -> f64 {
    match n {
        Num::Int(i) => i as f64,
        Num::Float(f) => f,
    }
}

/// An integer result as a JSON number, if it fits in i64 or u64.
fn int_number(i: i128) -> Option<Number> {
    if let Ok(v) = i64::try_from(i) {
        Some(Number::from(v))
    } else {
        u64::try_from(i).ok().map(Number::from)
    }
}

fn arith<'a>(node: &Node, op: BinOp, x: &Number, y: &Number) -> Evaluated<'a> {
    let overflow = || fail(node, "integer overflow".to_owned(), String::new());
    let div_zero = || fail(node, "division by zero".to_owned(), String::new());
    let (a, b) = (num(x), num(y));
    if let (Num::Int(a), Num::Int(b)) = (a, b) {
        let result = match op {
            BinOp::Add => a.checked_add(b),
            BinOp::Sub => a.checked_sub(b),
            BinOp::Mul => a.checked_mul(b),
            BinOp::Div if b == 0 => return Err(div_zero()),
            // Exact quotients stay integers; others become floats (7 / 2 = 3.5).
            BinOp::Div if a % b != 0 => return float(node, a as f64 / b as f64),
            BinOp::Div => a.checked_div(b),
            BinOp::Mod if b == 0 => return Err(div_zero()),
            BinOp::Mod => a.checked_rem(b),
            _ => None,
        };
        return number(result.and_then(int_number).ok_or_else(overflow)?);
    }
    let (a, b) = (to_f64(a), to_f64(b));
    let result = match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div | BinOp::Mod if b == 0.0 => return Err(div_zero()),
        BinOp::Div => a / b,
        _ => a % b,
    };
    float(node, result)
}

fn float<'a>(node: &Node, f: f64) -> Evaluated<'a> {
    match Number::from_f64(f) {
        Some(n) => number(n),
        None => Err(fail(
            node,
            "result is not a finite number".to_owned(),
            String::new(),
        )),
    }
}

/// Numeric comparison across integers and floats, exact for all JSON numbers.
fn num_cmp(x: &Number, y: &Number) -> Ordering {
    match (num(x), num(y)) {
        (Num::Int(a), Num::Int(b)) => a.cmp(&b),
        (Num::Int(a), Num::Float(f)) => cmp_int_float(a, f),
        (Num::Float(f), Num::Int(b)) => cmp_int_float(b, f).reverse(),
        (Num::Float(a), Num::Float(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// Compares an integer with a float without rounding the integer.
fn cmp_int_float(a: i128, f: f64) -> Ordering {
    // 2^127: every i128 is below it, and every float at or above it is larger.
    const LIMIT: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;
    if f.is_nan() {
        return Ordering::Equal;
    }
    if f >= LIMIT {
        return Ordering::Less;
    }
    if f < -LIMIT {
        return Ordering::Greater;
    }
    let whole = f.trunc();
    match a.cmp(&(whole as i128)) {
        Ordering::Equal => 0.0f64.partial_cmp(&(f - whole)).unwrap_or(Ordering::Equal),
        other => other,
    }
}

/// Ordering for `< <= > >=`, min and max: two numbers or two strings only.
fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => Some(num_cmp(x, y)),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// JSON equality where numbers compare by value (`1 == 1.0`), recursively.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y) == Ordering::Equal,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn eval_call<'a>(node: &'a Node, func: Func, args: &'a [Node], scope: &Scope<'a>) -> Evaluated<'a> {
    let arg = |i: usize| -> Result<(&'a Node, Cow<'a, Value>), EvalError> {
        let n = args
            .get(i)
            .ok_or_else(|| EvalError(format!("`{}` is missing argument {}", func.name(), i + 1)))?;
        Ok((n, eval(n, scope)?))
    };
    let name = func.name();
    let (n0, v0) = arg(0)?;
    let type_error = |expected: &str, got: &Value, hint: String| {
        fail(
            node,
            format!("{name}() needs {expected}, got {}", type_name(got)),
            hint,
        )
    };
    match func {
        Func::Len => {
            let len = match v0.as_ref() {
                Value::String(s) => s.chars().count(),
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                other => {
                    return Err(type_error(
                        "a string, array or object",
                        other,
                        missing_hint(n0, other),
                    ));
                }
            };
            number(Number::from(len as u64))
        }
        Func::Exists => boolean(!v0.is_null()),
        Func::Lower | Func::Upper => match v0.as_ref() {
            Value::String(s) => Ok(Cow::Owned(Value::String(if func == Func::Lower {
                s.to_lowercase()
            } else {
                s.to_uppercase()
            }))),
            other => Err(type_error("a string", other, missing_hint(n0, other))),
        },
        Func::Abs => match v0.as_ref() {
            Value::Number(n) => match num(n) {
                Num::Int(i) if i >= 0 => Ok(v0),
                Num::Int(i) => number(
                    int_number(-i)
                        .ok_or_else(|| fail(node, "integer overflow".to_owned(), String::new()))?,
                ),
                Num::Float(f) => float(node, f.abs()),
            },
            other => Err(type_error("a number", other, missing_hint(n0, other))),
        },
        Func::StartsWith | Func::EndsWith | Func::Contains | Func::Min | Func::Max => {
            let (n1, v1) = arg(1)?;
            let (a, b) = (v0.as_ref(), v1.as_ref());
            let hint = || missing_hint2(n0, a, n1, b);
            let two_types = |expected: &str| {
                fail(
                    node,
                    format!(
                        "{name}() needs {expected}, got {} and {}",
                        type_name(a),
                        type_name(b)
                    ),
                    hint(),
                )
            };
            match func {
                Func::StartsWith | Func::EndsWith => match (a, b) {
                    (Value::String(s), Value::String(p)) => boolean(if func == Func::StartsWith {
                        s.starts_with(p.as_str())
                    } else {
                        s.ends_with(p.as_str())
                    }),
                    _ => Err(two_types("two strings")),
                },
                Func::Contains => match (a, b) {
                    (Value::String(s), Value::String(x)) => boolean(s.contains(x.as_str())),
                    (Value::Array(items), x) => boolean(items.iter().any(|i| json_eq(i, x))),
                    _ => Err(two_types("a string and a string, or an array and a value")),
                },
                _ => match order(a, b) {
                    Some(o) => {
                        let first = (o != Ordering::Greater) == (func == Func::Min);
                        Ok(if first { v0 } else { v1 })
                    }
                    None => Err(two_types("two numbers or two strings")),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const ALL: &[&str] = &["event", "context", "item", "index"];

    fn p(src: &str) -> Expr {
        parse(src, ALL).unwrap_or_else(|e| panic!("{src:?}: {e}"))
    }

    fn ev(src: &str, event: Value) -> Result<Value, EvalError> {
        let context = json!({"stage": "staging", "n": 3, "tags": ["a", "b"]});
        let item = json!({"name": "x"});
        p(src).eval(&Scope {
            event: &event,
            context: &context,
            item: Some(&item),
            index: Some(2),
        })
    }

    fn ok(src: &str, event: Value) -> Value {
        ev(src, event).unwrap_or_else(|e| panic!("{src:?}: {e}"))
    }

    fn err(src: &str, event: Value) -> String {
        match ev(src, event) {
            Ok(v) => panic!("{src:?} should fail, got {v}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn typical_guard() {
        let e = parse("event.auc > 0.8", &["event", "context"]).unwrap();
        let event = json!({"auc": 0.91});
        let scope = Scope {
            event: &event,
            context: &Value::Null,
            item: None,
            index: None,
        };
        assert!(e.eval_bool(&scope).unwrap());
        let event = json!({"auc": 0.5});
        let scope = Scope {
            event: &event,
            ..scope
        };
        assert!(!e.eval_bool(&scope).unwrap());
    }

    #[test]
    fn literals() {
        assert_eq!(ok("1", json!({})), json!(1));
        assert_eq!(ok("-1", json!({})), json!(-1));
        assert_eq!(ok("1.5", json!({})), json!(1.5));
        assert_eq!(ok("1e-3", json!({})), json!(0.001));
        assert_eq!(ok("2E2", json!({})), json!(200.0));
        assert_eq!(ok("'a\\'b'", json!({})), json!("a'b"));
        assert_eq!(ok(r#""a\"b\\c\n\t""#, json!({})), json!("a\"b\\c\n\t"));
        assert_eq!(ok("true", json!({})), json!(true));
        assert_eq!(ok("false", json!({})), json!(false));
        assert_eq!(ok("null", json!({})), json!(null));
        assert_eq!(ok("[1, 2, 'a']", json!({})), json!([1, 2, "a"]));
        assert_eq!(ok("[]", json!({})), json!([]));
        assert_eq!(ok("[event.a, 1]", json!({"a": true})), json!([true, 1]));
        assert_eq!(ok("-9223372036854775808", json!({})), json!(i64::MIN));
        assert_eq!(ok("18446744073709551615", json!({})), json!(u64::MAX));
    }

    #[test]
    fn paths() {
        let event = json!({"a": {"b": [10, {"c": "deep"}]}, "odd key": 5});
        assert_eq!(ok("event.a.b[0]", event.clone()), json!(10));
        assert_eq!(ok("event.a.b[1].c", event.clone()), json!("deep"));
        assert_eq!(
            ok("event['a'][\"b\"][1]['c']", event.clone()),
            json!("deep")
        );
        assert_eq!(ok("event['odd key']", event.clone()), json!(5));
        assert_eq!(ok("event.missing", event.clone()), json!(null));
        assert_eq!(ok("event.a.b[7]", event.clone()), json!(null));
        assert_eq!(ok("event.a.b.c", event.clone()), json!(null));
        assert_eq!(ok("event.a[0]", event.clone()), json!(null));
        assert_eq!(ok("event.missing.deeper[3]", event.clone()), json!(null));
        assert_eq!(ok("context.stage", event.clone()), json!("staging"));
        assert_eq!(ok("item.name", event.clone()), json!("x"));
        assert_eq!(ok("index", event.clone()), json!(2));
        assert_eq!(ok("index + 1", event.clone()), json!(3));
        assert_eq!(ok("index.x", event.clone()), json!(null));
        assert_eq!(ok("event", json!(7)), json!(7));
        // Keywords are fine as field names after a dot.
        assert_eq!(ok("event.in", json!({"in": 1})), json!(1));
        assert_eq!(ok("event.not not in [1]", json!({"not": 2})), json!(true));
        let none = Scope {
            event: &Value::Null,
            context: &Value::Null,
            item: None,
            index: None,
        };
        assert_eq!(p("item").eval(&none).unwrap(), json!(null));
        assert_eq!(p("index").eval(&none).unwrap(), json!(null));
    }

    #[test]
    fn unknown_root_lists_allowed_roots() {
        let e = parse("evnt.auc > 1", &["event", "context"]).unwrap_err();
        assert_eq!(e.offset, 0);
        assert_eq!(
            e.message,
            "unknown name `evnt`; expressions start from event, context"
        );
        let e = parse("event.a && item.b", &["event", "context"]).unwrap_err();
        assert_eq!(e.offset, 11);
        assert!(e.message.contains("unknown name `item`"));
        assert!(parse("index", &["event"]).is_err());
        assert!(parse("x", &["event", "bogus"]).is_err());
    }

    #[test]
    fn precedence() {
        assert_eq!(ok("1 + 2 * 3", json!({})), json!(7));
        assert_eq!(ok("(1 + 2) * 3", json!({})), json!(9));
        assert_eq!(ok("10 - 4 - 3", json!({})), json!(3));
        assert_eq!(ok("-2 * -3", json!({})), json!(6));
        assert_eq!(ok("true || false && false", json!({})), json!(true));
        assert_eq!(ok("(true || false) && false", json!({})), json!(false));
        assert_eq!(ok("!1 == 2", json!({})), json!(true));
        assert_eq!(ok("not 1 == 2 and true", json!({})), json!(true));
        assert_eq!(ok("1 + 1 == 2 && 2 * 2 == 4", json!({})), json!(true));
        assert_eq!(ok("false or not false", json!({})), json!(true));
        assert_eq!(
            p("!event.a == event.b").to_string(),
            "!(event.a == event.b)"
        );
        assert_eq!(p("1 + 2 * 3").to_string(), "1 + 2 * 3");
        assert_eq!(p("(1 + 2) * 3").to_string(), "(1 + 2) * 3");
        assert_eq!(p("1 - (2 - 3)").to_string(), "1 - (2 - 3)");
        assert_eq!(p("(1 - 2) - 3").to_string(), "1 - 2 - 3");
        assert_eq!(
            p("(event.x || event.y) && event.z").to_string(),
            "(event.x || event.y) && event.z"
        );
        assert_eq!(
            p("event.x and event.y or not event.z").to_string(),
            "event.x && event.y || !event.z"
        );
        assert_eq!(p("-(1)").to_string(), "-1");
        assert_eq!(p("--1").to_string(), "1");
        assert_eq!(p("- -event.a").to_string(), "--event.a");
        assert_eq!(p("-(event.a + 1)").to_string(), "-(event.a + 1)");
        assert_eq!(
            p("event.a  not  in  [1,2]").to_string(),
            "event.a not in [1, 2]"
        );
        assert_eq!(
            p("event['my-key'].b[0]").to_string(),
            "event['my-key'].b[0]"
        );
        assert_eq!(p("\"it's\"").to_string(), "'it\\'s'");
    }

    #[test]
    fn comparisons() {
        assert_eq!(ok("1 == 1.0", json!({})), json!(true));
        assert_eq!(ok("1 != 1.0", json!({})), json!(false));
        assert_eq!(ok("[1, 2] == event.x", json!({"x": [1.0, 2]})), json!(true));
        assert_eq!(
            ok(
                "event.o == event.p",
                json!({"o": {"a": 1}, "p": {"a": 1.0}})
            ),
            json!(true)
        );
        assert_eq!(ok("2 < 10", json!({})), json!(true));
        assert_eq!(ok("'2' < '10'", json!({})), json!(false));
        assert_eq!(ok("1 <= 1.0", json!({})), json!(true));
        assert_eq!(ok("2.5 > 2", json!({})), json!(true));
        assert_eq!(ok("-1 >= -1", json!({})), json!(true));
        assert_eq!(
            ok("9007199254740993 > 9007199254740992.0", json!({})),
            json!(true)
        );
        assert_eq!(ok("18446744073709551615 > -1", json!({})), json!(true));
        assert_eq!(ok("null == null", json!({})), json!(true));
        assert_eq!(ok("event.missing == null", json!({})), json!(true));
        assert_eq!(ok("'a' == 1", json!({})), json!(false));
        assert_eq!(ok("[1, 2] == [1, 2]", json!({})), json!(true));
    }

    #[test]
    fn ordering_errors_explain() {
        let msg = err("event.auc > 0.8", json!({}));
        assert_eq!(
            msg,
            "cannot compare null with number in `event.auc > 0.8` (is event.auc missing?)"
        );
        let msg = err("0.8 < event.auc", json!({}));
        assert!(msg.contains("cannot compare number with null"), "{msg}");
        assert!(msg.contains("(is event.auc missing?)"), "{msg}");
        let msg = err("event.a < 'x'", json!({"a": true}));
        assert!(msg.contains("cannot compare boolean with string"), "{msg}");
        assert!(!msg.contains("missing"), "{msg}");
        let msg = err("[1] < [2]", json!({}));
        assert!(msg.contains("cannot compare array with array"), "{msg}");
    }

    #[test]
    fn membership() {
        assert_eq!(ok("2 in [1, 2, 3]", json!({})), json!(true));
        assert_eq!(ok("2.0 in [1, 2, 3]", json!({})), json!(true));
        assert_eq!(ok("4 not in [1, 2, 3]", json!({})), json!(true));
        assert_eq!(ok("'ell' in 'hello'", json!({})), json!(true));
        assert_eq!(ok("'x' in 'hello'", json!({})), json!(false));
        assert_eq!(ok("'a' in event", json!({"a": 1})), json!(true));
        assert_eq!(ok("'b' not in event", json!({"a": 1})), json!(true));
        assert_eq!(ok("'a' in context.tags", json!({})), json!(true));
        assert_eq!(ok("null in [null]", json!({})), json!(true));
        assert_eq!(ok("[1] in [[1.0], 2]", json!({})), json!(true));
        let msg = err("'a' in event.tags", json!({}));
        assert!(
            msg.contains("needs an array, string or object on the right, got null"),
            "{msg}"
        );
        assert!(msg.contains("(is event.tags missing?)"), "{msg}");
        assert!(err("1 in 'abc'", json!({})).contains("needs a string on the left"));
        assert!(err("1 in event", json!({})).contains("string key"));
    }

    #[test]
    fn arithmetic() {
        assert_eq!(ok("1 + 2", json!({})), json!(3));
        assert_eq!(ok("1 + 2.5", json!({})), json!(3.5));
        assert_eq!(ok("1.5 + 1.5", json!({})), json!(3.0));
        assert_eq!(ok("6 / 2", json!({})), json!(3));
        assert_eq!(ok("7 / 2", json!({})), json!(3.5));
        assert_eq!(ok("-7 / 2", json!({})), json!(-3.5));
        assert_eq!(ok("7 % 3", json!({})), json!(1));
        assert_eq!(ok("-7 % 3", json!({})), json!(-1));
        assert_eq!(ok("7.5 % 2", json!({})), json!(1.5));
        assert_eq!(ok("2 * 3", json!({})), json!(6));
        assert_eq!(ok("3 - 5", json!({})), json!(-2));
        assert_eq!(ok("'ab' + 'cd'", json!({})), json!("abcd"));
        assert_eq!(ok("-event.x", json!({"x": 2})), json!(-2));
        assert_eq!(ok("-event.x", json!({"x": 2.5})), json!(-2.5));
        // u64 results beyond i64 are still integers.
        assert_eq!(
            ok("9223372036854775807 + 1", json!({})),
            json!(9_223_372_036_854_775_808u64)
        );
        assert_eq!(ok("0 - 9223372036854775808", json!({})), json!(i64::MIN));
        assert!(err("18446744073709551615 + 1", json!({})).contains("integer overflow"));
        assert!(err("-9223372036854775808 - 1", json!({})).contains("integer overflow"));
        assert!(err("4294967296 * 4294967296", json!({})).contains("integer overflow"));
        assert!(err("-event.x", json!({"x": 18_446_744_073_709_551_615u64})).contains("overflow"));
        assert!(err("1 / 0", json!({})).contains("division by zero in `1 / 0`"));
        assert!(err("1 % 0", json!({})).contains("division by zero"));
        assert!(err("1.0 / 0", json!({})).contains("division by zero"));
        assert!(err("1e308 * 10", json!({})).contains("not a finite number"));
        let msg = err("'a' + 1", json!({}));
        assert!(
            msg.contains("`+` needs two numbers or two strings, got string and number"),
            "{msg}"
        );
        let msg = err("event.n - 1", json!({}));
        assert!(
            msg.contains("`-` needs two numbers, got null and number"),
            "{msg}"
        );
        assert!(msg.contains("(is event.n missing?)"), "{msg}");
        assert!(err("-'a'", json!({})).contains("`-` needs a number, got string"));
    }

    #[test]
    fn logic_short_circuits_and_requires_booleans() {
        assert_eq!(ok("false && event.x", json!({"x": 1})), json!(false));
        assert_eq!(ok("true || 1 / 0", json!({})), json!(true));
        assert_eq!(
            ok("event.a > 1 && event.a < 3", json!({"a": 2})),
            json!(true)
        );
        // Guards over missing fields can be protected.
        assert_eq!(
            ok("exists(event.auc) && event.auc > 0.8", json!({})),
            json!(false)
        );
        let msg = err("true && 1", json!({}));
        assert!(
            msg.contains("`&&` needs true or false on both sides, but the right side is number"),
            "{msg}"
        );
        let msg = err("event.flag || true", json!({}));
        assert!(msg.contains("left side is null"), "{msg}");
        assert!(msg.contains("is event.flag missing?"), "{msg}");
        let msg = err("!event.x", json!({"x": "s"}));
        assert!(msg.contains("`!` needs true or false, got string"), "{msg}");
    }

    #[test]
    fn eval_bool_requires_true_or_false() {
        let scope_event = json!({"x": 1, "b": false});
        let scope = Scope {
            event: &scope_event,
            context: &Value::Null,
            item: None,
            index: None,
        };
        assert!(!p("event.b").eval_bool(&scope).unwrap());
        let e = p("event.x").eval_bool(&scope).unwrap_err();
        assert!(e.0.contains("number"), "{e}");
        let e = p("event.y").eval_bool(&scope).unwrap_err();
        assert!(e.0.contains("null") && e.0.contains("missing"), "{e}");
        let e = p("'true'").eval_bool(&scope).unwrap_err();
        assert!(e.0.contains("string"), "{e}");
        // `index` has no borrowed Value behind it; it still works in guards.
        let with_index = Scope {
            index: Some(2),
            ..scope
        };
        assert!(
            p("index == 2 && index > 1.5")
                .eval_bool(&with_index)
                .unwrap()
        );
        assert!(p("index == null").eval_bool(&scope).unwrap());
        assert!(p("!(index in [1, 3])").eval_bool(&with_index).unwrap());
        let e = p("index").eval_bool(&with_index).unwrap_err();
        assert!(e.0.contains("is number"), "{e}");
    }

    #[test]
    fn functions() {
        let ev0 = json!({"s": "Héllo", "a": [1, 2, 3], "o": {"k": 1, "j": 2}});
        assert_eq!(ok("len(event.s)", ev0.clone()), json!(5));
        assert_eq!(ok("len(event.a)", ev0.clone()), json!(3));
        assert_eq!(ok("len(event.o)", ev0.clone()), json!(2));
        assert!(err("len(event.zz)", ev0.clone()).contains("is event.zz missing?"));
        assert!(
            err("len(1)", ev0.clone())
                .contains("len() needs a string, array or object, got number")
        );
        assert_eq!(ok("exists(event.s)", ev0.clone()), json!(true));
        assert_eq!(ok("exists(event.nope)", ev0.clone()), json!(false));
        assert_eq!(ok("lower(event.s)", ev0.clone()), json!("héllo"));
        assert_eq!(ok("upper(event.s)", ev0.clone()), json!("HÉLLO"));
        assert!(err("lower(1)", ev0.clone()).contains("lower() needs a string, got number"));
        assert_eq!(ok("starts_with(event.s, 'Hé')", ev0.clone()), json!(true));
        assert_eq!(ok("ends_with(event.s, 'lo')", ev0.clone()), json!(true));
        assert_eq!(ok("ends_with(event.s, 'x')", ev0.clone()), json!(false));
        assert!(err("starts_with(event.s, 1)", ev0.clone()).contains("two strings"));
        assert_eq!(ok("contains(event.s, 'll')", ev0.clone()), json!(true));
        assert_eq!(ok("contains(event.a, 2.0)", ev0.clone()), json!(true));
        assert_eq!(ok("contains(event.a, 5)", ev0.clone()), json!(false));
        assert!(err("contains(event.o, 'k')", ev0.clone()).contains("contains() needs"));
        assert_eq!(ok("abs(-3)", ev0.clone()), json!(3));
        assert_eq!(ok("abs(-2.5)", ev0.clone()), json!(2.5));
        assert_eq!(
            ok("abs(-9223372036854775808)", ev0.clone()),
            json!(9_223_372_036_854_775_808u64)
        );
        assert!(err("abs('x')", ev0.clone()).contains("abs() needs a number"));
        assert_eq!(ok("min(1, 2.5)", ev0.clone()), json!(1));
        assert_eq!(ok("max(1, 2.5)", ev0.clone()), json!(2.5));
        assert_eq!(ok("max('a', 'b')", ev0.clone()), json!("b"));
        assert_eq!(ok("min(event.a[2], index)", ev0.clone()), json!(2));
        assert!(
            err("min(1, 'a')", ev0.clone())
                .contains("min() needs two numbers or two strings, got number and string")
        );
    }

    #[test]
    fn parse_errors_explain() {
        let cases: &[(&str, usize, &str)] = &[
            ("event.auc >", 11, "expected a value after `>`"),
            ("event.auc > )", 12, "expected a value after `>`, found `)`"),
            ("event.auc)", 9, "unexpected `)`"),
            ("'abc", 0, "unclosed string"),
            ("event.a == \"abc", 11, "unclosed string"),
            ("", 0, "empty expression"),
            ("   ", 3, "empty expression"),
            ("(1 + 2", 6, "expected `)` to close the `(` at character 0"),
            ("event.a 1", 8, "unexpected `1`"),
            ("event.a = 1", 8, "use `==`"),
            ("event.a | 1", 8, "use `||`"),
            ("event.a # 1", 8, "unexpected character `#`"),
            ("1 < 2 < 3", 6, "cannot be chained"),
            ("foo(1)", 0, "unknown function `foo`"),
            ("len(1, 2)", 0, "`len` takes 1 argument, but 2 were given"),
            ("min(1)", 0, "`min` takes 2 arguments"),
            ("len", 0, "`len` is a function"),
            ("[1, 2", 5, "expected `,` or `]`"),
            ("len(1 2)", 6, "expected `,` or `)`"),
            ("event.", 6, "expected a field name after `.`"),
            ("event.0", 6, "expected a field name after `.`"),
            ("event[-1]", 6, "non-negative"),
            ("event[1.5]", 6, "non-negative"),
            ("event['a'", 9, "expected `]`"),
            ("1.", 1, "expected digits after the decimal point"),
            ("1e", 1, "exponent"),
            ("99999999999999999999", 0, "too large"),
            ("1e999", 0, "too large"),
            ("'\\q'", 1, "unknown escape"),
            ("1 and", 5, "expected a value after `and`"),
            ("not", 3, "expected a value after `not`"),
            ("in", 0, "expected a value, found `in`"),
            ("1 +* 2", 3, "expected a value after `+`, found `*`"),
            ("event.a ! 1", 8, "unexpected `!`"),
        ];
        for (src, offset, needle) in cases {
            let e = parse(src, ALL).unwrap_err();
            assert!(e.message.contains(needle), "{src:?}: {e}");
            assert_eq!(e.offset, *offset, "{src:?}: {e}");
        }
        let e = parse("1 >", ALL).unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected a value after `>`, but the expression ended (at character 3)"
        );
    }

    #[test]
    fn deep_input_is_rejected_not_crashed() {
        let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(
            parse(&deep, ALL)
                .unwrap_err()
                .message
                .contains("nested too deeply")
        );
        let bangs = format!("{}true", "!".repeat(100_000));
        assert!(parse(&bangs, ALL).is_err());
        let minus = format!("{}1", "-".repeat(100_000));
        assert!(parse(&minus, ALL).is_err());
        let chain = vec!["1"; 10_000].join(" + ");
        assert!(parse(&chain, ALL).is_err());
        let arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse(&arrays, ALL).is_err());
        // Moderate nesting is fine.
        let ok_chain = vec!["event.a"; 200].join(" && ");
        assert!(parse(&ok_chain, ALL).is_ok());
        let ok_parens = format!("{}1{}", "(".repeat(50), ")".repeat(50));
        assert!(parse(&ok_parens, ALL).is_ok());
    }

    #[test]
    fn display_examples() {
        for (src, shown) in [
            ("event.auc>0.8", "event.auc > 0.8"),
            (
                "event.a in [1,'b',null,true]",
                "event.a in [1, 'b', null, true]",
            ),
            ("starts_with(event.s,'a')", "starts_with(event.s, 'a')"),
            ("(1 == 2) == false", "(1 == 2) == false"),
            ("1 == (2 == false)", "1 == (2 == false)"),
            ("!!true", "!(!true)"),
            ("event['a b']['c']", "event['a b'].c"),
            ("'tab\\there'", "'tab\\there'"),
            ("1 - -1", "1 - -1"),
            ("-1.5e-7", "-1.5e-7"),
            ("3.0", "3.0"),
        ] {
            let e = p(src);
            assert_eq!(e.to_string(), shown, "{src:?}");
            assert_eq!(p(shown), e);
        }
    }

    // --- property tests ---------------------------------------------------

    fn arb_lit() -> impl Strategy<Value = Node> {
        prop_oneof![
            any::<i64>().prop_map(|i| Node::Lit(json!(i))),
            any::<u64>().prop_map(|u| Node::Lit(json!(u))),
            any::<f64>()
                .prop_filter_map("finite", Number::from_f64)
                .prop_map(|n| Node::Lit(Value::Number(n))),
            any::<bool>().prop_map(|b| Node::Lit(json!(b))),
            Just(Node::Lit(Value::Null)),
            any::<String>().prop_map(|s| Node::Lit(json!(s))),
            prop_oneof![
                Just("it's"),
                Just("a\\b"),
                Just("\"q\""),
                Just("l1\nl2\t\r")
            ]
            .prop_map(|s| Node::Lit(json!(s))),
        ]
    }

    fn arb_path() -> impl Strategy<Value = Node> {
        let root = prop_oneof![
            Just(Root::Event),
            Just(Root::Context),
            Just(Root::Item),
            Just(Root::Index)
        ];
        let seg = prop_oneof![
            "[a-z_][a-z0-9_]{0,6}".prop_map(Seg::Field),
            prop_oneof![Just("in"), Just("not"), Just("true"), Just("len"), Just("")]
                .prop_map(|s| Seg::Field(s.to_owned())),
            any::<String>().prop_map(Seg::Field),
            (0usize..10_000).prop_map(Seg::Index),
        ];
        (root, proptest::collection::vec(seg, 0..4))
            .prop_map(|(root, segs)| Node::Path(Path { root, segs }))
    }

    fn arb_binop() -> impl Strategy<Value = BinOp> {
        proptest::sample::select(vec![
            BinOp::Or,
            BinOp::And,
            BinOp::Eq,
            BinOp::Ne,
            BinOp::Lt,
            BinOp::Le,
            BinOp::Gt,
            BinOp::Ge,
            BinOp::In,
            BinOp::NotIn,
            BinOp::Add,
            BinOp::Sub,
            BinOp::Mul,
            BinOp::Div,
            BinOp::Mod,
        ])
    }

    fn arb_node() -> impl Strategy<Value = Node> {
        let leaf = prop_oneof![arb_lit(), arb_path()];
        leaf.prop_recursive(5, 64, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(array_node),
                inner.clone().prop_map(|n| Node::Not(Box::new(n))),
                inner.clone().prop_map(neg_node),
                (arb_binop(), inner.clone(), inner.clone()).prop_map(|(op, l, r)| Node::Binary(
                    op,
                    Box::new(l),
                    Box::new(r)
                )),
                (
                    proptest::sample::select(FUNCS.to_vec()),
                    proptest::collection::vec(inner, 2)
                )
                    .prop_map(|(f, mut args)| {
                        args.truncate(f.arity());
                        Node::Call(f, args)
                    }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn display_reparses_to_equal_expr(node in arb_node()) {
            let expr = Expr { node };
            let text = expr.to_string();
            let reparsed = parse(&text, ALL);
            prop_assert_eq!(reparsed.as_ref(), Ok(&expr), "{}", text);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            if let Ok(e) = parse(&s, ALL) {
                // Whatever parses must display to something that parses the same.
                prop_assert_eq!(parse(&e.to_string(), ALL), Ok(e));
            }
        }

        #[test]
        fn parse_never_panics_on_token_soup(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "event", ".", "a", "[", "]", "0", "'s'", "\"", "(", ")", "!", "-", "+", "*",
                    "/", "%", "==", "<", ">=", "&&", "||", "and", "or", "not", "in", ",", "len",
                    "min", "1.5", "1e", "true", "null", " ", "\\", "'",
                ]),
                0..16,
            )
        ) {
            let src: String = parts.concat();
            if let Ok(e) = parse(&src, ALL) {
                prop_assert_eq!(parse(&e.to_string(), ALL), Ok(e.clone()));
                let event = json!({"a": [1, 2]});
                let scope = Scope { event: &event, context: &event, item: None, index: Some(1) };
                // Evaluation of anything that parses must not panic either.
                let _ = e.eval(&scope);
            }
        }

        #[test]
        fn random_trees_evaluate_without_panicking(node in arb_node()) {
            let event = json!({"a": 1, "s": "x", "l": [1, 2], "o": {"k": null}});
            let scope = Scope { event: &event, context: &event, item: Some(&event), index: Some(3) };
            let _ = Expr { node }.eval(&scope);
        }
    }
}
